"""TCM against the official code (../shared/fixtures/tcm, any fixture of that format: other sizes, batch 2, without
intermediates.npz): the forward outputs and every recorded module, the real codec (symbols and scale indexes in
the official order, the decoded latent and image), published-size parameter counts and keys, round trips at any
size with both coders, the recipe (its training runs on the parts MLIC++'s and Shen & Liu's gradient tests cover;
test_scale traces it in bfloat16).

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
from jaxlic.registry import detect_model, get_spec

TOL = 1e-5
FIXTURES = ["tcm"]


def _flax_path(official: str) -> tuple[str, ...]:
    """An official module name -> its path here (``g_a.7.trans_block`` -> g_a/layers_7/trans_block,
    ``atten_mean.0.0.non_local_block`` -> atten_mean_0/non_local_block, ``cc_mean_transforms.2`` -> ...)."""
    parts = official.split(".")
    if parts[0] in ("g_a", "g_s", "h_a", "h_mean_s", "h_scale_s"):
        return (parts[0], f"layers_{parts[1]}", *parts[2:])
    return (f"{parts[0]}_{parts[1]}", *parts[3:])


@pytest.mark.parity
@pytest.mark.parametrize("fixture", FIXTURES)
def test_forward_and_modules_match_official(fixture):
    """The forward's outputs (x_hat, y, z, z_hat, means, scales, y_hat, the LRP before its tanh, both likelihoods)
    and, where intermediates.npz is there, every recorded module's output inside the same forward."""
    name, config, model, variables, sd, out = converted(fixture)
    assert name == "tcm" and config["N"] == json.loads(fixture_file(fixture, "config.json").read_text())[
        "small_constructor_kwargs"]["N"]
    path = fixture_dir(fixture) / "intermediates.npz"
    inter = {}
    if path.exists():
        with np.load(path) as f:
            inter = {k[:-len(".out")]: f[k] for k in f.files}
    wanted = {_flax_path(k) for k in inter} | {(f"lrp_transforms_{k}",) for k in range(config["num_slices"])}
    r, state = jax.jit(lambda v, x: model.apply(v, x, capture_intermediates=lambda m, method: (
        method == "__call__" and m.path in wanted), mutable=["intermediates"]))(variables, jnp.asarray(nhwc(out["x"])))
    captured = {k[:-1]: v[0] for k, v in jax.tree_util.tree_flatten_with_path(
        state["intermediates"], is_leaf=lambda x: isinstance(x, tuple))[0] for k in [tuple(p.key for p in k)]}
    errors = {k: rel_err(r[k], nhwc(out[ref])) for k, ref in
              (("y", "y"), ("z", "z"), ("z_hat", "z_hat"), ("scales", "scales_hat"), ("means", "means_hat"),
               ("y_hat", "y_hat"), ("x_hat", "x_hat"))}
    for k in ("y", "z"):
        errors[f"{k}_likelihoods"] = rel_err(r["likelihoods"][k], nhwc(out[f"{k}_likelihoods"]))
    lrp = jnp.concatenate([captured[(f"lrp_transforms_{k}",)] for k in range(config["num_slices"])], -1)
    errors["lrp"] = rel_err(lrp, nhwc(out["lrp"]))
    for k, ref in inter.items():
        # the Swin blocks' outputs are recorded channels last (B, H, W, C), as the official Block works
        errors[k] = rel_err(captured[_flax_path(k)], ref if k.endswith("trans_block") else nhwc(ref))
    print(fixture, "max relative errors:", {k: f"{v:.2e}" for k, v in errors.items()})
    assert len(errors) == 10 + len(inter) and max(errors.values()) <= TOL, errors


