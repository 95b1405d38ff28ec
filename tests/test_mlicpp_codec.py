"""MLIC++'s real codec: 2 x slice_num + 1 coding steps (z, then per slice its checkerboard anchors and
non-anchors) against the official compress/decompress on ../shared/fixtures/mlicpp, and exact round trips."""
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import coder_params, nhwc, rel_err
from helpers import RoundTrip, assert_8bit_matches, assert_differ_only_near, converted, fixture_images, padded_forward
from jaxlic.codec import Codec, to_uint8
from jaxlic.coding.container import read_container
from jaxlic.convert.compressai import compressai_tables

TOL = 1e-5
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _squeeze(a, anchors: bool):
    """(B, C, h, w) -> (B, C, h, w/2): the official ckbd_{anchor,nonanchor}_sequeeze, written independently."""
    rows = [a[:, :, r, (r + anchors) % 2::2] for r in range(a.shape[2])]
    return np.stack(rows, axis=2)


def _official_order(out, slice_ch):
    """Per (slice, part) segment of the official y symbols: the official arrays in that layout, (B, C, h, w/2)."""
    segs = []
    for sl, part, start, length in out["codec_y_segments"]:
        pick = lambda a: _squeeze(a[:, sl * slice_ch:(sl + 1) * slice_ch], anchors=part == 0)
        segs.append((int(sl), int(part), slice(int(start), int(start + length)), pick))
    return segs


@pytest.fixture(scope="module", params=["mlicpp", "mlicpp_old"])
def official(request):
    return (request.param,) + converted(request.param)


@pytest.mark.parity
@pytest.mark.parametrize("coder", coder_params())
@pytest.mark.parametrize("tables", ["rebuilt", "checkpoint"])
def test_codec_matches_official(official, coder, tables):
    """Symbols and scale-table indexes in the official coding order (z, then per slice anchors, non-anchors),
    identical except within float tolerance of a rounding or table boundary (counted); decoded latents and image
    equal to the official decompress to 1e-5; decode(encode) exact."""
    fixture, name, config, model, variables, sd, out = official
    t = model.build_tables(variables)
    if tables == "checkpoint":
        t = {k: compressai_tables(sd, k) for k in t}
    codec = Codec(name, model, variables, t, config)
    x = nhwc(out["x"])
    s = model.slice_ch
    scale_table = sd["gaussian_conditional.scale_table"].astype(np.float64)
    y, means, scales = out["y"].astype(np.float64), out["means_hat"].astype(np.float64), out["scales_hat"]
    counts = {"y_symbols": 0, "y_indexes": 0, "z_symbols": 0}
    for b, img in fixture_images(out, fixture):
        rt = RoundTrip(codec, img, coder)
        c, sym, idx = rt.container, rt.sym, rt.idx
        steps = [g.name for g in codec.plan(*img.shape[:2]).groups]
        assert steps == ["z"] + [f"y{i}_{p}" for i in range(model.slice_num) for p in ("anchor", "nonanchor")]
        for (sl, part, seg, pick), step in zip(_official_order(out, s), steps[1:]):
            assert step == f"y{sl}_{'anchor' if part == 0 else 'nonanchor'}"
            n = seg.stop - seg.start
            ref_sym = out["codec_y_symbols"][seg].reshape((x.shape[0], -1))[b]
            ref_idx = out["codec_y_indexes"][seg].reshape((x.shape[0], -1))[b]
            assert sym[step].size * x.shape[0] == n
            res = pick(y - means)[b].reshape(-1)
            near = np.abs(np.abs(res - np.floor(res)) - 0.5) <= TOL * np.abs(y).max()
            counts["y_symbols"] += assert_differ_only_near(step, sym[step].reshape(-1), ref_sym, near)
            sc = np.maximum(pick(scales)[b].reshape(-1).astype(np.float64), 0.11)
            near_t = (np.abs(sc[:, None] - scale_table[None, :]) <= TOL * sc[:, None]).any(1)
            counts["y_indexes"] += assert_differ_only_near(step + " indexes", idx[step].reshape(-1), ref_idx, near_t)
        zres = nhwc(out["z"])[b] - sd["entropy_bottleneck.quantiles"][:, 0, 1]
        near = np.abs(np.abs(zres - np.floor(zres)) - 0.5) <= TOL * np.abs(out["z"]).max()
        counts["z_symbols"] += assert_differ_only_near("z", sym["z"].reshape(-1), out["codec_z_symbols"][b],
                                                       np.transpose(near, (2, 0, 1)).reshape(-1))
        err = rel_err(rt.x_hat, nhwc(out["codec_x_hat"])[b])
        print(f"{fixture} b={b} {coder} {tables} tables: decoded x_hat max relative error {err:.2e}; streams "
              f"{[len(v) for v in c.streams]} bytes (official z {out['codec_z_string_lengths'].tolist()}, "
              f"y {out['codec_y_string_lengths'].tolist()}); differing at a boundary {counts}")
        assert err <= TOL


