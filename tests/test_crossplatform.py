"""Files that decode on any machine (issue 13): the one index function, the simulated platform, the index checks."""
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlic import assets
from jaxlic.codec import DRIFT_ENV, Codec, drift_from_env, simulate_drift, table_indexes
from jaxlic.coding.container import write_container
from jaxlic.entropy.gaussian import build_indexes, default_scale_table
from jaxlic.errors import UserError
from jaxlic.export import load_model


@pytest.fixture(scope="module")
def shipped():
    name, config, model, variables, tables = load_model(assets.resolve("mbt2018-mean-cpu-0.0067"))
    return Codec(name, model, variables, tables, config)


def test_simulated_drift_is_bounded_seeded_and_per_step():
    s = jnp.exp(jnp.linspace(-3.0, 5.0, 4096)).reshape(64, 64)
    a = np.asarray(simulate_drift(s, 1e-3, 1, jnp.int32(4)))
    ratio = a / np.asarray(s) - 1
    assert np.abs(ratio).max() <= 1e-3 * (1 + 1e-6) and np.abs(ratio).max() > 0.9e-3  # fills [-rel, rel]
    assert abs(ratio.mean()) < 1e-4                                                   # u centred
    np.testing.assert_array_equal(a, simulate_drift(s, 1e-3, 1, jnp.int32(4)))         # a fixed seed
    assert not np.array_equal(a, simulate_drift(s, 1e-3, 1, jnp.int32(5)))             # another step, other u
    assert not np.array_equal(a, simulate_drift(s, 1e-3, 2, jnp.int32(4)))             # another group
    idx = jnp.arange(12, dtype=jnp.int32)
    assert simulate_drift(idx, 0.5, 0, 0) is idx                                       # indexes pass through


def test_drift_setting_is_read_and_checked(monkeypatch):
    monkeypatch.delenv(DRIFT_ENV, raising=False)
    assert drift_from_env() == 0.0
    monkeypatch.setenv(DRIFT_ENV, "1e-5")
    assert drift_from_env() == 1e-5
    for bad in ("abc", "-1e-5", "2"):
        monkeypatch.setenv(DRIFT_ENV, bad)
        with pytest.raises(UserError, match=DRIFT_ENV):
            drift_from_env()


def test_indexes_come_from_the_family_lookup(shipped):
    """The codec's one index function: the Gaussian family's build_indexes for scales (here against the scale
    table directly), integers unchanged."""
    scales = jnp.asarray(np.random.default_rng(0).lognormal(0.0, 2.0, (3, 50)), jnp.float32)
    got = table_indexes(shipped.model, shipped.variables, "gaussian_conditional", scales)
    np.testing.assert_array_equal(got, build_indexes(scales, default_scale_table()))
    idx = jnp.arange(7, dtype=jnp.int32)
    assert table_indexes(shipped.model, shipped.variables, "entropy_bottleneck", idx) is idx


def test_decoder_on_a_simulated_platform_stops_before_the_step(shipped, monkeypatch):
    """JAXLIC_SIMULATE_DRIFT=0 decodes exactly. kodim01 with the shipped model: a drift of 1e-7 leaves every
    table index in place; 1e-5 (a platform's) moves some of y's, and the decoder stops at y's step, before its
    symbols, with the error that names it."""
    from conftest import kodak_images
    from jaxlic.codec import IndexMismatch
    from jaxlic.io import read_image
    img = read_image(str(kodak_images()[0]))
    c, sym = shipped.encode_latents(img)
    data = write_container(c)
    for rel in ("0", "1e-7"):
        monkeypatch.setenv(DRIFT_ENV, rel)
        _, same = shipped.decode_latents(data)
        assert all(np.array_equal(sym[k], same[k]) for k in sym), rel
    monkeypatch.setenv(DRIFT_ENV, "1e-5")
    with pytest.raises(IndexMismatch, match=r"^coding step y: this machine's coding-table indexes differ"):
        shipped.decode_latents(data)


def test_checks_pack_and_budget():
    """Every step's check and the whole-file CRC survive packing; the short checks share 64 bits (16 at most,
    1 at least a step); a check catches a changed index."""
    from jaxlic.coding.checks import IndexChecks, step_bits
    assert [step_bits(n) for n in (1, 2, 4, 5, 21, 64, 141, 1000)] == [16, 16, 16, 12, 3, 1, 1, 1]
    rng = np.random.default_rng(0)
    for steps in (1, 3, 25, 141):
        idx = [rng.integers(0, 64, rng.integers(0, 300)).astype(np.int32) for _ in range(steps)]
        enc = IndexChecks(steps)
        for i in idx:
            enc.add(i)
        packed = enc.pack()
        assert len(packed) == 4 + (steps * step_bits(steps) + 7) // 8
        dec = IndexChecks.unpack(packed, steps)
        assert all(dec.verify(i) for i in idx) and dec.verify_all()
        bad = IndexChecks.unpack(packed, steps)
        changed = [i.copy() for i in idx]
        j = next(k for k, i in enumerate(changed) if i.size)
        changed[j][0] ^= 1
        ok = [bad.verify(i) for i in changed]
        assert all(ok[:j]) and not bad.verify_all()
        with pytest.raises(ValueError):
            IndexChecks.unpack(packed[:-1], steps)


def test_cli_on_a_simulated_platform_writes_nothing(tmp_path):
    """``JAXLIC_SIMULATE_DRIFT=1e-5 jaxlic decompress``: one line naming the step, exit status 2, no image."""
    import subprocess
    import sys
    from PIL import Image
    from conftest import kodak_images
    img = np.asarray(Image.open(kodak_images()[0]).convert("RGB"))[:128, :192]
    Image.fromarray(img).save(tmp_path / "in.png")
    run = lambda *a, **env: subprocess.run([sys.executable, "-m", "jaxlic.cli", *a], capture_output=True, text=True,
                                           env={**__import__("os").environ, **env})
    assert run("compress", str(tmp_path / "in.png"), str(tmp_path / "a.jlc")).returncode == 0
    p = run("decompress", str(tmp_path / "a.jlc"), str(tmp_path / "out.png"), JAXLIC_SIMULATE_DRIFT="1e-2")
    assert p.returncode == 2 and "coding-table indexes differ" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "out.png").exists() and sorted(x.name for x in tmp_path.iterdir()) == ["a.jlc", "in.png"]
    assert run("decompress", str(tmp_path / "a.jlc"), str(tmp_path / "out.png"), JAXLIC_SIMULATE_DRIFT="0").returncode == 0


def test_format_2_files_still_decode_unchecked(shipped, monkeypatch):
    """Files written before the index checks (format 2) decode as they did: exactly here, unchecked (a drifted
    decoder then fails in the coder, still as a DecodeError)."""
    import dataclasses
    from jaxlic.codec import DecodeError
    from jaxlic.coding.container import read_container
    img = np.random.default_rng(4).integers(0, 256, (70, 50, 3), dtype=np.uint8)
    c, sym = shipped.encode_latents(img)
    old = write_container(dataclasses.replace(c, version=2, checks=b""))
    assert old[4] == 2 and read_container(old).checks == b""
    _, got = shipped.decode_latents(old)
    assert all(np.array_equal(sym[k], got[k]) for k in sym)
    monkeypatch.setenv(DRIFT_ENV, "0.5")
    with pytest.raises(DecodeError):
        shipped.decode_latents(old)
