"""HPCM against the official code (../shared/fixtures/hpcm_base, any fixture of that format: other sizes, batch 2,
without intermediates.npz): the forward outputs, every coding step's scales and means, every recorded module, the
real codec (each of the 11 steps' symbols and scale indexes in the official order, the decoded latent and image),
published-size parameter counts and keys (Base and Large), round trips at any size with both coders, the recipe. The
GGM's likelihood, derivative and tables: tests/test_entropy.py.

Floats: max |a - ref| <= 1e-5 max |ref|. Discrete decisions may differ only where the official value lies within
float tolerance of a rounding or table boundary (counted, printed, allowed).
"""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import fixture_dir, fixture_file, nhwc, rel_err
from helpers import (RoundTrip, assert_differ_only_near, assert_presets_build, assert_round_trips_and_batch,
                     converted, converted_param_count, fixture_images, near_rounding, near_table)
from jaxlic.errors import UserError
from jaxlic.latent_codecs import take_map
from jaxlic.models.hpcm import hpcm_maps
from jaxlic.registry import detect_model, get_spec

TOL = 1e-5
FIXTURES = ["hpcm_base"]


def _flax_path(official: str) -> tuple[tuple[str, ...], int]:
    """An official module name (``g_a.branch.10``, ``attn_s2.call1``, ``context_net.0``) -> (its path here, which
    call of it)."""
    name, _, call = official.partition(".call")
    parts = name.split(".")
    if parts[0] in ("g_a", "g_s"):
        path = (parts[0], f"branch_{parts[2]}")
    elif len(parts) == 2:
        path = (f"{parts[0]}_{parts[1]}",)
    else:
        path = (parts[0],)
    return path, int(call or 0)


@pytest.mark.parity
@pytest.mark.parametrize("fixture", FIXTURES)
def test_forward_steps_and_modules_match_official(fixture):
    """The forward's outputs (y, z, z_hat, the hyper parameters, y's residuals, scales and y_hat, x_hat, both
    likelihoods), the scales and means of each of the 11 coding steps on its grid, y at s1 and s2 and, where
    intermediates.npz is there, every recorded module's output (calls in order) inside the same forward."""
    name, config, model, variables, sd, out = converted(fixture)
    assert name == "hpcm"
    path = fixture_dir(fixture) / "intermediates.npz"
    inter = {}
    if path.exists():
        with np.load(path) as f:
            inter = {k[:-len(".out")]: f[k] for k in f.files}
    wanted = {_flax_path(k)[0] for k in inter}

    def forward(m, x):
        r = m(x)
        side = m.h_s(r["z_hat"])
        _, _, _, trace = m.latent_codec.y.run(r["y"], side)
        return r, side, trace

    (r, side, trace), state = jax.jit(lambda v, x: model.apply(
        v, x, method=forward, capture_intermediates=lambda mdl, method: method == "__call__" and mdl.path in wanted,
        mutable=["intermediates"]))(variables, jnp.asarray(nhwc(out["x"])))
    captured = {tuple(p.key for p in k[:-1]): v for k, v in jax.tree_util.tree_flatten_with_path(
        state["intermediates"], is_leaf=lambda x: isinstance(x, tuple))[0]}
    errors = {k: rel_err(r[k], nhwc(out[ref])) for k, ref in
              (("y", "y"), ("z", "z"), ("z_hat", "z_hat"), ("scales", "scales_y"), ("residuals", "y_res"),
               ("y_hat", "y_hat"), ("x_hat", "x_hat"))}
    errors["params"] = rel_err(side, nhwc(out["params"]))
    for k in ("y", "z"):
        errors[f"{k}_likelihoods"] = rel_err(r["likelihoods"][k], nhwc(out[f"{k}_likelihoods"]))
    for k, (scales, means) in enumerate(trace):
        errors[f"step{k:02d}_scales"] = rel_err(scales, nhwc(out[f"step{k:02d}_scales"]))
        errors[f"step{k:02d}_means"] = rel_err(means, nhwc(out[f"step{k:02d}_means"]))
    maps = hpcm_maps(*nhwc(out["y"]).shape[-1:], *nhwc(out["y"]).shape[1:3])
    for level in (1, 2):  # y gathered to s1 and s2 (the official get_s1_s2_with_mask), by the maps the codec uses
        errors[f"y_s{level}"] = rel_err(take_map(r["y"], maps[f"grid{level}"]), nhwc(out[f"y_s{level}"]))
    for k, ref in inter.items():
        p, call = _flax_path(k)
        errors[k] = rel_err(captured[p][call], nhwc(ref))
    print(fixture, "max relative errors:", {k: f"{v:.2e}" for k, v in errors.items()})
    assert len(errors) == 10 + 22 + 2 + len(inter) and max(errors.values()) <= TOL, errors