def test_codec_plan_is_two_steps_per_slice():
    """20 y steps at the official 10 slices (plus z), each coding exactly its checkerboard half of its slice, in
    the official order (``_squeeze`` of the NCHW slice: per channel, row by row, the anchors at odd columns of
    even rows and even columns of odd rows)."""
    import jax.numpy as jnp
    from jaxlic.models.mlicpp import MLICPlusPlus
    from jaxlic.plan import check_coverage
    model = MLICPlusPlus()
    shapes = model.latent_shapes(1, 128, 192)
    plan = model.plan(shapes)
    steps = plan.groups
    assert len(steps) == 21 and sum(st.table == "gaussian_conditional" for st in steps) == 20
    assert check_coverage(plan) == {"y": 8 * 12 * 320, "z": 2 * 3 * 192}
    nchw = np.arange(int(np.prod(shapes["y"]))).reshape(shapes["y"]).transpose(0, 3, 1, 2)
    for k, st in enumerate(steps[1:]):
        i, anchors = divmod(k, 2)
        assert st.name == f"y{i}_{'nonanchor' if anchors else 'anchor'}"
        np.testing.assert_array_equal(np.asarray(st.elements(jnp.int32(0))),
                                      _squeeze(nchw[:, i * 32:(i + 1) * 32], anchors=not anchors).reshape(-1))


@pytest.fixture(scope="module")
def converted_mlicpp():
    return converted("mlicpp", precision=None)


@pytest.fixture(scope="module")
def codec(converted_mlicpp):
    name, config, model, variables, _, _ = converted_mlicpp
    return Codec(name, model, variables, model.build_tables(variables), config)


def _forward_expectation(model, variables, img):
    """What the file must decode to, from the evaluation forward (checked against the official forward above,
    and a separate computation from the codec's step functions) on the image edge-padded to 64 here: the z
    and y symbols per step in the official layout, the values they are rounded from, and the cropped image."""
    h, w = img.shape[:2]
    out = padded_forward(model, variables, img)
    med = np.asarray(variables["params"]["entropy_bottleneck"]["quantiles"])[:, 0, 1]
    res = {"z": np.transpose(np.asarray(out["z"], np.float64) - med, (0, 3, 1, 2))}
    y_res = np.transpose(np.asarray(out["y"], np.float64) - np.asarray(out["means"], np.float64), (0, 3, 1, 2))
    s = model.slice_ch
    for i in range(model.slice_num):
        for part in ("anchor", "nonanchor"):
            res[f"y{i}_{part}"] = _squeeze(y_res[:, i * s:(i + 1) * s], anchors=part == "anchor")
    return res, np.asarray(out["x_hat"], np.float64)[0, :h, :w]


