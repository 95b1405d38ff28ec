"""Repair of coding-table indexes near table boundaries, without retraining (files that decode on any machine).

A decoder whose scales differ from the encoder's by a relative error below ``delta`` computes the encoder's table
index for every element except those whose scale lies within ``delta`` of a table boundary. The decoder can see
which of its elements are such (its scale within ``DECODER_MARGIN * delta`` of boundary j) but not on which side
the encoder's scale was; the encoder cannot see the decoder's set, only a superset of it: every element within
``ENCODER_MARGIN * delta`` of a boundary (with |s' / s - 1| < delta, s' within 1.25 delta of t implies s within
2.25 delta / (1 - delta) of t; the rest of the margin absorbs float32 round-off).

So the encoder stores one bit per element of its set, the side of the boundary (index j or j + 1), in a static
function: an XOR-retrieval table of about 1.23 bits per key that answers correctly for every stored key and with
an arbitrary bit for others, and does not store the keys themselves (positions would cost some 15 bits each).
The decoder asks it only for elements of its own set, all of which the encoder stored, and uses its own index
everywhere else. A drift above ``delta`` can make the decoder trust its own index where the encoder's differs:
the index checks (``jaxlic.coding.checks``) catch that before the step is decoded.

Construction: three hash positions per key, one in each third of the table; the 3-hypergraph is peeled (a key
alone in a slot is removed, repeatedly), then bits are assigned in reverse order (Botelho, Pagh and Ziviani 2007;
the XOR filter of Graf and Lemire 2020 with 1-bit values). No maintained Python package offers a 1-bit static
function; membership filters (xor / ribbon filters) cost 8 bits or more per key.
"""
from __future__ import annotations

import struct

import numpy as np

DECODER_MARGIN = 1.25
ENCODER_MARGIN = 3.0
_C1, _C2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)
_HEAD = struct.Struct("<BB")  # delta's code (``margin_code``), hash seed


def margin_code(delta: float) -> int:
    """One byte for the header: delta = 10^(-q/16) (16 steps a decade), rounded up to the next code."""
    return int(np.clip(np.floor(-16 * np.log10(delta) + 1e-9), 1, 255))


def margin_of(code: int) -> float:
    return float(np.float32(10.0 ** (-code / 16)))


def key(step: int, positions: np.ndarray) -> np.ndarray:
    """The key of an element: its coding step (in plan order) and its place in that step's predictions."""
    return (np.uint64(step) << np.uint64(32)) | np.asarray(positions, np.uint64)


def _mix(x: np.ndarray) -> np.ndarray:  # splitmix64's finaliser: integer-only, so every machine agrees
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _C1
        x = (x ^ (x >> np.uint64(27))) * _C2
        return x ^ (x >> np.uint64(31))


def _slots(keys: np.ndarray, seed: int, segment: int) -> np.ndarray:
    """(3, n) table positions: the k-th in [k * segment, (k + 1) * segment)."""
    with np.errstate(over="ignore"):
        h = _mix(keys + np.uint64(seed + 1) * _GOLDEN)
        out = [((_mix(h + np.uint64(k) * _GOLDEN) >> np.uint64(32)) * np.uint64(segment)) >> np.uint64(32)
               for k in range(3)]
    return np.stack(out).astype(np.int64) + (np.arange(3) * segment)[:, None]


def _peel(slots: np.ndarray, n_slots: int) -> list[tuple[int, int]] | None:
    """(key, slot) in peeling order, or None if the hypergraph has a core (then another seed is tried)."""
    n = slots.shape[1]
    count = np.bincount(slots.reshape(-1), minlength=n_slots)
    owner = np.zeros(n_slots, np.int64)  # xor of the keys still in each slot: the one key once count is 1
    np.bitwise_xor.at(owner, slots.reshape(-1), np.tile(np.arange(n), 3))
    count, owner = count.tolist(), owner.tolist()
    columns = slots.T.tolist()
    queue = [s for s in range(n_slots) if count[s] == 1]
    order = []
    while queue:
        s = queue.pop()
        if count[s] != 1:
            continue
        k = owner[s]
        order.append((k, s))
        for t in columns[k]:
            count[t] -= 1
            owner[t] ^= k
            if count[t] == 1:
                queue.append(t)
    return order if len(order) == n else None


