"""The versioned ``.jlc`` container (docs/DESIGN.md, decision 9), compact so small files stay small.

    magic            b"JLIC"
    format version   u8
    model            u8 length + ASCII name
    config hash      8 bytes   (model configuration)
    weights hash     8 bytes   (variables and coding tables; decoding with other weights is refused)
    coder            u8 id     (0 constriction, 1 tfc)
    image size       varint H, varint W
    latent shapes    varint count, then per latent: u8 length + ASCII name, u8 rank, varint dims
    streams          varint count, then varint byte length of each
    index checks     varint byte length, then the checks of the coding-table indexes (``jaxlic.coding.checks``;
                     format 3 on; format 2 files have none and decode unchecked)
    repair           varint byte length, then the robust margin and the side of each coding-table index near a
                     table boundary (``jaxlic.coding.repair``; empty when off; format 4 on)
    rate             format 5 (variable-rate models only; others are written as format 4): u8 1, then the gain as
                     float32 little endian (the inverse of y's quantization step)
    payload          the coded streams, concatenated in codec-plan order
    CRC-32           u32 little endian, of every byte before it

About 60 bytes of header for a two-latent model. Every way a file can be wrong ends in a ``ContainerError``
that says what is wrong, before any decoding starts: not a jaxlic file, a version this build does not read,
truncation, a checksum mismatch, or a header that does not describe the payload.
"""
from __future__ import annotations

import dataclasses
import struct
import zlib

from jaxlic.errors import UserError

MAGIC = b"JLIC"
# 5: the rate of a variable-rate model; 4: index repair; 3: index checks; 2: shorter escape codes in constriction
# streams, one stream per table family
FORMAT_VERSION = 5
FIXED_RATE_VERSION = 4  # what a fixed-rate model writes: its files read as they did before format 5
READABLE = (2, 3, 4, 5)
CODERS = ("constriction", "tfc")  # ids are positions: append only
_CRC = struct.Struct("<I")
_MAX_DIM = 1 << 24
# The decoder's default pixel limit, Pillow's decompression-bomb threshold (``PIL.Image.MAX_IMAGE_PIXELS``, about
# 89.5 million pixels): a file from elsewhere may declare any size, and the synthesis transform of a learned codec
# needs far more memory per pixel than a JPEG decoder.
DEFAULT_MAX_PIXELS = 1024 * 1024 * 1024 // 4 // 3


class ContainerError(UserError):
    pass


class TooManyPixels(ContainerError):
    """A file declares an image larger than the decoder's pixel limit (checked from the header, before any work)."""