@pytest.mark.parametrize("coder", coder_params())
@pytest.mark.parametrize("size", [(1, 1), (37, 100), (128, 64)])
def test_round_trip_any_size(codec, coder, size):
    """Sizes that are not multiples of 64 and 1x1: decoded symbols equal the encoder's and the rounding of the
    evaluation forward on the padded image (except within 1e-4 of .5, counted), and the decoded 8-bit image is
    the forward's reconstruction, cropped, rounded to 8 bits (except within 1e-2 of a rounding step)."""
    rng = np.random.default_rng(sum(size))
    img = rng.integers(0, 256, size + (3,), dtype=np.uint8)
    e = codec.encode(img, coder)
    sym, data = e.symbols, e.data
    assert sum(int(np.count_nonzero(v)) for v in sym.values()) > 0
    d = codec.decode(data)
    decoded, sym2 = d.image, d.symbols
    res, x_hat = _forward_expectation(codec.model, codec.variables, img)
    differ = 0
    for k in sym:
        np.testing.assert_array_equal(sym[k], sym2[k], err_msg=k)
        near = np.abs(np.abs(res[k] - np.floor(res[k])) - 0.5) <= 1e-4
        differ += assert_differ_only_near(k, sym[k].reshape(-1), np.round(res[k]).astype(np.int32).reshape(-1),
                                          near.reshape(-1))
    assert decoded.shape == size + (3,) and decoded.dtype == np.uint8
    assert read_container(data).image_size == size
    if differ:  # a symbol on a rounding boundary changes everything decoded after it
        pytest.skip(f"{differ} symbols differ from the forward at a rounding boundary; pixels not comparable")
    assert_8bit_matches(decoded, x_hat)


def test_round_trip_across_processes(converted_mlicpp, tmp_path):
    """A file encoded here decodes in another process (its own compilation) to the same symbols, bit for bit; on
    a simulated platform (drift=1e-2) the decoder stops with the index-check error."""
    from jaxlic.export import load_model, save_model
    name, config, model, variables, _, _ = converted_mlicpp
    ckpt = tmp_path / "mlicpp.npz"
    save_model(str(ckpt), name, config, variables, model.build_tables(variables))
    name, config, model, variables, tables = load_model(str(ckpt))
    here = Codec(name, model, variables, tables, config)
    img = np.random.default_rng(5).integers(0, 256, (70, 130, 3), dtype=np.uint8)
    e = here.encode(img)
    sym = e.symbols
    (tmp_path / "a.jlc").write_bytes(e.data)
    script = ("import sys, numpy as np; from jaxlic.codec import Codec; from jaxlic.export import load_model;"
              "n, c, m, v, t = load_model(sys.argv[1]); d = Codec(n, m, v, t, c).decode("
              "open(sys.argv[2], 'rb').read()); np.savez(sys.argv[3], x=d.x_hat, **d.symbols)")
    subprocess.run([sys.executable, "-c", script, str(ckpt), str(tmp_path / "a.jlc"), str(tmp_path / "d.npz")],
                   check=True, timeout=600)
    with np.load(tmp_path / "d.npz") as f:
        for k in sym:
            np.testing.assert_array_equal(f[k], sym[k], err_msg=k)
        np.testing.assert_array_equal(to_uint8(f["x"]), here.decompress((tmp_path / "a.jlc").read_bytes()))
    from jaxlic.codec import IndexMismatch
    with pytest.raises(IndexMismatch, match="^coding step y.*coding-table indexes differ"):
        here.decompress((tmp_path / "a.jlc").read_bytes(), drift=1e-2)


def test_configs_official_lambdas():
    """The twelve official models: quality 1..6 of each loss picks the published lambda; the recipe's fields."""
    from jaxlic.training.config import load_config
    path = str(ROOT / "configs" / "mlicpp.py")
    mse = [load_config(f"{path}:quality={q}").lmbda for q in range(1, 7)]
    msssim = [load_config(f"{path}:quality={q},loss=ms-ssim").lmbda for q in range(1, 7)]
    assert mse == [0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483]
    assert msssim == [2.40, 4.58, 8.73, 16.64, 31.73, 60.50]
    c = load_config(f"{path}:quality=3")
    assert (c.batch_size, c.data.crop, c.optim.lr, c.optim.aux_lr, c.optim.clip_norm, c.data.flip) == \
        (32, 256, 1e-4, 1e-3, 1.0, False)
    assert dict(c.model_config) == {"N": 192, "M": 320, "slice_num": 10, "context_window": 5, "old_g_s": False,
                                    "old_lrp": False}
    with pytest.raises(ValueError, match="quality must be 1..6"):
        load_config(f"{path}:quality=7")


