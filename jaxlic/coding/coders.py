"""Two range-coder backends over the same integer tables (docs/DESIGN.md, decision 5).

``encode(symbols, indexes, table) -> bytes`` codes each ``symbols[k]`` with table ``indexes[k]``; ``decode``
inverts it given the same indexes. ``encoder()`` / ``decoder(data)`` open one stream that several chunks go
through in turn (a model's coding steps whose indexes depend on what was decoded before): range coding is a
queue, so the decoder reads the chunks back in the order they were written. Values outside a table are sent as the escape symbol followed by an
Elias-gamma code, so every int32 round-trips with either backend. The two backends write different bytes;
the container records which one wrote a file.
"""
from __future__ import annotations

import functools
import struct
from typing import Protocol

import numpy as np

from jaxlic.entropy.tables import CodingTable
from jaxlic.errors import UserError


class CodingError(UserError):
    """A stream does not decode with the given tables (corrupt data, or the wrong model)."""


class Coder(Protocol):
    name: str

    def encoder(self): ...          # -> object with .encode(symbols, indexes, table) and .finish() -> bytes

    def decoder(self, data: bytes): ...  # -> object with .decode(indexes, table) -> symbols and .finish()

    def encode(self, symbols: np.ndarray, indexes: np.ndarray, table: CodingTable) -> bytes: ...

    def decode(self, data: bytes, indexes: np.ndarray, table: CodingTable) -> np.ndarray: ...


class _OneShot:
    """``encode``/``decode`` of a single chunk, through the stream API."""

    def encode(self, symbols, indexes, table) -> bytes:
        enc = self.encoder()
        enc.encode(symbols, indexes, table)
        return enc.finish()

    def decode(self, data, indexes, table) -> np.ndarray:
        dec = self.decoder(data)
        out = dec.decode(indexes, table)
        dec.finish()
        return out


def _check(symbols: np.ndarray | None, indexes: np.ndarray, table: CodingTable):
    indexes = np.ascontiguousarray(indexes, np.int32).reshape(-1)
    if indexes.size and (indexes.min() < 0 or indexes.max() >= table.num_tables):
        raise ValueError(f"table indexes must lie in [0, {table.num_tables}), got "
                         f"[{indexes.min()}, {indexes.max()}]")
    if symbols is not None:
        symbols = np.asarray(symbols).reshape(-1)
        if symbols.shape != indexes.shape:
            raise ValueError(f"symbols and indexes differ in size: {symbols.size} vs {indexes.size}")
        if symbols.dtype.kind not in "iu":
            raise TypeError(f"symbols must be integers, got {symbols.dtype}")
        if symbols.size and (symbols.min() < np.iinfo(np.int32).min or symbols.max() > np.iinfo(np.int32).max):
            raise ValueError("symbols must fit in int32")
        symbols = symbols.astype(np.int64)
    return symbols, indexes


def _groups(indexes: np.ndarray, num_tables: int):
    """A stable sort by table index and the (index, start, end) runs of the sorted order. ``indexes`` lie in
    [0, num_tables) (checked): as 16-bit keys numpy sorts them by radix, 6x faster than int32 keys, which
    matters once per coding step."""
    keys = indexes.astype(np.uint16) if num_tables <= 1 << 16 else indexes
    order = np.argsort(keys, kind="stable")
    counts = np.bincount(indexes, minlength=num_tables)
    ends = np.cumsum(counts)
    used = np.flatnonzero(counts)
    return order, list(zip(used.tolist(), (ends - counts)[used].tolist(), ends[used].tolist()))


