"""The versioned ``.jlc`` container (DESIGN decision 9).

    offset 0   magic  b"JLIC"
           4   format version (u8)
           5   header length n (u32, little endian)
           9   header: UTF-8 JSON {model, config_hash, weights_hash, coder, image_size, shapes, streams}
         9+n   payload: the coded streams, concatenated in codec-plan order
        end-4  CRC-32 of every byte before it (u32, little endian)

Every way a file can be wrong ends in a ``ContainerError`` that says what is wrong, before any decoding
starts: not a jaxlic file, a version this build does not read, truncation, a checksum mismatch, or a header
that does not describe the payload.
"""
from __future__ import annotations

import dataclasses
import json
import struct
import zlib

MAGIC = b"JLIC"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<4sBI")
_CRC = struct.Struct("<I")
_MAX_HEADER = 1 << 20


class ContainerError(ValueError):
    pass


@dataclasses.dataclass
class Container:
    model: str
    config_hash: str
    coder: str
    image_size: tuple[int, int]
    shapes: dict[str, list[int]]
    streams: list[bytes]
    weights_hash: str = ""
    version: int = FORMAT_VERSION

    def header(self) -> dict:
        return {"model": self.model, "config_hash": self.config_hash, "weights_hash": self.weights_hash,
                "coder": self.coder,
                "image_size": list(self.image_size), "shapes": self.shapes,
                "streams": [len(s) for s in self.streams]}

    def describe(self) -> str:
        h = self.header()
        payload = sum(h["streams"])
        lines = [f"format version : {self.version}", f"model          : {self.model}",
                 f"config hash    : {self.config_hash}", f"weights hash   : {self.weights_hash}",
                 f"coder          : {self.coder}",
                 f"image size     : {self.image_size[0]} x {self.image_size[1]} (H x W)",
                 f"latent shapes  : " + ", ".join(f"{k} {tuple(v)}" for k, v in self.shapes.items()),
                 f"streams        : {len(self.streams)} ({payload} bytes): {h['streams']}"]
        return "\n".join(lines)


def write_container(c: Container) -> bytes:
    header = json.dumps(c.header(), separators=(",", ":"), sort_keys=True).encode()
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)) + header + b"".join(c.streams)
    return body + _CRC.pack(zlib.crc32(body))


def read_container(data: bytes) -> Container:
    data = bytes(data)
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        raise ContainerError("not a jaxlic file (bad magic number)")
    if len(data) < _PREFIX.size + _CRC.size:
        raise ContainerError(f"file is truncated ({len(data)} bytes)")
    _, version, n = _PREFIX.unpack_from(data)
    if version != FORMAT_VERSION:
        raise ContainerError(f"unsupported jaxlic format version {version} (this build reads {FORMAT_VERSION})")
    if n > _MAX_HEADER or _PREFIX.size + n + _CRC.size > len(data):
        raise ContainerError(f"file is truncated or corrupt (header of {n} bytes does not fit in {len(data)})")
    body, (crc,) = data[:-_CRC.size], _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(body) != crc:
        raise ContainerError("checksum mismatch: the file is corrupt or truncated")
    try:
        h = json.loads(body[_PREFIX.size:_PREFIX.size + n].decode())
        streams_len = [int(s) for s in h["streams"]]
        image_size = tuple(int(v) for v in h["image_size"])
        shapes = {str(k): [int(d) for d in v] for k, v in h["shapes"].items()}
        model, coder, config_hash = str(h["model"]), str(h["coder"]), str(h["config_hash"])
        weights_hash = str(h.get("weights_hash", ""))
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise ContainerError(f"malformed header: {e}") from None
    payload = body[_PREFIX.size + n:]
    if any(s < 0 for s in streams_len) or sum(streams_len) != len(payload):
        raise ContainerError(f"header lists {sum(streams_len)} payload bytes, file has {len(payload)}")
    if len(image_size) != 2 or min(image_size) < 1:
        raise ContainerError(f"malformed header: image size {image_size}")
    streams, pos = [], 0
    for s in streams_len:
        streams.append(payload[pos:pos + s])
        pos += s
    return Container(model, config_hash, coder, image_size, shapes, streams, weights_hash, version)
