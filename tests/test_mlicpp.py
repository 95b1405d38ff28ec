"""MLIC++ (in progress): the transforms' parameter counts at the official size and parity of g_a, h_a, h_s and
g_s with the official model on ../shared/fixtures/mlicpp (any fixture of that format)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import fixture_dir, nhwc, rel_err
from jaxlic.convert.common import convert_state_dict
from jaxlic.convert.compressai import COMPRESSAI_BUFFERS
from jaxlic.models.mlicpp import (AnalysisTransform, HyperAnalysis, HyperSynthesis, SynthesisTransform,
                                  transform_key)

TOL = 1e-5


def _count(module, shape):
    v = jax.eval_shape(module.init, jax.random.key(0), jax.ShapeDtypeStruct(shape, jnp.float32))
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(v))


def test_full_size_transform_parameter_counts():
    """docs/models/mlicpp.md section 1 (official N=192, M=320), without computing anything."""
    assert _count(AnalysisTransform(), (1, 64, 64, 3)) == 4_396_352
    assert _count(SynthesisTransform(), (1, 4, 4, 320)) == 14_700_172
    assert _count(SynthesisTransform(old=True), (1, 4, 4, 320)) == 12_033_612
    assert _count(HyperAnalysis(), (1, 4, 4, 320)) == 1_881_024
    assert _count(HyperSynthesis(), (1, 1, 1, 192)) == 16_685_600


def _transforms(N, M, old=False):
    return {"g_a": AnalysisTransform(N, M), "g_s": SynthesisTransform(N, M, old), "h_a": HyperAnalysis(N),
            "h_s": HyperSynthesis(N, M)}


def test_full_size_transform_keys_match_manifest():
    """Every transform entry of the official full-size state_dict maps onto a parameter of the same size."""
    import json
    manifest = json.loads((fixture_dir("mlicpp") / "manifest_full.json").read_text())["variants"][0]
    entries = {e["name"]: e["shape"] for e in manifest["entries"] if e["name"].split(".")[0] in
               ("g_a", "g_s", "h_a", "h_s") and e["kind"] == "parameter"}
    sd = {k: np.zeros(s, np.float32) for k, s in entries.items()}
    template = _template(_transforms(192, 320))
    variables = convert_state_dict(sd, transform_key, template)  # raises on anything missing or left over
    assert sum(v.size for v in jax.tree_util.tree_leaves(variables)) == sum(np.prod(s) for s in entries.values())


def _template(mods):
    shapes = {"g_a": (1, 64, 64, 3), "g_s": (1, 4, 4, mods["g_s"].M), "h_a": (1, 4, 4, mods["g_s"].M),
              "h_s": (1, 1, 1, mods["h_a"].N)}
    return {"params": {k: jax.eval_shape(m.init, jax.random.key(0), jax.ShapeDtypeStruct(shapes[k], jnp.float32))
                       ["params"] for k, m in mods.items()}}


@pytest.mark.parity
@pytest.mark.parametrize("fixture", ["mlicpp"])
def test_transforms_match_official(fixture):
    d = fixture_dir(fixture)
    with np.load(d / "weights.npz") as f:
        sd = {k: f[k] for k in f.files}
    with np.load(d / "outputs.npz") as f:
        out = {k: f[k] for k in f.files}
    N = sd["h_a.reduction.0.weight"].shape[0]
    M = sd["g_a.analysis_transform.6.weight"].shape[0]
    old = sd["g_s.synthesis_transform.0.conv1.weight"].shape[0] != M
    mods = _transforms(N, M, old)
    sub = {k: v for k, v in sd.items() if k.split(".")[0] in mods}
    params = convert_state_dict(sub, transform_key, _template(mods), COMPRESSAI_BUFFERS)["params"]
    run = {k: jax.jit(lambda v, x, m=m: m.apply({"params": v}, x)) for k, m in mods.items()}

    y = run["g_a"](params["g_a"], nhwc(out["x"]))
    assert rel_err(y, nhwc(out["y"])) < TOL
    hyper = run["h_s"](params["h_s"], nhwc(out["codec_enc_z_hat"]))
    assert rel_err(hyper, nhwc(out["hyper_params"])) < TOL
    x_hat = run["g_s"](params["g_s"], nhwc(out["y_hat"]))
    assert rel_err(x_hat, nhwc(out["x_hat"])) < TOL
    # h_a: its z, quantized around the medians as the official compress does, gives the official z_hat
    z = np.asarray(run["h_a"](params["h_a"], nhwc(out["y"])), np.float64)
    med = sd["entropy_bottleneck.quantiles"][:, 0, 1].astype(np.float64)
    z_hat = np.round(z - med) + med
    near = np.abs(np.abs(z - med - np.floor(z - med)) - 0.5) < 1e-4 * np.abs(z).max()
    ok = np.isclose(z_hat, nhwc(out["codec_enc_z_hat"]), atol=1e-4) | near
    assert ok.all(), f"{int((~ok).sum())} z_hat elements differ away from a rounding boundary"
    print(f"{fixture}: y {rel_err(y, nhwc(out['y'])):.2e}, hyper {rel_err(hyper, nhwc(out['hyper_params'])):.2e}, "
          f"x_hat {rel_err(x_hat, nhwc(out['x_hat'])):.2e}, z_hat near-boundary {int(near.sum())}")

