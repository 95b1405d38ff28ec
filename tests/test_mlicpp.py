"""MLIC++ against the official code: parameter counts and state_dict keys at the published size (current and Old
modules, from the official manifests), and parity of the transforms, every context module and the assembled
forward on each MLIC++ fixture in $JAXLIC_SHARED/fixtures (current and Old; any fixture of that format)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import fixture_dir, fixture_file, nhwc, rel_err
from jaxlic.convert.common import convert_state_dict
from jaxlic.convert.compressai import COMPRESSAI_BUFFERS
from jaxlic.convert.mlicpp import transform_key
from jaxlic.models.mlicpp import AnalysisTransform, HyperAnalysis, HyperSynthesis, SynthesisTransform

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


def _manifest_state_dict(fixture):
    """The official full-size state_dict's names and shapes (manifest_full.json), as zero arrays that take no
    memory, and the manifest's entry."""
    import json
    manifest = json.loads(fixture_file(fixture, "manifest_full.json").read_text())["variants"][0]
    sd = {e["name"]: np.broadcast_to(np.zeros((), np.float32), e["shape"]) for e in manifest["entries"]}
    return sd, manifest


def _variant(fixture):
    """Whether the fixture was built with the Old modules (config.json's "variant"; the current ones where it
    names none); None without a config.json."""
    import json
    path = fixture_dir(fixture) / "config.json"
    return json.loads(path.read_text()).get("variant") == "old" if path.exists() else None


def _convert_full_size(sd):
    from jaxlic.registry import detect_model, get_spec
    name, config = detect_model(sd)
    spec = get_spec(name)
    model = spec.build(**config)
    template = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
    variables = spec.convert(sd, template)  # raises on anything unmapped
    return name, config, sum(v.size for v in jax.tree_util.tree_leaves(variables["params"]))


@pytest.mark.parity
@pytest.mark.parametrize("fixture", ["mlicpp", "mlicpp_old"])
@pytest.mark.parametrize("naming", ["1.2.8", "1.2.0b3"])
def test_full_size_keys_match_manifest(fixture, naming):
    """Every entry of the official full-size state_dict (parameters and buffers, both CompressAI namings of the
    factorized prior) maps onto a parameter of the same shape or is a known buffer, no parameter is left
    without a key, the detected configuration is the published one (with its Old modules where the fixture was
    built with them), and the parameter count is the manifest's."""
    sd, manifest = _manifest_state_dict(fixture)
    if naming == "1.2.0b3":
        aliases = manifest["aliases"]["compressai_1.2.0b3_name_of"]
        sd = {aliases.get(k, k): v for k, v in sd.items()}
        assert any(k.startswith("entropy_bottleneck._matrix") for k in sd)
    name, config, count = _convert_full_size(sd)
    official = manifest["config"]
    old = _variant(fixture)
    assert name == "mlicpp"
    assert {k: config[k] for k in ("N", "M", "slice_num")} == {k: official[k] for k in ("N", "M", "slice_num")}
    if old is not None:
        assert (config["old_g_s"], config["old_lrp"]) == (old, old)
    assert count == manifest["total_params"]


@pytest.mark.parity
@pytest.mark.parametrize("old_g_s,old_lrp", [(True, False), (False, True)])
def test_mixed_old_modules_detected(old_g_s, old_lrp):
    """A checkpoint with only one of the two Old modules (the official g_s of one manifest, the LRPs of the
    other): detected as such, every key mapped, and the count is the manifests' counts recombined."""
    cur, m_cur = _manifest_state_dict("mlicpp")
    old, m_old = _manifest_state_dict("mlicpp_old")
    switched = lambda k: (k.startswith("g_s.") and old_g_s) or (k.startswith("lrp_") and old_lrp)
    sd = {**{k: v for k, v in cur.items() if not switched(k)}, **{k: v for k, v in old.items() if switched(k)}}
    params = lambda m, prefix: sum(int(np.prod(e["shape"])) for e in m["entries"]
                                   if e["kind"] == "parameter" and e["name"].startswith(prefix))
    expected = m_cur["total_params"] + (params(m_old, "g_s.") - params(m_cur, "g_s.")) * old_g_s + \
        (params(m_old, "lrp_") - params(m_cur, "lrp_")) * old_lrp
    name, config, count = _convert_full_size(sd)
    assert (config["old_g_s"], config["old_lrp"]) == (old_g_s, old_lrp)
    assert count == expected