@pytest.mark.parity
@pytest.mark.parametrize("fixture", FIXTURES)
@pytest.mark.slow
def test_codec_matches_official_and_round_trips(fixture):
    """compress -> bytes -> decompress of the fixture's images: z and y symbols and y's scale indexes in the
    official order (z: C, H, W; y: slice by slice, each C, H, W) equal the official compress's except near a
    boundary, and the latent g_s receives and the decoded image equal the official decompress's. Then the same
    codec on 1x1 and 70x45 images (padded to 256) with each installed coder (both in CI's reference
    environment): exact symbols both ways, the image the
    padded forward's in 8 bits; a batch of two through the front door (``jaxlic.Codec.compress``), one file each."""
    import jaxlic
    name, config, model, variables, sd, out = converted(fixture)
    front = jaxlic.Codec(name, variables, config, precision=jax.lax.Precision.HIGHEST)
    codec = front._engine  # the front door's codec: its batch below shares these compiled steps
    table = np.asarray(variables["constants"]["gaussian_conditional"]["scale_table"], np.float64)
    chw = lambda a: np.asarray(a).transpose(2, 0, 1).reshape(-1)
    for b, img in fixture_images(out, fixture):
        rt = RoundTrip(codec, img)
        z_off = nhwc(out["z"])[b] - (nhwc(out["z_hat"])[b] - np.round(nhwc(out["z"])[b] - nhwc(out["z_hat"])[b]))
        assert_differ_only_near(f"{fixture}[{b}] z symbols", chw(rt.enc["z_symbols"][0]), out["codec_z_symbols"][b],
                                chw(near_rounding(z_off)))
        y_off = nhwc(out["y"])[b] - nhwc(out["codec_enc_means_hat"])[b]
        assert_differ_only_near(f"{fixture}[{b}] y symbols", chw(rt.enc["y_symbols"][0]), out["codec_y_symbols"][b],
                                chw(near_rounding(y_off)))
        assert_differ_only_near(f"{fixture}[{b}] y indexes", chw(rt.enc["y_indexes"][0]), out["codec_y_indexes"][b],
                                chw(near_table(nhwc(out["codec_enc_scales_hat"])[b], table)))
        rt.assert_decodes_to(nhwc(out["codec_dec_y_hat"])[b], nhwc(out["codec_x_hat"])[b], f"{fixture}[{b}] codec",
                             TOL)
    assert_round_trips_and_batch(front, model, variables)


@pytest.mark.parity
@pytest.mark.parametrize("fixture", FIXTURES)
def test_published_sizes_keys_and_counts(fixture):
    """TCM(N=64) and TCM(N=128) of manifest_full.json: detected from the keys with their configuration, every key
    converts, the parameter count is the official one; the key maps of the other models refuse it by name."""
    manifest = json.loads(fixture_file(fixture, "manifest_full.json").read_text())
    for variant in manifest["variants"]:
        sd = {e["name"]: np.broadcast_to(np.zeros((), np.float32), e["shape"]) for e in variant["entries"]}
        name, config = detect_model(sd)
        assert name == "tcm" and config == {**get_spec("tcm").defaults, "N": variant["config"]["N"]}, config
        count = converted_param_count(name, config, sd)
        print(f"N={config['N']}: {count:,} parameters")
        assert count == variant["total_params"]
    with np.load(fixture_dir("cwam") / "weights.npz") as f:
        with pytest.raises(UserError, match="not a TCM state_dict"):
            get_spec("tcm").detect_config({k: f[k] for k in f.files})


def test_sizes_the_official_code_cannot_run_are_refused_by_name():
    """A latent no larger than the Swin window (inputs under 256, where the official code breaks) is refused in
    words; the codec pads any image to a multiple of 256 instead."""
    from helpers import tiny_config
    model = get_spec("tcm").build(**tiny_config("tcm"))
    assert model.downsampling == 256
    with pytest.raises(UserError, match="multiples of 128 and at least 256"):
        jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 128, 128, 3), jnp.float32))


def test_configs():
    """configs/tcm.py: the official recipe (batch 8, 256^2 crops, Adam 1e-4, aux 1e-3, clip 1.0, 50 epochs with
    decays after 45 and 48), N and lambda as given; the runlocal and tiny presets build a model that runs on
    their crops."""
    import pathlib
    from jaxlic.training.config import load_config
    path = str(pathlib.Path(__file__).resolve().parents[1] / "configs" / "tcm.py")
    c = load_config(f"{path}:N=128,lmbda=0.05")
    assert (c.model, c.model_config["N"], c.lmbda, c.batch_size, c.data.crop, c.data.flip) == \
        ("tcm", 128, 0.05, 8, 256, False)
    epoch = 300_000 // 8
    assert tuple(c.optim.decay_steps) == (45 * epoch, 48 * epoch) and c.total_steps == 50 * epoch
    assert (c.optim.lr, c.optim.aux_lr, c.optim.clip_norm) == (1e-4, 1e-3, 1.0)
    assert_presets_build(path)