@pytest.mark.parity
@pytest.mark.parametrize("fixture", FIXTURES)
@pytest.mark.slow
def test_codec_matches_official_and_round_trips(fixture):
    """compress -> bytes -> decompress of the fixture's images: z's symbols (C, H, W), and per coding step y's
    symbols and scale indexes in the official order (each step's channel groups summed, C/K, h, w) and its scales
    equal the official compress's except near a boundary; the latent g_s receives and the decoded image equal the
    official decompress's. Then the same codec on 1x1 and 70x45 images (padded to 256) with each installed coder
    (both in CI's reference environment), and a batch of two through the front door (``jaxlic.Codec``)."""
    import jaxlic
    name, config, model, variables, sd, out = converted(fixture)
    front = jaxlic.Codec(name, variables, config, precision=jax.lax.Precision.HIGHEST)
    codec = front._engine  # the front door's codec: its batch below shares these compiled steps
    table = np.asarray(variables["constants"]["ggm"]["scale_table"], np.float64)
    y = nhwc(out["y"])
    steps = hpcm_maps(y.shape[-1], *y.shape[1:3])["steps"]
    for b, img in fixture_images(out, fixture):
        rt = RoundTrip(codec, img)
        z_res = nhwc(out["z"])[b] - (nhwc(out["z_hat"])[b] - nhwc(out["z_res_hat"])[b])
        assert_differ_only_near(f"{fixture}[{b}] z symbols", rt.enc["z_symbols"][0].transpose(2, 0, 1).reshape(-1),
                                out["codec_z_symbols"][b], near_rounding(z_res).transpose(2, 0, 1).reshape(-1))
        sym = np.concatenate([np.asarray(rt.sym[f"y{k}"]).reshape(-1) for k in range(len(steps))])
        idx = np.concatenate([np.asarray(rt.idx[f"y{k}"]).reshape(-1) for k in range(len(steps))])
        pos = np.concatenate([p for _, _, p in steps])
        res = y[b].reshape(-1)[pos] - out["codec_y_means"][b]
        assert_differ_only_near(f"{fixture}[{b}] y symbols", sym, out["codec_y_symbols"][b], near_rounding(res))
        assert_differ_only_near(f"{fixture}[{b}] y indexes", idx, out["codec_y_indexes"][b],
                                near_table(out["codec_y_scales"][b], table))
        rt.assert_decodes_to(nhwc(out["codec_dec_y_hat"])[b], nhwc(out["codec_x_hat"])[b], f"{fixture}[{b}] codec",
                             TOL)
    assert_round_trips_and_batch(front, model, variables)


@pytest.mark.parity
@pytest.mark.parametrize("fixture", FIXTURES)
def test_published_sizes_keys_and_counts(fixture):
    """HPCM Base and Large of manifest_full.json: detected from the keys with their configuration (Large: 8
    blocks at 1/8 resolution, one more block in each spatial-prior branch), every key converts, the parameter
    count is the official one; a TCM state_dict is refused by name."""
    manifest = json.loads(fixture_file(fixture, "manifest_full.json").read_text())
    expected = {"HPCM_Base.py": (4, (2, 1, 3, 2)), "HPCM_Large.py": (8, (2, 2, 4, 3))}
    for variant in manifest["variants"]:
        sd = {e["name"]: np.broadcast_to(np.zeros((), np.float32), e["shape"]) for e in variant["entries"]}
        sd["entropy_estimation.beta"] = np.asarray([1.5], np.float32)
        name, config = detect_model(sd)
        deep, depths = expected[variant["config"]["file"].split("/")[-1]]
        assert name == "hpcm" and (config["M"], config["N"], config["deep"], config["prior_depths"]) == \
            (320, 256, deep, depths), config
        count = converted_param_count(name, config, sd)
        print(f"{variant['config']['file']}: {count:,} parameters")
        assert count == variant["total_params"]
    with np.load(fixture_dir("tcm") / "weights.npz") as f:
        with pytest.raises(UserError, match="not an HPCM state_dict"):
            get_spec("hpcm").detect_config({k: f[k] for k in f.files})


def test_sizes_the_official_code_cannot_run_are_refused_by_name():
    """An input that is not a multiple of 256 a side is refused in words (the codec pads to it instead)."""
    from helpers import tiny_config
    model = get_spec("hpcm").build(**tiny_config("hpcm"))
    assert model.downsampling == 256
    with pytest.raises(UserError, match="multiple of 256"):
        jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 256, 384, 3), jnp.float32))


def test_configs():
    """configs/hpcm.py: the official recipe (batch 32, 256^2 crops, Adam 1e-4 -> 3e-5 -> 1e-5 -> 1e-6 after epochs
    2750 / 2850 / 2950 of 3001, clip 1.0), Large's sizes; the schedule the trainer builds from it; the runlocal and
    tiny presets build a model that runs on their crops."""
    import pathlib
    from jaxlic.training.config import load_config
    from jaxlic.training.trainer import make_optimizer
    path = str(pathlib.Path(__file__).resolve().parents[1] / "configs" / "hpcm.py")
    c = load_config(f"{path}:large,lmbda=0.0483")
    assert (c.model, c.lmbda, c.batch_size, c.data.crop, c.model_config["deep"]) == ("hpcm", 0.0483, 32, 256, 8)
    epoch = 20_745 // 32
    assert c.total_steps == 3001 * epoch and tuple(c.optim.decay_steps) == (2750 * epoch, 2850 * epoch, 2950 * epoch)
    _, schedule = make_optimizer(c)
    for step, lr in ((0, 1e-4), (2750 * epoch, 3e-5), (2850 * epoch, 1e-5), (2950 * epoch + 1, 1e-6)):
        assert abs(float(schedule(step)) - lr) <= 1e-9 * 1e4, (step, float(schedule(step)))
    assert_presets_build(path)