class ConstrictionCoder(_OneShot):
    """constriction's range coder (Rust). Symbols are coded grouped by table, in table order, which lets
    each group go through one vectorised call with a fixed categorical model; the decoder knows the
    indexes and therefore the grouping."""

    name = "constriction"

    def __init__(self):
        import constriction  # noqa: F401  (fail early with a clear ImportError)
        self._cs = constriction.stream

    @functools.lru_cache(maxsize=64)
    def _models(self, table: CodingTable):
        model = self._cs.model.Categorical
        out = []
        for i in range(table.num_tables):
            freq = np.diff(table.cdf[i, :table.cdf_length[i]]).astype(np.float64)
            out.append(model(freq / freq.sum(), perfect=False))
        return out

    # Escapes (values outside a table's support): zigzag z, its bit length n (0..33) with a uniform model, then
    # the n-1 bits below the leading one in uniform chunks of at most 16 bits: 5 + n - 1 bits for a value of n
    # bits (a 16-bit value costs 20 bits, a small one 6 to 9).
    @functools.cached_property
    def _bits(self):
        return self._cs.model.Categorical(np.full(34, 1 / 34), perfect=False), self._cs.model.Uniform()

    @staticmethod
    def _chunks(nbits):
        """(chunk index, which values have bits there, their chunk sizes in bits) of the n-1 mantissa bits."""
        mant = np.maximum(nbits - 1, 0)
        for c in range(2):
            k = np.clip(mant - 16 * c, 0, 16)
            if (k > 0).any():
                yield c, k > 0, k[k > 0]

    def encoder(self):
        return _ConstrictionEncoder(self)

    def decoder(self, data):
        return _ConstrictionDecoder(self, data)

    def _encode_escapes(self, enc, values):
        z = np.where(values >= 0, 2 * values, -2 * values - 1).astype(np.int64)  # zigzag
        nbits = np.zeros(len(z), np.int32)
        rest = z.copy()
        while rest.any():
            nbits += rest > 0
            rest >>= 1
        n_model, uniform = self._bits
        enc.encode(nbits, n_model)
        mant = z - np.where(nbits > 0, 1 << np.maximum(nbits - 1, 0).astype(np.int64), 0)
        for c, sel, k in self._chunks(nbits):
            chunk = ((mant[sel] >> (16 * c)) & ((1 << k) - 1)).astype(np.int32)
            enc.encode(chunk, uniform, (1 << k).astype(np.int32))

    def _decode_escapes(self, dec, n):
        n_model, uniform = self._bits
        nbits = np.asarray(dec.decode(n_model, n), np.int64)
        if nbits.max(initial=0) > 33:
            raise CodingError("escape code out of range")
        mant = np.zeros(n, np.int64)
        for c, sel, k in self._chunks(nbits):
            chunk = np.asarray(dec.decode(uniform, (1 << k).astype(np.int32)), np.int64)
            mant[sel] |= chunk << (16 * c)
        z = mant + np.where(nbits > 0, 1 << np.maximum(nbits - 1, 0), 0)
        return np.where(z & 1, -(z + 1) // 2, z // 2)


class _ConstrictionEncoder:
    def __init__(self, coder: ConstrictionCoder):
        self._c, self._enc = coder, coder._cs.queue.RangeEncoder()

    def encode(self, symbols, indexes, table):
        symbols, indexes = _check(symbols, indexes, table)
        values = symbols - table.offset[indexes]
        escape = (table.cdf_length[indexes] - 2).astype(np.int64)
        is_esc = (values < 0) | (values >= escape)
        coded = np.where(is_esc, escape, values).astype(np.int32)
        order, groups = _groups(indexes, table.num_tables)
        models = self._c._models(table)
        coded = coded[order]
        for i, s, e in groups:
            self._enc.encode(coded[s:e], models[i])
        if is_esc.any():
            self._c._encode_escapes(self._enc, values[order][is_esc[order]])

    def finish(self) -> bytes:
        return self._enc.get_compressed().tobytes()


class _ConstrictionDecoder:
    def __init__(self, coder: ConstrictionCoder, data):
        buf = bytes(data)
        if len(buf) % 4:
            raise CodingError("constriction stream length is not a multiple of 4 bytes")
        self._c, self._dec = coder, coder._cs.queue.RangeDecoder(np.frombuffer(buf, np.uint32).copy())

    def decode(self, indexes, table):
        _, indexes = _check(None, indexes, table)
        order, groups = _groups(indexes, table.num_tables)
        models = self._c._models(table)
        try:
            parts = [self._dec.decode(models[i], e - s) for i, s, e in groups]
            coded = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
            escape = (table.cdf_length[indexes[order]] - 2).astype(np.int64)
            is_esc = coded == escape
            if is_esc.any():
                coded[is_esc] = self._c._decode_escapes(self._dec, int(is_esc.sum()))
        except (ValueError, RuntimeError, OverflowError, AssertionError) as e:
            # constriction asserts on data its model cannot have written: here, indexes that differ from the
            # encoder's (another platform's scales, before the checks of issue 13) or the wrong tables
            raise CodingError(f"stream does not decode: {e}") from None
        values = np.empty_like(coded)
        values[order] = coded
        values += table.offset[indexes]
        return values.astype(np.int32) if _fits(values) else _overflow()

    def finish(self):
        pass


_INT32 = np.iinfo(np.int32)


def _fits(v):
    return v.size == 0 or (v.min() >= _INT32.min and v.max() <= _INT32.max)


def _overflow():
    raise CodingError("decoded value does not fit in int32 (corrupt stream or wrong tables)")


class TFCCoder(_OneShot):
    """tensorflow-compression's range coder ops (``tensorflow_compression_ops``, TF 2.17). Overflow is
    enabled by the negated precision in each lookup row; the ops then write escapes themselves."""

    name = "tfc"

    def __init__(self):
        try:
            import tensorflow as tf
            import tensorflow_compression_ops as tco
        except ImportError as e:
            raise ImportError("the 'tfc' coder needs tensorflow-compression-ops 2.17: "
                              "pip install 'jaxlic[tfc]' (or use --coder constriction)") from e
        self._tf, self._ops = tf, tco

    @functools.lru_cache(maxsize=64)
    def _lookup(self, table: CodingTable):
        rows = np.full((table.num_tables, table.cdf.shape[1] + 1), 1 << table.precision, np.int32)
        rows[:, 0] = -table.precision
        rows[:, 1:] = table.cdf
        for i, n in enumerate(table.cdf_length):
            rows[i, 1 + n:] = 1 << table.precision
        return self._tf.constant(rows)

    # The ops' own escape code hangs or returns wrong values for |value| near 2**30 and beyond (measured
    # with tensorflow-compression-ops 2.17), so values at or beyond this sentinel are written as +-sentinel
    # and their symbols follow the range-coded bytes: [coded][k x int32][u32 k].
    SENTINEL = 1 << 28

    def encoder(self):
        return _TFCEncoder(self)

    def decoder(self, data):
        return _TFCDecoder(self, data)


class _TFCEncoder:
    """One range-encoder handle; a handle holds one lookup, so all chunks of a stream share one table."""

    def __init__(self, coder: TFCCoder):
        self._c, self._handle, self._table, self._extras = coder, None, None, []

    def encode(self, symbols, indexes, table):
        symbols, indexes = _check(symbols, indexes, table)
        if self._handle is None:
            self._handle, self._table = self._c._ops.create_range_encoder([], self._c._lookup(table)), table
        elif table is not self._table:
            raise ValueError("a tfc stream codes with a single table family")
        values = symbols - table.offset[indexes]
        big = np.abs(values) >= TFCCoder.SENTINEL
        self._extras.append(symbols[big])  # the symbols themselves: always int32
        values = np.where(big, np.sign(values) * TFCCoder.SENTINEL, values).astype(np.int32)
        tf = self._c._tf
        self._handle = self._c._ops.entropy_encode_index(self._handle, tf.constant(indexes), tf.constant(values))

    def finish(self) -> bytes:
        coded = b"" if self._handle is None else self._c._ops.entropy_encode_finalize(self._handle).numpy()
        extras = np.concatenate(self._extras) if self._extras else np.zeros(0, np.int64)
        return coded + extras.astype("<i4").tobytes() + struct.pack("<I", len(extras))


class _TFCDecoder:
    def __init__(self, coder: TFCCoder, data):
        data = bytes(data)
        if len(data) < 4:
            raise CodingError("tfc stream is truncated")
        (k,) = struct.unpack_from("<I", data, len(data) - 4)
        if 4 * k + 4 > len(data):
            raise CodingError("tfc stream is truncated or corrupt (bad escape count)")
        self._coded = data[:len(data) - 4 - 4 * k]
        self._extras = np.frombuffer(data, "<i4", k, len(data) - 4 - 4 * k)
        self._c, self._handle, self._table, self._used = coder, None, None, 0

    def decode(self, indexes, table):
        _, indexes = _check(None, indexes, table)
        tf, ops = self._c._tf, self._c._ops
        try:
            if self._handle is None:
                self._handle = ops.create_range_decoder(tf.constant(self._coded), self._c._lookup(table))
                self._table = table
            elif table is not self._table:
                raise ValueError("a tfc stream codes with a single table family")
            self._handle, values = ops.entropy_decode_index(self._handle, tf.constant(indexes), indexes.shape,
                                                            tf.int32)
        except tf.errors.OpError as e:
            raise CodingError(f"stream does not decode: {str(e).splitlines()[0]}") from None
        values = values.numpy().astype(np.int64)
        big = np.abs(values) >= TFCCoder.SENTINEL
        n = int(big.sum())
        if self._used + n > len(self._extras):
            raise CodingError("stream does not decode (escape count mismatch)")
        values += table.offset[indexes]
        values[big] = self._extras[self._used:self._used + n]
        self._used += n
        return values.astype(np.int32) if _fits(values) else _overflow()

    def finish(self):
        if self._handle is not None:
            try:
                ok = bool(self._c._ops.entropy_decode_finalize(self._handle).numpy())
            except self._c._tf.errors.OpError as e:
                raise CodingError(f"stream does not decode: {str(e).splitlines()[0]}") from None
            if not ok:
                raise CodingError("stream does not decode (range decoder sanity check failed)")
        if self._used != len(self._extras):
            raise CodingError("stream does not decode (escape count mismatch)")


_BACKENDS = {"constriction": ConstrictionCoder, "tfc": TFCCoder}
_INSTANCES: dict[str, Coder] = {}


def get_coder(name: str) -> Coder:
    if name not in _BACKENDS:
        raise UserError(f"unknown coder {name!r}; choose from {sorted(_BACKENDS)}")
    if name not in _INSTANCES:
        _INSTANCES[name] = _BACKENDS[name]()
    return _INSTANCES[name]


def available_coders() -> list[str]:
    out = []
    for name in _BACKENDS:
        try:
            get_coder(name)
            out.append(name)
        except ImportError:
            pass
    return out
