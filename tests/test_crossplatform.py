"""Files that decode on any machine (issue 13): the one index function, the simulated platform, the index checks,
the repair of indexes near table boundaries."""
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlic import assets
from jaxlic.cli import DRIFT_ENV, drift_from_env
from jaxlic.codec import Codec
from jaxlic.coding.protection import simulate_drift
from jaxlic.compiled import table_indexes
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
    """The codec's one index function: for scales, the index of the largest entry of the model's scale table
    below max(scale, 0.11) (written out here in numpy over the table the model holds), found through the plan
    group's entropy model; integers unchanged."""
    table = np.asarray(shipped.variables["constants"]["gaussian_conditional"]["scale_table"])
    scales = np.concatenate([np.random.default_rng(0).lognormal(0.0, 2.0, 150).astype(np.float32), table,
                             np.float32([0.0, 0.05, 0.11, 1e3])]).reshape(2, -1)  # entries exactly: boundaries
    plan = shipped.plan(64, 64)
    y = next(g for g in plan.groups if g.latent == "y")
    got = np.asarray(table_indexes(shipped.model, shipped.variables, y, jnp.asarray(scales)))
    want = (table[None, None, :-1] < np.maximum(scales, np.float32(0.11))[..., None]).sum(-1)
    np.testing.assert_array_equal(got, want)
    assert got.min() == 0 and got.max() == len(table) - 1  # both ends of the table
    idx = jnp.arange(7, dtype=jnp.int32)
    z = next(g for g in plan.groups if g.latent == "z")
    assert table_indexes(shipped.model, shipped.variables, z, idx) is idx


def test_decoder_on_a_simulated_platform_stops_before_the_step(shipped, monkeypatch):
    """kodim01 with the shipped model. Repair off: JAXLIC_SIMULATE_DRIFT=0 decodes exactly, a drift of 1e-7
    leaves every table index in place, 1e-5 (a platform's) moves some of y's, and the decoder stops at y's step,
    before its symbols, with the error that names it. Repair on at 1e-5 (the default): decodes exactly under a
    drift of 1e-5, and one of 1e-4 is the same clear error, which names the margin."""
    from conftest import kodak_images
    from jaxlic.codec import DEFAULT_ROBUST_MARGIN, IndexMismatch
    from jaxlic.io import read_image
    img = read_image(str(kodak_images()[0]))
    e = shipped.encode(img, robust_margin=0)
    sym, data = e.symbols, e.data
    monkeypatch.setenv(DRIFT_ENV, "0.5")  # the library does not read it: only the CLI does
    for rel in (0, 1e-7):
        same = shipped.decode(data, drift=rel).symbols
        assert all(np.array_equal(sym[k], same[k]) for k in sym), rel
    with pytest.raises(IndexMismatch, match=r"^coding step y: this machine's coding-table indexes differ.*"
                                            r"without a robust margin"):
        shipped.decode(data, drift=1e-5)
    for bad in (-1e-5, 2, "abc"):
        with pytest.raises(UserError, match="simulated drift"):
            shipped.decode(data, drift=bad)
    assert DEFAULT_ROBUST_MARGIN == 1e-5
    e = shipped.encode(img)
    sym, robust = e.symbols, e.data
    assert e.side["repair_keys"] > 0 and len(robust) - len(data) == len(e.container.repair) == \
        e.side["repair_bytes"] < 0.002 * len(data)
    for rel in (1e-6, 1e-5):
        same = shipped.decode(robust, drift=rel).symbols
        assert all(np.array_equal(sym[k], same[k]) for k in sym), rel
    with pytest.raises(IndexMismatch, match=r"^coding step y: .* by more than its robust margin 1e-05"):
        shipped.decode(robust, drift=1e-4)


def test_protection_gives_the_encoders_indexes_or_stops_at_the_step():
    """The protection on its own, on made-up steps: the decoder sees a subset of the elements the encoder
    flagged near a boundary, on the other side of it; ``resolve`` gives back the encoder's index there and its
    own elsewhere (padding ignored), and the checks pass. An index off by one outside the flagged set stops at
    that step, named; a margin as wide as the table's spacing is refused."""
    from jaxlic.coding.protection import Protection
    from jaxlic.errors import IndexMismatch
    rng = np.random.default_rng(7)
    steps, n = 4, 300
    truth = [rng.integers(1, 60, n).astype(np.int32) for _ in range(steps)]
    valid = [np.ones(n, bool), rng.random(n) < 0.7, np.ones(n, bool), rng.random(n) < 0.5]
    flagged = [rng.random(n) < 0.2 for _ in range(steps)]
    near = [np.where(f, t - rng.integers(0, 2, n), -1).astype(np.int32) for t, f in zip(truth, flagged)]
    enc = Protection.for_encoder(steps, 1e-3)
    for s in range(steps):
        enc.record(s, truth[s], valid[s], near[s])
    checks, repair = enc.pack()
    assert enc.repair.keys == sum(int((f & v).sum()) for f, v in zip(flagged, valid))

    def decoder():
        dec = Protection.for_decoder(checks, repair, steps, version=3)
        assert dec.delta == enc.delta and 0 < dec.margin < enc.margin
        return dec

    dec = decoder()
    for s in range(steps):
        seen = flagged[s] & (rng.random(n) < 0.6)
        mine = truth[s].copy()
        mine[seen] = 2 * near[s][seen] + 1 - truth[s][seen]  # the other side of the same boundary
        mine[~valid[s]] = 99  # padding: whatever this machine computed there
        got = dec.resolve(s, mine, valid[s], np.where(seen, near[s], -1), f"step {s}")
        np.testing.assert_array_equal(got[valid[s]], truth[s][valid[s]])
    dec.finish()

    dec = decoder()
    dec.resolve(0, truth[0], valid[0], np.full(n, -1), "step 0")
    wrong = truth[1].copy()
    wrong[np.flatnonzero(valid[1] & ~flagged[1])[0]] += 1
    with pytest.raises(IndexMismatch, match=r"^step 1: .*robust margin 0.001"):
        dec.resolve(1, wrong, valid[1], np.full(n, -1), "step 1")
    with pytest.raises(ValueError, match="too wide"):
        Protection.for_encoder(steps, 1e-3, spacing=5e-3)