@pytest.mark.slow
def test_tiny_training_run_trains_every_parameter_and_exports_a_working_codec(tmp_path):
    """train.py's Trainer on MLIC++ (tiny config), started from a saved model (``init_from``): finite RD loss
    with the mixed quantization (noise for the rates, STE for the decoder and the contexts), so every parameter
    receives a gradient and moves (Adam moves a parameter exactly when a gradient of it is non-zero; the
    factorized prior's quantiles move by the aux loss anyway); an exported model that round-trips through the
    real codec."""
    import jax
    from flax import traverse_util
    from PIL import Image
    from jaxlic.export import load_model, save_model
    from jaxlic.training.config import load_config
    from jaxlic.training.trainer import Trainer
    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(tmp_path / "img" / f"{i}.png")
    c = load_config(str(ROOT / "configs" / "mlicpp.py") + ":tiny")
    c.data.paths = (str(tmp_path / "img"),)
    trainer = Trainer(c, str(tmp_path / "w"))
    model = trainer.model
    variables = jax.device_get(trainer._init(jax.random.PRNGKey(c.seed)))  # the run's own (compiled) init
    # at initialisation |z| << 0.5 and the medians are 0, so z_hat = 0 and h_s's first kernel would get no
    # gradient; shifted medians make z_hat non-zero (as after any training)
    eb = variables["params"]["entropy_bottleneck"]
    variables = {**variables, "params": {**variables["params"], "entropy_bottleneck": {
        **eb, "quantiles": eb["quantiles"] + 0.3}}}
    save_model(str(tmp_path / "init.npz"), c.model, dict(c.model_config), variables, model.build_tables(variables))
    c.init_from = str(tmp_path / "init.npz")  # read when the run starts
    history = trainer.run(progress=False)
    assert [h["step"] for h in history] == [1, 2, 3]
    assert all(np.isfinite(h["loss"]) and h["bpp"] > 0 for h in history)
    name, config, model, trained, tables = load_model(str(tmp_path / "w" / "model.npz"))
    before, after = (traverse_util.flatten_dict(v["params"]) for v in (variables, trained))
    still = ["/".join(k) for k in before if np.array_equal(np.asarray(before[k]), np.asarray(after[k]))]
    # the linear attention's keys are a softmax over positions, which a per-channel bias does not change: the
    # keys' bias has no gradient in exact arithmetic (in the official model too), only rounding noise at most
    invariant = re.compile(r"global_(inter|intra)_context_\d+/keys_\d+/bias")
    assert not [k for k in still if not invariant.fullmatch(k)], still
    assert all(np.isfinite(np.asarray(v)).all() for v in after.values())
    codec = Codec(name, model, trained, tables, config)
    img = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    e = codec.encode(img)
    sym, sym2 = e.symbols, codec.decode(e.data).symbols
    assert all(np.array_equal(sym[k], sym2[k]) for k in sym)


@pytest.mark.slow
def test_cli_converts_and_codes_an_official_state_dict(tmp_path, capsys):
    """jaxlic convert (model detected from the keys) -> compress -> decompress through the command line; the
    decoded image equals the in-process decode of the same file."""
    from PIL import Image
    from conftest import fixture_dir
    from jaxlic.cli import main
    from jaxlic.export import load_model
    assert main(["convert", str(fixture_dir("mlicpp") / "weights.npz"), str(tmp_path / "m.npz")]) == 0
    assert "mlicpp" in capsys.readouterr().out
    img = np.random.default_rng(2).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "in.png")
    assert main(["compress", str(tmp_path / "in.png"), str(tmp_path / "a.jlc"), "--checkpoint",
                 str(tmp_path / "m.npz")]) == 0
    assert main(["decompress", str(tmp_path / "a.jlc"), str(tmp_path / "out.png"), "--checkpoint",
                 str(tmp_path / "m.npz")]) == 0
    name, config, model, variables, tables = load_model(str(tmp_path / "m.npz"))
    expected = Codec(name, model, variables, tables, config).decompress((tmp_path / "a.jlc").read_bytes())
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), expected)
    # a file of this model is refused, with a clear message, by a checkpoint of another model
    assert main(["decompress", str(tmp_path / "a.jlc"), str(tmp_path / "x.png"), "--checkpoint",
                 "mbt2018-mean-cpu-0.0067"]) == 2
    assert "written by model 'mlicpp'" in capsys.readouterr().err
