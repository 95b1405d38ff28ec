"""CompressAI's variable-rate models (issue 28): the forward at every rate a fixture records, stage by stage
(each stage fed the official input of that stage, so rounding flips upstream cannot cascade; mbt2018-vbr's
sequential y part as a whole from the official y and hyper params); the codec's symbols,
table indexes and decoded latents at each of those rates; round trips at three rates; every key of the
published-size state_dicts."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import coder_params, fixture_file, nhwc, rel_err
from helpers import RoundTrip, assert_8bit_matches, assert_differ_only_near, converted, fixture_images
from jaxlic.codec import Codec
from jaxlic.convert import compressai as cai
from jaxlic.entropy.gaussian import default_scale_table
from jaxlic.errors import UserError
from jaxlic.registry import detect_model, get_spec

VBR = ["bmshj2018_hyperprior_vbr", "mbt2018_mean_vbr", "mbt2018_vbr"]
TOL = 1e-5


def _rates(out) -> list[int]:
    rates = sorted(int(k[1:-5]) for k in out if k.startswith("r") and k.endswith("_gain"))
    assert rates, "no rate points (rK_gain) in the fixture"
    return rates


def _near_rounding(res, scale_of):
    return np.abs(np.abs(res - np.floor(res)) - 0.5) <= TOL * np.abs(scale_of).max()




@pytest.mark.parity
@pytest.mark.parametrize("fixture", VBR)
def test_forward_at_every_rate(fixture):
    """Per recorded rate (``rK_gain``): z's step, z_hat and its likelihoods from the official z, the scales
    (and means) from the official z_hat, the offsets network's raw output, y_hat and y's likelihoods from the
    official y, x_hat from the official y_hat; y and z from the input. Each to 1e-5 of its magnitude."""
    name, _, model, v, _, out = converted(fixture)
    ap = lambda fn, *a: np.asarray(model.apply(v, *a, method=fn))
    errs = {"y": rel_err(ap(lambda m, x: m.g_a(x), nhwc(out["x"])), nhwc(out["y"])),
            "z": rel_err(ap(lambda m, y: m.latent_codec.side_latents(y)["z"], nhwc(out["y"])), nhwc(out["z"]))}
    for r in _rates(out):
        # what depends on the rate is recorded per rate (rK_), the rest (mbt2018-vbr's z) once
        p = lambda key: nhwc(out[f"r{r}_{key}"] if f"r{r}_{key}" in out else out[key])
        g = out[f"r{r}_gain"].reshape(())
        rated_z = getattr(model.bind(v).latent_codec.z, "rated", False)
        z_hat, z_lik = model.apply(v, nhwc(out["z"]), g, method=lambda m, z, g: m.latent_codec.z(
            z, **({"gain": g} if rated_z else {})))
        y_part = model.apply(v, nhwc(out["y"]), p("z_hat"), g,
                             method=lambda m, y, z, g: m.latent_codec.y(y, m.h_s(z), gain=g))
        x_hat = ap(lambda m, y: m.g_s(y), p("y_hat"))
        got = {"z_hat": (z_hat, p("z_hat")),
               "z_likelihoods": (z_lik, p("z_likelihoods")), "scales_hat": (y_part["scales"], p("scales_hat")),
               "quant_offset_raw": (y_part["offsets"], p("quant_offset_raw")), "y_hat": (y_part["y_hat"], p("y_hat")),
               "y_likelihoods": (y_part["likelihood"], p("y_likelihoods")), "x_hat": (x_hat, p("x_hat"))}
        if f"r{r}_z_qstep" in out:
            step = model.apply(v, g, method=lambda m, g: m.latent_codec.z.step(g))
            got["z_qstep"] = (np.float32(step), out[f"r{r}_z_qstep"].reshape(()))
        if f"r{r}_means_hat" in out:
            got["means_hat"] = (y_part["means"], p("means_hat"))
        if f"r{r}_ctx_scl" in out:
            got["ctx_scl"] = (ap(lambda m, g: m.scale_to_context(g.reshape(1, 1))[0], g), out[f"r{r}_ctx_scl"])
        for k, (a, ref) in got.items():
            errs[f"r{r}_{k}"] = rel_err(np.asarray(a), ref)
        # the full forward at this rate, end to end, where no rounding upstream of y_hat flipped
        full = model.apply(v, nhwc(out["x"]), gain=g)
        if rel_err(np.asarray(full["y_hat"]), p("y_hat")) <= TOL:
            errs[f"r{r}_forward_x_hat"] = rel_err(np.asarray(full["x_hat"]), p("x_hat"))
    for k, e in errs.items():
        print(f"{fixture} {k}: {e:.2e}")
    assert max(errs.values()) <= TOL, {k: e for k, e in errs.items() if e > TOL}


@pytest.mark.parity
@pytest.mark.parametrize("fixture", VBR)
def test_published_size_keys_and_count(fixture):
    """Every variant of the published-size state_dict (with and without the variable-step z) converts with its
    configuration detected from the keys, to CompressAI's parameter count; a fixed-rate model's detector refuses
    it by name."""
    manifest = json.loads(fixture_file(fixture, "manifest_full.json").read_text())
    for variant in manifest["variants"]:
        sd = {e["name"]: np.broadcast_to(np.zeros((), np.float32), e["shape"]) for e in variant["entries"]}
        name, config = detect_model(sd)
        assert name == manifest["model"] and {k: config[k] for k in variant["config"]} == variant["config"]
        spec = get_spec(name)
        model = spec.build(**config)
        template = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
        v = spec.convert(sd, template)  # raises on anything unmapped
        n = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(v["params"]))
        assert n == variant["total_params"], (variant["name"], n)
        with pytest.raises(UserError, match="variable-rate"):  # never taken for the fixed-rate model
            {"bmshj2018-hyperprior-vbr": cai.scale_hyperprior_config, "mbt2018-mean-vbr": cai.mean_scale_config,
             "mbt2018-vbr": cai.joint_config}[name](sd)


def _small_model(name="mbt2018-mean-vbr"):
    """``name`` at N=8, M=12 with random weights; a fresh model's latents are small: the analysis' last layer is
    scaled so they quantize to many non-zero integers at every rate (the fixtures scale it likewise)."""
    model = get_spec(name).build(N=8, M=12)
    v = model.init(jax.random.key(3), jnp.zeros((1, 64, 64, 3)))
    g_a = dict(v["params"]["g_a"])
    g_a["layers_6"] = jax.tree_util.tree_map(lambda a: a * 200, g_a["layers_6"])
    return model, {**v, "params": {**v["params"], "g_a": g_a}}


@pytest.mark.parametrize("name,nets", [("mbt2018-mean-vbr", ("QuantABCD", "gayn2zqstep")),
                                       ("mbt2018-vbr", ("QuantABCD", "scale_to_context", "context_prediction"))])
def test_training_forward_keeps_the_gains_and_trains_the_offsets(name, nets):
    """In training (noise, straight-through rounding) the loss's gradient reaches the offsets network and the
    rate's other networks (z's step; mbt2018-vbr's context offset and, through its sequential forward, the
    context) but not the learned gains (detached, as CompressAI's ``_get_scale``)."""
    model, v = _small_model(name)
    x = jax.random.uniform(jax.random.key(1), (1, 64, 64, 3))

    def loss(params):
        out = model.apply({**v, "params": params}, x, True, jax.random.key(2), level=7)
        bits = sum(-jnp.log2(a).sum() for a in out["likelihoods"].values())
        return bits + 1e3 * jnp.mean((out["x_hat"] - x) ** 2)

    grads = jax.jit(jax.grad(loss))(v["params"])
    assert not np.any(np.asarray(grads["Gain"]))
    for net in nets:
        assert any(np.any(np.asarray(a)) for a in jax.tree_util.tree_leaves(grads[net])), net


@pytest.mark.parity
@pytest.mark.parametrize("fixture", VBR)
def test_codec_matches_compressai_at_every_rate(fixture):
    """Per image and recorded rate: the codec's z and y symbols and table indexes are CompressAI's compress's
    (z: round((z - median) / step); y: round(y g - mean g), indexes of the scales times g), except within float
    tolerance of a rounding boundary or a scale-table threshold; the decoded y_hat is the official decompress's,
    the image its 8-bit rounding; the rate travels in the file."""
    name, config, model, v, sd, out = converted(fixture)
    codec = Codec(name, model, v, model.build_tables(v), config)
    table = np.asarray(sd.get("gaussian_conditional.scale_table", default_scale_table()), np.float64)
    for b, img in fixture_images(out, fixture):
        for r in _rates(out):
            p = lambda key: nhwc(out[f"r{r}_{key}"])[b]
            g = np.float32(out[f"r{r}_gain"].reshape(()))
            rt = RoundTrip(codec, img, gain=float(g))
            assert rt.container.gain == g
            nchw = lambda a: np.transpose(a if a.ndim == 3 else a[0], (2, 0, 1)).reshape(-1)
            # y's official order: channels-first, but position by position (channel fastest) with a context
            y_order = (lambda a: np.reshape(a, -1)) if name == "mbt2018-vbr" else nchw
            ref = lambda key: out[f"r{r}_codec_{key}"].reshape(out[f"r{r}_codec_{key}"].shape[0], -1)[b]
            step = np.float32(out[f"r{r}_z_qstep"].reshape(())) if f"r{r}_z_qstep" in out else np.float32(1)
            z_res = (nhwc(out["z"])[b] - sd["entropy_bottleneck.quantiles"][:, 0, 1]) / step
            assert_differ_only_near(f"r{r} z symbols", nchw(rt.enc["z_symbols"]), ref("z_symbols"),
                     np.transpose(_near_rounding(z_res, z_res), (2, 0, 1)).reshape(-1))
            y_res = nhwc(out["y"])[b] * g - (p("means_hat") * g if f"r{r}_means_hat" in out else 0)
            assert_differ_only_near(f"r{r} y symbols", y_order(rt.enc["y_symbols"]), ref("y_symbols"),
                                    y_order(_near_rounding(y_res, y_res)))
            sc = np.maximum(p("scales_hat").astype(np.float64) * g, 0.11)
            near = (np.abs(sc[..., None] - table) <= TOL * sc[..., None]).any(-1)
            assert_differ_only_near(f"r{r} y indexes", y_order(rt.enc["y_indexes"]), ref("y_indexes"), y_order(near))
            assert np.array_equal(nchw(rt.enc["z_indexes"]), ref("z_indexes"))
            rt.assert_decodes_to(p("codec_dec_y_hat"), p("codec_x_hat"), f"{fixture}[{b}] r{r}")


@pytest.mark.parametrize("coder", coder_params())
@pytest.mark.parametrize("name", ["bmshj2018-hyperprior-vbr", "mbt2018-mean-vbr", "mbt2018-vbr"])
def test_round_trips_at_three_rates(name, coder):
    """A variable-rate model with random weights, 1x1 and 70x45 (not multiples of 64), at the lowest and highest
    learned level and a gain between: exact symbols both ways, the image the forward's at that rate (8-bit),
    fewer bytes at a lower gain; a batch of two gives the files of its images; a level out of range, a gain on a
    fixed-rate model and a file without its rate are refused by name."""
    from jaxlic.coding.container import read_container, write_container
    import dataclasses
    import jaxlic
    model, v = _small_model(name)
    codec = Codec(name, model, v, model.build_tables(v), dict(get_spec(name).defaults, N=8, M=12))
    rng = np.random.default_rng(5)
    forward = jax.jit(lambda v, x, g: model.apply(v, x, gain=g)["x_hat"])
    for size in ((1, 1), (70, 45)):
        img = rng.integers(0, 256, size + (3,), dtype=np.uint8)
        lengths = []
        for rate in ({"level": 0}, {"gain": 0.4}, {"level": 7}):
            e = codec.encode(img, coder, **rate)
            d = codec.decode(e.data)
            assert all(np.array_equal(e.symbols[k], d.symbols[k]) for k in e.symbols), rate
            g = codec.gain(**rate)
            x = np.pad(img[None].astype(np.float32) / 255, ((0, 0), (0, -size[0] % 64), (0, -size[1] % 64), (0, 0)),
                       mode="edge")
            ref = np.asarray(forward(v, x, np.float32(g)))
            assert_8bit_matches(d.image, ref[0, :size[0], :size[1]], margin=2e-2)
            lengths.append(len(e.data))
        if size != (1, 1):
            assert lengths[0] < lengths[1] < lengths[2], lengths
    front = jaxlic.Codec(name, v, {"N": 8, "M": 12}, coder=coder).with_rate(gain=0.4)
    batch = rng.integers(0, 256, (2, 70, 45, 3), dtype=np.uint8)
    assert front.compress(batch) == [codec.compress(img, coder, gain=0.4) for img in batch]
    with pytest.raises(UserError, match="levels 0 .. 7"):
        codec.encode(img, level=8)
    with pytest.raises(UserError, match="positive number"):
        codec.encode(img, gain=-1.0)
    c = read_container(codec.compress(img))
    with pytest.raises(UserError, match="lacks the rate"):
        codec.decode(write_container(dataclasses.replace(c, gain=None)))
    fixed = get_spec("mbt2018-mean").build(N=8, M=12)
    fv = fixed.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
    with pytest.raises(UserError, match="codes at one rate"):
        Codec("mbt2018-mean", fixed, fv, fixed.build_tables(fv)).encode(img, level=0)



def test_front_door_takes_a_rate(tmp_path):
    """``jaxlic.load(..., level=)`` / ``Codec.with_rate``: compress at a rate, decompress from the file alone
    (a codec loaded at another rate reads the rate from the header), the forward's estimate at that rate
    within 5 % of the file's bits plus its header; a rate is refused for a fixed-rate model."""
    import jaxlic
    model, v = _small_model()
    own = jaxlic.Codec("mbt2018-mean-vbr", v, {"N": 8, "M": 12})
    own.save(str(tmp_path / "m.npz"))
    img = np.random.default_rng(2).integers(0, 256, (64, 128, 3), dtype=np.uint8)
    low = jaxlic.load(str(tmp_path / "m.npz"), level=0)
    high = low.with_rate(gain=0.9)
    files = {k: c.compress(img) for k, c in (("low", low), ("high", high))}
    assert len(files["low"]) < len(files["high"])
    for k, c in (("low", low), ("high", high)):
        assert np.array_equal(low.decompress(files[k]), c.decompress(files[k]))
        est = c.forward(img).bpp * img.shape[0] * img.shape[1] / 8
        # the estimate counts z at unit width (the official forward's quirk), the file z's own step: y dominates
        assert abs(len(files[k]) - est) <= 0.05 * est + 80, (k, len(files[k]), est)
    with pytest.raises(UserError, match="codes at one rate"):
        jaxlic.init("mbt2018-mean", N=8, M=12).with_rate(level=2)


@pytest.mark.slow
def test_training_draws_a_level_per_batch_and_exports_one_model(tmp_path):
    """``configs/compressai.py:model=mbt2018-mean-vbr,tiny``: each step trains at a random learned level with
    that level's lambda (CompressAI's eight MSE points; the level is logged), the run exports one model, which
    codes at two levels; without ``rate_lambdas`` the trainer refuses the model by name."""
    import pathlib
    from PIL import Image
    import jaxlic
    from jaxlic.training.config import load_config
    from jaxlic.training.trainer import Trainer
    root = pathlib.Path(__file__).resolve().parents[1]
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    c = load_config(str(root / "configs" / "compressai.py") + ":model=mbt2018-mean-vbr,tiny")
    assert c.rate_lambdas == (0.0018, 0.0035, 0.0067, 0.0130, 0.025, 0.0483, 0.0932, 0.18)
    c.data.paths, c.total_steps = (str(tmp_path),), 4
    history = Trainer(c, str(tmp_path / "w")).run(progress=False)
    levels = [int(h["level"]) for h in history]
    assert len(set(levels)) > 1 and all(0 <= v < 8 for v in levels), levels
    codec = jaxlic.load(str(tmp_path / "w" / "model.npz"))
    img = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    for level in (0, 7):
        data = codec.with_rate(level=level).compress(img)
        assert codec.decompress(data).shape == img.shape
    del c.rate_lambdas
    with pytest.raises(UserError, match="rate_lambdas"):
        Trainer(c, str(tmp_path / "x"))


def test_eval_draws_one_curve_from_the_levels_of_one_model(tmp_path):
    """``eval.py --checkpoint vbr.npz --levels 0,7``: one RD curve of two points from one model file, the lower
    level at fewer bits per pixel (real files); a malformed --levels is one line, exit status 2."""
    import importlib.util
    import json
    import pathlib
    from PIL import Image
    import jaxlic
    model, v = _small_model()
    jaxlic.Codec("mbt2018-mean-vbr", v, {"N": 8, "M": 12}).save(str(tmp_path / "vbr.npz"))
    rng = np.random.default_rng(1)
    (tmp_path / "img").mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(tmp_path / "img" / f"{i}.png")
    spec = importlib.util.spec_from_file_location("eval_py", pathlib.Path(__file__).resolve().parents[1] / "eval.py")
    eval_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(eval_py)
    args = ["--checkpoint", str(tmp_path / "vbr.npz"), "--images", str(tmp_path / "img"), "--out",
            str(tmp_path / "out"), "--anchors", "", "--published", "no", "--quiet"]
    assert eval_py.main(args + ["--levels", "0,7"]) == 0
    bpp = json.loads((tmp_path / "out" / "results.json").read_text())["results"]["bpp"]
    assert len(bpp) == 2 and bpp[0] < bpp[1], bpp
    assert eval_py.main(args + ["--levels", "0,x"]) == 2
