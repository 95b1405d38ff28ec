"""Integer CDF tables for range coding, frozen with the model (docs/DESIGN.md, decision 4).

Layout (the same as CompressAI's ``_quantized_cdf``/``_cdf_length``/``_offset`` buffers, so those import
directly): table ``i`` has ``cdf_length[i]`` entries ``cdf[i, :cdf_length[i]]`` from 0 to 2**precision;
symbols 0 .. cdf_length-3 are the values ``offset[i] ..``; symbol ``cdf_length-2`` is the escape that
announces a value outside the table, which the coder then writes with an Elias-gamma code. Every symbol has
non-zero frequency, so *any* int32 value can be coded with any table.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np


def pmf_to_quantized_cdf(pmf: np.ndarray, precision: int = 16) -> np.ndarray:
    """Quantizes probabilities (escape mass included as the last entry) to frequencies summing to 2**precision.

    Each symbol keeps a frequency >= 1; what that costs is taken from the other symbols in proportion to the
    frequency they can spare, so the largest probabilities absorb the correction, not the rare ones.
    """
    total = 1 << precision
    p = np.clip(np.asarray(pmf, np.float64), 0.0, None)
    p = np.where(np.isfinite(p), p, 0.0)
    n = len(p)
    if n < 2 or n >= total:
        raise ValueError(f"a table needs between 2 and {total - 1} symbols, got {n}")
    s = p.sum()
    p = p / s if s > 0 else np.full(n, 1.0 / n)
    freq = np.maximum(np.round(p * total).astype(np.int64), 1)
    excess = int(freq.sum()) - total
    if excess > 0:
        room = freq - 1
        cut = np.floor(excess * room / room.sum()).astype(np.int64)
        freq -= cut
        excess -= int(cut.sum())
        while excess > 0:
            order = np.argsort(-freq, kind="stable")
            order = order[freq[order] > 1][:excess]
            freq[order] -= 1
            excess -= len(order)
    elif excess < 0:
        freq[np.argmax(freq)] -= excess
    cdf = np.zeros(n + 1, np.int32)
    cdf[1:] = np.cumsum(freq)
    assert cdf[-1] == total and np.all(freq >= 1)
    return cdf


@dataclasses.dataclass(frozen=True, eq=False)
class CodingTable:
    cdf: np.ndarray         # (n_tables, max_length) int32, rows padded with 2**precision
    cdf_length: np.ndarray  # (n_tables,) int32
    offset: np.ndarray      # (n_tables,) int32: the value that symbol 0 stands for
    precision: int = 16

    @classmethod
    def from_cdfs(cls, cdfs: Sequence[np.ndarray], offset, precision: int = 16) -> "CodingTable":
        lengths = np.array([len(c) for c in cdfs], np.int32)
        cdf = np.full((len(cdfs), int(lengths.max())), 1 << precision, np.int32)
        for i, c in enumerate(cdfs):
            cdf[i, :len(c)] = c
        return cls(cdf, lengths, np.asarray(offset, np.int32), precision)

    @classmethod
    def from_variables(cls, v) -> "CodingTable":
        """From the arrays stored in a checkpoint (``as_variables``), checking they form valid tables."""
        try:
            cdf = np.asarray(v["cdf"], np.int32)
            length = np.asarray(v["cdf_length"], np.int32).reshape(-1)
            offset = np.asarray(v["offset"], np.int32).reshape(-1)
            precision = int(np.asarray(v.get("precision", 16)))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"coding table is incomplete or malformed: {e}") from None
        table = cls(cdf, length, offset, precision)
        table.validate()
        return table

    def as_variables(self) -> dict:
        return {"cdf": self.cdf, "cdf_length": self.cdf_length, "offset": self.offset,
                "precision": np.int32(self.precision)}

    @property
    def num_tables(self) -> int:
        return len(self.cdf_length)

    def validate(self) -> None:
        total = 1 << self.precision
        if not 1 <= self.precision <= 16:
            raise ValueError(f"coding table precision must be in [1, 16], got {self.precision}")
        if self.cdf.ndim != 2 or self.cdf.shape[0] != self.num_tables or self.offset.shape != self.cdf_length.shape:
            raise ValueError("coding table arrays have inconsistent shapes")
        if np.any(self.cdf_length < 3) or np.any(self.cdf_length > self.cdf.shape[1]):
            raise ValueError("coding table lengths out of range")
        for i, n in enumerate(self.cdf_length):
            row = self.cdf[i, :n]
            if row[0] != 0 or row[-1] != total or np.any(np.diff(row) <= 0):
                raise ValueError(f"coding table {i} is not a strictly increasing CDF from 0 to {total}")

    def code_lengths(self, symbols: np.ndarray, indexes: np.ndarray, coder: str = "constriction") -> np.ndarray:
        """Bits each symbol costs under these tables, element by element (float64, the shape of ``symbols``):
        ``precision - log2(frequency)``, and for a value outside its table the escape symbol plus the escape's own
        code as ``coder`` writes it. constriction (``jaxlic.coding.coders``): a 34-way bit length, then the bits
        below the leading one of the zigzagged value. tfc (tensorflow-compression's ops): an Elias-gamma code of the
        distance beyond the table's range and a sign bit, 2 x bit length bits."""
        symbols = np.asarray(symbols).astype(np.int64)
        indexes = np.asarray(indexes).astype(np.int64)
        v = symbols - self.offset[indexes]
        esc = (self.cdf_length[indexes] - 2).astype(np.int64)
        is_esc = (v < 0) | (v >= esc)
        coded = np.where(is_esc, esc, v)
        freq = self.cdf[indexes, coded + 1] - self.cdf[indexes, coded]
        bits = self.precision - np.log2(freq.astype(np.float64))
        if is_esc.any():
            if coder == "tfc":
                gamma = np.where(v < 0, -v, np.maximum(v - esc + 1, 0))  # 0 where not an escape
                extra = 2 * _bit_length(gamma)
            elif coder == "constriction":
                extra = np.log2(34) + np.maximum(_bit_length(np.where(v >= 0, 2 * v, -2 * v - 1)) - 1, 0)
            else:
                raise ValueError(f"unknown coder {coder!r}")
            bits = bits + np.where(is_esc, extra, 0)
        return bits

    def ideal_bits(self, symbols: np.ndarray, indexes: np.ndarray) -> float:
        """Code length in bits of the quantized model, without escape payloads (for diagnostics)."""
        v = symbols.astype(np.int64) - self.offset[indexes]
        esc = self.cdf_length[indexes] - 2
        v = np.where((v < 0) | (v >= esc), esc, v)
        freq = self.cdf[indexes, v + 1] - self.cdf[indexes, v]
        return float(np.sum(self.precision - np.log2(freq)))


def _bit_length(x: np.ndarray) -> np.ndarray:
    """Bits of each non-negative integer (0 for 0), exactly, for int64 values."""
    x = np.asarray(x, np.int64)
    if (x < 0).any():
        raise ValueError("bit length of a negative number")
    out = np.zeros(x.shape, np.int64)
    rest = x.copy()
    while rest.any():
        out += rest > 0
        rest >>= 1
    return out
