"""Checks of the coding-table indexes, written by the encoder and verified by the decoder (docs/DESIGN.md, decision
3; files that decode on any machine).

A range decoder stays in step with the encoder only while it looks every symbol up in the same table. Another
machine computes the entropy parameters with other float round-off, and one scale on the other side of a table
boundary gives another index: from there on the decoder reads garbage. So the file carries, for every coding
step in plan order, the low bits of the CRC-32 of that step's indexes, and the CRC-32 of all of them. The decoder
compares a step's check before it decodes the step's symbols and stops there, naming the step; the whole-file
CRC-32 is compared before anything is reconstructed, so a mismatch the short checks miss still never becomes an
image.

The short checks share a budget of ``BUDGET_BITS`` per file (16 bits a step at most, 1 at least: a wavefront of
141 steps pays 18 bytes, a model of up to 64 steps 8 at most). A step whose check misses (probability 2^-bits)
desynchronises the steps after it, whose checks then catch it.
"""
from __future__ import annotations

import zlib

import numpy as np

BUDGET_BITS = 64


def step_bits(steps: int) -> int:
    return max(1, min(16, BUDGET_BITS // max(steps, 1)))


def _crc(indexes: np.ndarray, start: int = 0) -> int:
    return zlib.crc32(np.ascontiguousarray(indexes, "<i4").tobytes(), start)


class IndexChecks:
    """The encoder's checks (``add`` each step's indexes, then ``pack``), or, from ``unpack``, the decoder's:
    ``verify`` each step's indexes in the same order, then ``verify_all``."""

    def __init__(self, steps: int, expected: tuple[list[int], int] | None = None):
        self.steps, self.bits = steps, step_bits(steps)
        self.values: list[int] = []
        self.total = 0
        self._expected = expected

    def add(self, indexes: np.ndarray) -> None:
        self.values.append(_crc(indexes) & ((1 << self.bits) - 1))
        self.total = _crc(indexes, self.total)

    def pack(self) -> bytes:
        if len(self.values) != self.steps:
            raise ValueError(f"{len(self.values)} checks for {self.steps} steps")
        acc = 0
        for i, v in enumerate(self.values):
            acc |= v << (i * self.bits)
        n = (self.steps * self.bits + 7) // 8
        return self.total.to_bytes(4, "little") + acc.to_bytes(n, "little")

    @classmethod
    def unpack(cls, data: bytes, steps: int) -> "IndexChecks":
        bits = step_bits(steps)
        if len(data) != 4 + (steps * bits + 7) // 8:
            raise ValueError(f"{len(data)} bytes of index checks, {steps} steps need {4 + (steps * bits + 7) // 8}")
        acc = int.from_bytes(data[4:], "little")
        values = [(acc >> (i * bits)) & ((1 << bits) - 1) for i in range(steps)]
        return cls(steps, (values, int.from_bytes(data[:4], "little")))

    def verify(self, indexes: np.ndarray) -> bool:
        """Whether this step's indexes pass the encoder's check (a decoder's checks only)."""
        i = len(self.values)
        self.add(indexes)
        return self.values[i] == self._expected[0][i]

    def verify_all(self) -> bool:
        return len(self.values) == self.steps and self.total == self._expected[1]
