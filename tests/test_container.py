"""The .jlc container: 1000 corrupted or truncated files each end in a clear error, never garbage."""
import dataclasses
import struct
import zlib

import numpy as np
import pytest

from helpers import converted
from jaxlic.codec import Codec, DecodeError
from jaxlic.coding.container import MAGIC, Container, ContainerError, read_container, write_container


@pytest.fixture(scope="module")
def codec_and_file():
    name, config, model, variables, _, out = converted("mbt2018_mean", precision=None)
    codec = Codec(name, model, variables, model.build_tables(variables), config)
    img = np.random.default_rng(0).integers(0, 256, (40, 70, 3), dtype=np.uint8)
    return codec, codec.compress(img)


def test_round_trip_fields():
    """Every field survives; a fixed-rate file (format 4) has no rate field, a variable-rate one (format 5)
    its gain as float32 (5 bytes more); a rate flag other than 0 or 1 and a gain that is not positive are
    refused."""
    c = Container("m", "00ab" * 4, "tfc", (5, 70000), {"y": [1, 2, 300], "z": [4]}, [b"xy", b"", b"z" * 200],
                  "12cd" * 4, version=4, checks=bytes(range(5, 17)), repair=bytes(range(40, 50)))
    data = write_container(c)
    r = read_container(data)
    assert (r.model, r.config_hash, r.coder, r.image_size, r.shapes, r.streams, r.weights_hash, r.checks,
            r.repair, r.gain) == ("m", "00ab" * 4, "tfc", (5, 70000), {"y": [1, 2, 300], "z": [4]},
                                  [b"xy", b"", b"z" * 200], "12cd" * 4, bytes(range(5, 17)), bytes(range(40, 50)),
                                  None)
    assert len(data) - 202 - 12 - 10 < 52  # the header stays small
    rated = write_container(dataclasses.replace(c, version=5, gain=0.4))
    assert read_container(rated).gain == np.float32(0.4) and len(rated) == len(data) + 5
    with pytest.raises(ValueError, match="no rate"):
        write_container(dataclasses.replace(c, gain=0.4))
    body = rated[:-4]
    flag = len(body) - 202 - 5  # the payload (202 bytes) follows the flag and the gain
    assert body[flag] == 1
    for bad, match in ((body[:flag] + b"\x02" + body[flag + 1:], "rate flag"),
                       (body[:flag + 1] + struct.pack("<f", -1.0) + body[flag + 5:], "rate gain")):
        with pytest.raises(ContainerError, match=match):
            read_container(bad + struct.pack("<I", zlib.crc32(bad)))


def _corruptions(data: bytes, n: int, rng):
    kinds = ["flip", "flips", "truncate", "random", "magic", "version", "bytes", "append"]
    for i in range(n):
        kind = kinds[i % len(kinds)]
        b = bytearray(data)
        if kind == "flip":
            p = rng.integers(len(b) * 8)
            b[p // 8] ^= 1 << (p % 8)
        elif kind == "flips":
            for p in rng.integers(0, len(b) * 8, rng.integers(2, 20)):
                b[p // 8] ^= 1 << (p % 8)
        elif kind == "truncate":
            b = b[:rng.integers(0, len(b))]
        elif kind == "random":
            b = bytearray(rng.integers(0, 256, rng.integers(0, 2 * len(b)), dtype=np.uint8).tobytes())
            if i % 16 == 2:
                b[:4] = MAGIC  # random bytes behind a valid magic
        elif kind == "magic":
            b[rng.integers(0, 4)] ^= 0xFF
        elif kind == "version":
            b[4] = int(rng.integers(2, 256))
        elif kind == "bytes":
            p = rng.integers(0, len(b), rng.integers(1, 8))
            for q in p:
                b[q] = (b[q] + int(rng.integers(1, 256))) % 256
        elif kind == "append":
            b += rng.integers(0, 256, rng.integers(1, 10), dtype=np.uint8).tobytes()
        if bytes(b) != data:
            yield kind, bytes(b)


def test_thousand_corruptions_give_clear_errors(codec_and_file):
    codec, data = codec_and_file
    rng = np.random.default_rng(1)
    seen = {}
    for kind, bad in _corruptions(data, 1000, rng):
        with pytest.raises((ContainerError, DecodeError)) as e:
            codec.decompress(bad)
        msg = str(e.value)
        assert msg and "Traceback" not in msg
        seen.setdefault(kind, set()).add(msg.split(":")[0][:40])
    assert len(seen) == 8
    assert any("unsupported jaxlic format version" in m for m in seen["version"])
    assert any("not a jaxlic file" in m for m in seen["magic"])


def _reseal(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def test_valid_checksum_but_wrong_content(codec_and_file):
    codec, data = codec_and_file
    c = read_container(data)
    cases = {
        "written by model": dataclasses.replace(c, model="other-model"),
        "another configuration": dataclasses.replace(c, config_hash="0" * 16),
        "other weights": dataclasses.replace(c, weights_hash="1" * 16),
        "latent layout": dataclasses.replace(c, image_size=(c.image_size[0] + 64, c.image_size[1])),
        "latent layout ": dataclasses.replace(c, streams=c.streams + [b""]),
    }
    for expected, bad in cases.items():
        with pytest.raises(DecodeError, match=expected.strip()):
            codec.decompress(write_container(bad))
    body = bytearray(data[:-4])
    body[4 + 1 + 1 + len(c.model) + 16] = 7  # coder id
    with pytest.raises(ContainerError, match="unknown coder id"):
        codec.decompress(_reseal(bytes(body)))
    with pytest.raises(ContainerError, match="header runs past the end"):
        codec.decompress(_reseal(data[:4 + 1 + 1 + len(c.model) + 10]))
    with pytest.raises(ContainerError, match="payload bytes"):
        codec.decompress(_reseal(data[:-5]))