class Repair:
    """The encoder's side bits (``store`` then ``pack``) or, from ``unpack``, the decoder's (``lookup``)."""

    def __init__(self, delta: float, code: int | None = None):
        if not 0 <= delta < 0.01:
            raise ValueError(f"robust margin {delta} must be in [0, 0.01) (a relative scale error, e.g. 1e-5)")
        # the value both sides use is the one the header holds: at least the one asked for. The code is kept,
        # not derived again from the float32 delta, which can round up past its decade step (1e-3 -> 47)
        self.code = (margin_code(delta) if code is None else code) if delta > 0 else 0
        self.delta = margin_of(self.code) if delta > 0 else 0.0
        self._keys: list[np.ndarray] = []
        self._bits: list[np.ndarray] = []
        self._table = np.zeros(0, np.uint8)
        self.seed = self.segment = 0

    @property
    def on(self) -> bool:
        return self.delta > 0

    @property
    def keys(self) -> int:
        return int(sum(len(k) for k in self._keys))

    def store(self, keys: np.ndarray, bits: np.ndarray) -> None:
        self._keys.append(np.asarray(keys, np.uint64))
        self._bits.append(np.asarray(bits, np.uint8))

    def pack(self) -> bytes:
        """Header bytes: none when off; else delta, seed, table size and the table (1.23 bits a key + 3 bytes)."""
        if not self.on:
            return b""
        keys = np.concatenate(self._keys) if self._keys else np.zeros(0, np.uint64)
        bits = np.concatenate(self._bits) if self._bits else np.zeros(0, np.uint8)
        n = len(keys)
        table = np.zeros(0, np.uint8)
        seed = segment = 0
        if n:
            for attempt in range(256):
                # 1.23 n slots peel with high probability for large n; small n need relatively more
                segment = -(-(int(np.ceil(1.23 * n)) + 8 + attempt // 16) // 3)
                seed = attempt % 256
                slots = _slots(keys, seed, segment)
                order = _peel(slots, 3 * segment)
                if order is not None:
                    break
            else:  # pragma: no cover - needs 256 failures in a row
                raise RuntimeError(f"could not build the repair table for {n} keys")
            table = np.zeros(3 * segment, np.uint8)
            for k, s in reversed(order):
                a, b, c = slots[:, k]
                table[s] = bits[k] ^ table[a] ^ table[b] ^ table[c] ^ table[s]
        return (_HEAD.pack(self.code, seed) + _varint(segment)
                + np.packbits(table, bitorder="little").tobytes())

    @classmethod
    def unpack(cls, data: bytes) -> "Repair":
        if not data:
            return cls(0.0)
        if len(data) < _HEAD.size + 1:
            raise ValueError(f"{len(data)} bytes of repair data is too short")
        code, seed = _HEAD.unpack_from(data)
        segment, pos = _read_varint(data, _HEAD.size)
        if code < 32:
            raise ValueError(f"robust margin code {code} out of range")
        delta = margin_of(code)
        if len(data) - pos != (3 * segment + 7) // 8:
            raise ValueError(f"repair table of {len(data) - pos} bytes, {3 * segment} slots need "
                             f"{(3 * segment + 7) // 8}")
        r = cls(delta, code)
        r.seed, r.segment = seed, segment
        r._table = np.unpackbits(np.frombuffer(data[pos:], np.uint8), count=3 * segment, bitorder="little")
        return r

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """The stored bit of each key (arbitrary for keys the encoder did not store)."""
        keys = np.asarray(keys, np.uint64)
        if not len(keys):
            return np.zeros(0, np.uint8)
        if not self.segment:
            return np.zeros(len(keys), np.uint8)  # the encoder stored nothing; any answer will do
        s = _slots(keys, self.seed, self.segment)
        return self._table[s[0]] ^ self._table[s[1]] ^ self._table[s[2]]


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        if pos >= len(data) or shift > 35:
            raise ValueError("malformed repair table size")
        b = data[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, pos