def _template(mods):
    shapes = {"g_a": (1, 64, 64, 3), "g_s": (1, 4, 4, mods["g_s"].M), "h_a": (1, 4, 4, mods["g_s"].M),
              "h_s": (1, 1, 1, mods["h_a"].N)}
    return {"params": {k: jax.eval_shape(m.init, jax.random.key(0), jax.ShapeDtypeStruct(shapes[k], jnp.float32))
                       ["params"] for k, m in mods.items()}}


def _load(fixture, *names):
    out = []
    for name in names:
        with np.load(fixture_file(fixture, name)) as f:
            out.append({k: f[k] for k in f.files})
    return out


@pytest.mark.parity
@pytest.mark.parametrize("fixture", ["mlicpp", "mlicpp_old"])
def test_transforms_match_official(fixture):
    from jaxlic.convert.mlicpp import mlicpp_config
    sd, out = _load(fixture, "weights.npz", "outputs.npz")
    c = mlicpp_config(sd)
    mods = _transforms(c["N"], c["M"], c["old_g_s"])
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



def _context_module(name: str, i: int, slice_ch: int, old_lrp: bool = False):
    from jaxlic.models import mlicpp as m
    return {"local_context": lambda: m.LocalContext(slice_ch),
            "channel_context": lambda: m.ChannelContext(),
            "global_inter_context": lambda: m.LinearGlobalInterContext(heads=slice_ch * i // 32),
            "global_intra_context": lambda: m.LinearGlobalIntraContext(),
            "entropy_parameters_anchor": lambda: m.EntropyParameters(2 * slice_ch),
            "entropy_parameters_nonanchor": lambda: m.EntropyParameters(2 * slice_ch),
            "lrp_anchor": lambda: m.LatentResidualPrediction(slice_ch, old_lrp),
            "lrp_nonanchor": lambda: m.LatentResidualPrediction(slice_ch, old_lrp)}[name]()


@pytest.mark.parity
@pytest.mark.parametrize("fixture", ["mlicpp", "mlicpp_old"])
def test_context_modules_match_official(fixture):
    """Every context submodule, fed the official inputs captured during the official forward, reproduces its
    official output (intermediates.npz)."""
    from jaxlic.convert.mlicpp import context_key, mlicpp_config
    from jaxlic.models.mlicpp import _local_bias_index
    sd, inter = _load(fixture, "weights.npz", "intermediates.npz")
    c = mlicpp_config(sd)
    slice_ch = c["M"] // c["slice_num"]
    errors = {}
    for key in sorted(k for k in inter if k.endswith(".out")):
        name, i = key.split(".")[0], int(key.split(".")[1])
        inputs = [nhwc(inter[f"{name}.{i}.in{j}"]) for j in range(4) if f"{name}.{i}.in{j}" in inter]
        module = _context_module(name, i, slice_ch, c["old_lrp"])
        t = jax.eval_shape(module.init, jax.random.key(0), *[jax.ShapeDtypeStruct(x.shape, jnp.float32)
                                                             for x in inputs])
        prefix = f"{name}.{i}."
        sub = {k: v for k, v in sd.items() if k.startswith(prefix)}
        params = convert_state_dict(sub, context_key, {"params": {f"{name}_{i}": t["params"]}},
                                    (r".*relative_position_index",))["params"][f"{name}_{i}"]
        if name == "local_context":  # the static bias index is the official buffer
            np.testing.assert_array_equal(_local_bias_index(5), sd[prefix + "relative_position_index"])
        got = jax.jit(module.apply)({"params": params}, *inputs)
        errors[key] = rel_err(got, nhwc(inter[key]))
    print(fixture, {k: f"{v:.1e}" for k, v in errors.items()})
    bad = {k: v for k, v in errors.items() if v > TOL}
    assert not bad, bad


def test_full_size_context_parameter_counts():
    """MEM++ at the official size (M=320, 10 slices of 32): per-family counts of docs/models/mlicpp.md, and with
    the transforms and the entropy bottleneck the model's 83,501,408 (116,716,928 with the Old modules)."""
    from jaxlic.entropy.factorized import EntropyBottleneck
    from jaxlic.models import mlicpp as m
    s, M = 32, 320
    counts = {
        "local": sum(_count(m.LocalContext(s), (1, 8, 8, s)) for _ in range(10)),
        "channel": sum(_count(m.ChannelContext(), (1, 8, 8, s * i)) for i in range(1, 10)),
        "inter": sum(_count(m.LinearGlobalInterContext(heads=i), (1, 8, 8, s * i)) for i in range(1, 10)),
        "intra": 9 * _count2(m.LinearGlobalIntraContext(), (1, 8, 8, s)),
        "ep_anchor": sum(_count(m.EntropyParameters(2 * s), (1, 8, 8, 2 * M if i == 0 else 64 + 128 + 2 * M))
                         for i in range(10)),
        "ep_nonanchor": sum(_count(m.EntropyParameters(2 * s), (1, 8, 8, 64 + 2 * M if i == 0 else
                                                                     64 * 3 + 128 + 2 * M)) for i in range(10)),
        "lrp": 2 * sum(_count(m.LatentResidualPrediction(s), (1, 8, 8, M + s * i + s)) for i in range(10)),
        "lrp_old": 2 * sum(_count(m.LatentResidualPrediction(s, old=True), (1, 8, 8, M + s * i + s))
                           for i in range(10)),
    }
    assert counts == {"local": 755_220, "channel": 5_810_112, "inter": 4_633_344, "intra": 659_232,
                      "ep_anchor": 3_837_440, "ep_nonanchor": 4_226_560, "lrp": 25_904_640,
                      "lrp_old": 61_786_720}
    eb = _count(EntropyBottleneck(192), (1, 4, 4, 192))
    transforms = 4_396_352 + 1_881_024 + 16_685_600
    contexts = sum(v for k, v in counts.items() if k != "lrp_old")
    assert eb == 11_712
    assert transforms + 14_700_172 + eb + contexts == 83_501_408
    assert transforms + 12_033_612 + eb + contexts - counts["lrp"] + counts["lrp_old"] == 116_716_928


def _count2(module, shape):
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    v = jax.eval_shape(module.init, jax.random.key(0), x, x)
    return sum(int(np.prod(t.shape)) for t in jax.tree_util.tree_leaves(v))


@pytest.mark.parity
@pytest.mark.parametrize("fixture", ["mlicpp", "mlicpp_old"])
def test_forward_matches_official(fixture):
    """The assembled evaluation forward: every output of the official forward to 1e-5 (max relative error)."""
    from jaxlic.convert.mlicpp import MLICPP_BUFFERS, mlicpp_config, mlicpp_key
    from jaxlic.models.mlicpp import MLICPlusPlus
    sd, out = _load(fixture, "weights.npz", "outputs.npz")
    model = MLICPlusPlus(**mlicpp_config(sd))
    x = nhwc(out["x"])
    template = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct(x.shape, jnp.float32))
    variables = convert_state_dict(sd, mlicpp_key, template, COMPRESSAI_BUFFERS + MLICPP_BUFFERS)
    got = jax.jit(model.apply)(variables, x)
    errors = {
        "y": rel_err(got["y"], nhwc(out["y"])), "z": rel_err(got["z"], nhwc(out["z"])),
        "z_hat": rel_err(got["z_hat"], nhwc(out["z_hat"])),
        "z_likelihoods": rel_err(got["likelihoods"]["z"], nhwc(out["z_likelihoods"])),
        "hyper_params": rel_err(got["hyper"], nhwc(out["hyper_params"])),
        "scales_hat": rel_err(got["scales"], nhwc(out["scales_hat"])),
        "means_hat": rel_err(got["means"], nhwc(out["means_hat"])),
        "y_hat": rel_err(got["y_hat"], nhwc(out["y_hat"])),
        "y_likelihoods": rel_err(got["likelihoods"]["y"], nhwc(out["y_likelihoods"])),
        "x_hat": rel_err(got["x_hat"], nhwc(out["x_hat"]))}
    print(fixture, {k: f"{v:.1e}" for k, v in errors.items()})
    bad = {k: v for k, v in errors.items() if v > TOL}
    assert not bad, bad