def check_pixels(c: "Container", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
    """Refuses a file whose declared image exceeds ``max_pixels`` (``None``: no limit)."""
    h, w = c.image_size
    if max_pixels is not None and h * w > max_pixels:
        raise TooManyPixels(
            f"file declares a {h} x {w} image ({h * w:,} pixels), over the decoder's limit of {max_pixels:,} "
            "pixels; a damaged or altered header, or a really large image: raise the limit (jaxlic decompress "
            "--max-pixels N, or max_pixels=N in Python) only for a file you expect to be that large")


@dataclasses.dataclass
class Container:
    model: str
    config_hash: str
    coder: str
    image_size: tuple[int, int]
    shapes: dict[str, list[int]]
    streams: list[bytes]
    weights_hash: str
    version: int = FORMAT_VERSION
    checks: bytes = b""
    repair: bytes = b""
    gain: float | None = None

    def describe(self) -> str:
        lengths = [len(s) for s in self.streams]
        lines = [f"format version : {self.version}", f"model          : {self.model}",
                 f"config hash    : {self.config_hash}", f"weights hash   : {self.weights_hash}",
                 f"coder          : {self.coder}",
                 f"image size     : {self.image_size[0]} x {self.image_size[1]} (H x W)",
                 "latent shapes  : " + ", ".join(f"{k} {tuple(v)}" for k, v in self.shapes.items()),
                 f"streams        : {len(self.streams)} ({sum(lengths)} bytes): {lengths}",
                 f"index checks   : {len(self.checks)} bytes" if self.version >= 3 else "index checks   : none",
                 "index repair   : " + (_describe_repair(self.repair) if self.version >= 4 else "none")]
        if self.gain is not None:
            lines.append(f"rate           : gain {self.gain:.6g} (quantization step {1 / self.gain:.6g})")
        return "\n".join(lines)


class _Writer:
    def __init__(self):
        self.buf = bytearray()

    def u8(self, v: int):
        self.buf.append(v)

    def varint(self, v: int):
        if v < 0:
            raise ValueError(f"cannot store negative value {v}")
        while True:
            b, v = v & 0x7F, v >> 7
            self.buf.append(b | (0x80 if v else 0))
            if not v:
                return

    def text(self, s: str):
        b = s.encode("ascii")
        if len(b) > 255:
            raise ValueError(f"name too long for the container: {s!r}")
        self.u8(len(b))
        self.buf += b

    def hash(self, h: str):
        try:
            b = bytes.fromhex(h)
        except ValueError:
            b = b""
        if len(b) != 8:
            raise ValueError(f"hash must be 16 hex digits, got {h!r}")
        self.buf += b


class _Reader:
    def __init__(self, data: bytes, pos: int):
        self.data, self.pos = data, pos

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ContainerError("file is truncated or corrupt (header runs past the end)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def varint(self, limit: int = 1 << 62) -> int:
        v, shift = 0, 0
        while True:
            b = self.u8()
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift > 63:
                raise ContainerError("malformed header: integer too long")
        if v > limit:
            raise ContainerError(f"malformed header: value {v} out of range")
        return v

    def text(self) -> str:
        try:
            return self.take(self.u8()).decode("ascii")
        except UnicodeDecodeError:
            raise ContainerError("malformed header: non-ASCII name") from None


def write_container(c: Container) -> bytes:
    if c.coder not in CODERS:
        raise ValueError(f"unknown coder {c.coder!r}")
    w = _Writer()
    if c.version not in READABLE:
        raise ValueError(f"format version {c.version} cannot be written (this build: {READABLE})")
    w.buf += MAGIC
    w.u8(c.version)
    w.text(c.model)
    w.hash(c.config_hash)
    w.hash(c.weights_hash)
    w.u8(CODERS.index(c.coder))
    w.varint(c.image_size[0])
    w.varint(c.image_size[1])
    w.varint(len(c.shapes))
    for name, shape in c.shapes.items():
        w.text(name)
        w.u8(len(shape))
        for d in shape:
            w.varint(int(d))
    w.varint(len(c.streams))
    for s in c.streams:
        w.varint(len(s))
    if c.version >= 3:
        w.varint(len(c.checks))
        w.buf += c.checks
    elif c.checks:
        raise ValueError("format 2 has no index checks")
    if c.version >= 4:
        w.varint(len(c.repair))
        w.buf += c.repair
    elif c.repair:
        raise ValueError(f"format {c.version} has no index repair")
    if c.version >= 5:
        if c.gain is None:
            w.u8(0)
        else:
            w.u8(1)
            w.buf += struct.pack("<f", c.gain)
    elif c.gain is not None:
        raise ValueError(f"format {c.version} has no rate")
    body = bytes(w.buf) + b"".join(c.streams)
    return body + _CRC.pack(zlib.crc32(body))


def read_container(data: bytes) -> Container:
    data = bytes(data)
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        raise ContainerError("not a jaxlic file (bad magic number)")
    if len(data) < len(MAGIC) + 1 + _CRC.size:
        raise ContainerError(f"file is truncated ({len(data)} bytes)")
    version = data[len(MAGIC)]
    if version not in READABLE:
        raise ContainerError(f"unsupported jaxlic format version {version} (this build reads "
                             f"{', '.join(map(str, READABLE))})")
    body, (crc,) = data[:-_CRC.size], _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(body) != crc:
        raise ContainerError("checksum mismatch: the file is corrupt or truncated")
    r = _Reader(body, len(MAGIC) + 1)
    model = r.text()
    config_hash, weights_hash = r.take(8).hex(), r.take(8).hex()
    coder_id = r.u8()
    if coder_id >= len(CODERS):
        raise ContainerError(f"malformed header: unknown coder id {coder_id}")
    image_size = (r.varint(_MAX_DIM), r.varint(_MAX_DIM))
    if min(image_size) < 1:
        raise ContainerError(f"malformed header: image size {image_size}")
    shapes = {}
    for _ in range(r.varint(255)):
        name = r.text()
        shapes[name] = [r.varint(_MAX_DIM) for _ in range(r.u8())]
    lengths = [r.varint(len(body)) for _ in range(r.varint(len(body)))]
    checks = r.take(r.varint(len(body))) if version >= 3 else b""
    repair = r.take(r.varint(len(body))) if version >= 4 else b""
    gain = None
    if version >= 5:
        flag = r.u8()
        if flag > 1:
            raise ContainerError(f"malformed header: rate flag {flag}")
        if flag:
            (gain,) = struct.unpack("<f", r.take(4))
            if not (gain > 0 and gain < float("inf")):
                raise ContainerError(f"malformed header: rate gain {gain}")
    payload = body[r.pos:]
    if sum(lengths) != len(payload):
        raise ContainerError(f"header lists {sum(lengths)} payload bytes, file has {len(payload)}")
    streams, pos = [], 0
    for n in lengths:
        streams.append(payload[pos:pos + n])
        pos += n
    return Container(model, config_hash, CODERS[coder_id], image_size, shapes, streams, weights_hash, version,
                     checks, repair, gain)


def _describe_repair(data: bytes) -> str:
    if not data:
        return "off (robust margin 0)"
    from jaxlic.coding.repair import Repair
    try:
        r = Repair.unpack(data)
    except ValueError as e:
        return f"malformed ({e})"
    return f"robust margin {r.delta:.3g}, {len(data)} bytes ({3 * r.segment} table bits)"