def test_repair_table_returns_every_stored_bit():
    """The static function gives back each stored key's bit (any number of keys, keys of any step), costs
    about 1.23 bits a key, and a malformed table is refused."""
    from jaxlic.coding.repair import Repair, key
    rng = np.random.default_rng(1)
    for n in (0, 1, 2, 7, 100, 3000):
        r = Repair(2e-5)
        keys = key(rng.integers(0, 200), rng.choice(1 << 30, n, replace=False))
        bits = rng.integers(0, 2, n).astype(np.uint8)
        r.store(keys[: n // 2], bits[: n // 2])
        r.store(keys[n // 2:], bits[n // 2:])
        packed = r.pack()
        got = Repair.unpack(packed)
        assert got.delta == r.delta and 2e-5 <= r.delta < 2.2e-5 and r.keys == n
        np.testing.assert_array_equal(got.lookup(keys), bits)
        if n >= 100:
            assert 8 * len(packed) < 1.3 * n + 80
        with pytest.raises(ValueError):
            Repair.unpack(packed[:-1])
    assert Repair(0).pack() == b"" and not Repair.unpack(b"").on
    with pytest.raises(ValueError, match="robust margin"):
        Repair(0.5)


def test_nearest_boundary_is_where_the_index_can_change():
    """Against float64 arithmetic: a flagged scale lies within the margin of table[j] (a boundary at or above
    the bound), its index is j or j + 1 by the side it lies on; an unflagged scale keeps its index anywhere in
    [s (1 - margin), s (1 + margin)], scales below the bound included."""
    from jaxlic.entropy.gaussian import SCALE_BOUND, nearest_boundary
    table = default_scale_table()
    rng = np.random.default_rng(2)
    near = table[rng.integers(0, 63, 20000)] * (1 + rng.uniform(-3e-3, 3e-3, 20000))
    s = np.concatenate([near, rng.lognormal(0, 2, 20000), -rng.lognormal(0, 1, 100), [0.0, SCALE_BOUND]])
    s = s.astype(np.float32)
    margin = 1e-3
    j = np.asarray(nearest_boundary(jnp.asarray(s), table, SCALE_BOUND, margin))
    idx = np.asarray(build_indexes(jnp.asarray(s), table))
    flagged = j >= 0
    assert 0.1 < flagged.mean() < 0.5
    t = table.astype(np.float64)[j[flagged]]
    assert (np.abs(s[flagged] / t - 1) < margin * 1.0001).all() and (t >= np.float32(SCALE_BOUND)).all()
    np.testing.assert_array_equal(idx[flagged], j[flagged] + (s[flagged] > table[j[flagged]]))
    for f in (1 - margin * 0.999, 1 + margin * 0.999):
        moved = np.asarray(build_indexes(jnp.asarray((s.astype(np.float64) * f).astype(np.float32)), table))
        np.testing.assert_array_equal(moved[~flagged], idx[~flagged])


def _model_with_spread_scales(name):
    """(codec, 8-bit image) for a registered model with non-degenerate weights: its parity fixture's weights and
    input (a small random model where it has none), the kernels scaled by the first gain that puts a fifth of
    the scales above the scale bound (random weights, and some fixtures, give scales all below it)."""
    import jax
    from conftest import FIXTURES, nhwc
    from helpers import converted
    from jaxlic.registry import get_spec
    fixture = {"hpcm": "hpcm_base"}.get(name, name.replace("-", "_"))
    if (FIXTURES / fixture / "weights.npz").exists():
        _, config, model, v0, _, out = converted(fixture, precision=None)
        img = np.round(np.clip(nhwc(out["x"])[0], 0, 1) * 255).astype(np.uint8)
    else:
        from helpers import tiny_config
        config = {"mlicpp": {"N": 16, "M": 64, "slice_num": 2}}.get(name) or tiny_config(name)
        model = get_spec(name).build(**config)
        m = model.downsampling
        img = np.random.default_rng(5).integers(0, 256, (2 * m, 2 * m, 3), dtype=np.uint8)
        v0 = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, m, m, 3)))
    codec = None
    for gain in (1.0, 1.5, 2.0, 2.5, 3.0, 4.0):
        v = {**v0, "params": jax.tree_util.tree_map_with_path(
            lambda p, x: x * gain if "kernel" in jax.tree_util.keystr(p) else x, v0["params"])}
        tables = model.build_tables(v)
        codec = Codec(name, model, v, tables, config) if codec is None else codec.with_weights(v, tables)
        scales = codec.encode(img, robust_margin=0, details=True).scales
        scales = np.concatenate([s for s in scales if s.dtype.kind == "f"] or [np.zeros(0)])
        if not scales.size or (np.isfinite(scales).all() and (scales > 0.12).mean() > 0.2):
            return codec, img
    pytest.fail(f"{name}: no gain gives non-degenerate scales")


@pytest.mark.parametrize("name", sorted(__import__("jaxlic.registry", fromlist=["REGISTRY"]).REGISTRY))
def test_every_model_decodes_exactly_on_a_simulated_platform_within_its_margin(name):
    """Every registered model with non-degenerate weights (``_model_with_spread_scales``). Repair off: a drift of
    delta stops the decoder at a step (IndexMismatch). Repair on at delta: drifts up to delta decode exactly;
    4 delta decodes exactly or stops with IndexMismatch, never a wrong image. A factorized prior's indexes are
    exact under any drift."""
    from jaxlic.codec import IndexMismatch
    codec, img = _model_with_spread_scales(name)
    plain = codec.encode(img, robust_margin=0, details=True)
    sym, scales = plain.symbols, [s for s in plain.scales if s.dtype.kind == "f"]
    delta = 5e-3

    def decode(data, drift):
        try:
            got = codec.decode(data, drift=drift).symbols
        except IndexMismatch:
            return "mismatch"
        assert all(np.array_equal(sym[k], got[k]) for k in sym), f"{name}: wrong symbols at drift {drift}"
        return "exact"

    robust = codec.encode(img, robust_margin=delta)
    assert all(np.array_equal(sym[k], robust.symbols[k]) for k in sym)
    if not scales:  # integer indexes only: nothing to repair, nothing to drift
        assert robust.side["repair_keys"] == 0 and decode(plain.data, 0.5) == "exact"
        return
    assert robust.side["repair_keys"] > 0
    robust = robust.data
    assert decode(plain.data, delta) == "mismatch"
    assert [decode(robust, d) for d in (delta / 10, delta)] == ["exact", "exact"]
    decode(robust, 4 * delta)  # either outcome, but never other symbols


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
    # the default robust margin (1e-5) covers a drift of 1e-5
    p = run("decompress", str(tmp_path / "a.jlc"), str(tmp_path / "out.png"), JAXLIC_SIMULATE_DRIFT="1e-5")
    assert p.returncode == 0, p.stderr
    p = run("info", str(tmp_path / "a.jlc"))
    assert "index repair   : robust margin 1e-05" in p.stdout, p.stdout


def test_robust_margin_option_is_checked():
    import argparse
    from jaxlic.cli import _margin
    assert _margin("0") == 0 and _margin("1e-4") == 1e-4
    for bad in ("x", "-1e-5", "0.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="relative error"):
            _margin(bad)


def test_format_2_files_still_decode_unchecked(shipped):
    """Files written before the index checks (format 2) decode as they did: exactly here, unchecked (a drifted
    decoder then fails in the coder, still as a DecodeError)."""
    import dataclasses
    from jaxlic.codec import DecodeError
    from jaxlic.coding.container import read_container
    img = np.random.default_rng(4).integers(0, 256, (70, 50, 3), dtype=np.uint8)
    e = shipped.encode(img)
    sym = e.symbols
    old = write_container(dataclasses.replace(e.container, version=2, checks=b"", repair=b""))
    assert old[4] == 2 and read_container(old).checks == b""
    got = shipped.decode(old).symbols
    assert all(np.array_equal(sym[k], got[k]) for k in sym)
    with pytest.raises(DecodeError):
        shipped.decode(old, drift=0.5)


def test_a_check_that_passes_by_chance_still_ends_in_index_mismatch(shipped, monkeypatch):
    """Short checks pass by chance (every one, here): the coder then fails at that step, or decodes garbage that
    the whole-file CRC-32 of the indexes catches; either way an IndexMismatch, not a stream error or an image."""
    from jaxlic.codec import IndexMismatch
    from jaxlic.coding.checks import IndexChecks
    img = np.random.default_rng(6).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    data = shipped.encode(img, robust_margin=0).data
    monkeypatch.setattr(IndexChecks, "verify", lambda self, idx: (self.add(idx), True)[1])
    with pytest.raises(IndexMismatch, match=r"coding step y \(its short check passed by chance|"
                                            r"the file's coding steps taken together"):
        shipped.decode(data, drift=0.3)
