"""Checkpoint conversion: prefixes, both factorized-prior namings, clear errors, .pth files."""
import numpy as np
import pytest

from helpers import converted
from jaxlic.convert import ConversionError, convert_state_dict
from jaxlic.models import get_spec


def _template_and_sd():
    name, config, model, variables, sd, _ = converted("mbt2018_mean", precision=None)
    import jax
    return get_spec(name), variables, sd


def _same(a, b):
    import jax
    return all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def test_prefixes_and_old_factorized_names():
    spec, variables, sd = _template_and_sd()
    old = {}
    for k, v in sd.items():
        for new, o in (("matrices.", "_matrix"), ("biases.", "_bias"), ("factors.", "_factor")):
            k = k.replace(f"entropy_bottleneck.{new}", f"entropy_bottleneck.{o}")
        old[f"module._orig_mod.{k}"] = v
    got = convert_state_dict(old, spec.key_map, variables, spec.ignore)
    assert _same(got, variables)


def test_missing_extra_and_mismatched_keys_are_listed():
    spec, variables, sd = _template_and_sd()
    bad = dict(sd)
    del bad["g_a.0.weight"]
    bad["g_a.9.weight"] = np.zeros((1, 1, 1, 1), np.float32)
    bad["h_s.4.bias"] = np.zeros(5, np.float32)
    with pytest.raises(ConversionError) as e:
        convert_state_dict(bad, spec.key_map, variables, spec.ignore)
    msg = str(e.value)
    assert "g_a/layers_0/kernel" in msg and "g_a.9.weight" in msg and "h_s.4.bias" in msg


@pytest.mark.parametrize("fixture", ["mbt2018_mean", "mlicpp"])
def test_pth_tar_file(tmp_path, fixture):
    """The official checkpoint format: a dict with ``state_dict`` (DataParallel-prefixed) among other entries,
    through the CLI into a checkpoint the codec uses."""
    torch = pytest.importorskip("torch", reason="torch is an optional extra (reading .pth files only)")
    from jaxlic.cli import main
    from jaxlic.export import load_model
    name, config, _, variables, sd, _ = converted(fixture, precision=None)
    path = tmp_path / "checkpoint.pth.tar"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": torch.from_numpy(np.array(v)) for k, v in sd.items()}}, path)
    assert main(["convert", str(path), str(tmp_path / "m.npz")]) == 0
    got_name, got_config, _, got, _ = load_model(str(tmp_path / "m.npz"))
    assert (got_name, got_config) == (name, config) and _same(got, variables)


@pytest.mark.parametrize("fixture", ["mbt2018_mean", "mlicpp"])
def test_convert_api_detects_model_and_config(fixture):
    """convert_checkpoint on an official state_dict: model and configuration from its keys and shapes, every key
    mapped, the same variables as the explicit conversion, and the checkpoint's own tables on request."""
    from jaxlic.convert.checkpoint import convert_checkpoint
    from jaxlic.convert.compressai import compressai_tables
    name, config, model, variables, sd, _ = converted(fixture, precision=None)
    got_name, got_config, _, got, tables = convert_checkpoint({f"_orig_mod.{k}": v for k, v in sd.items()})
    assert (got_name, got_config) == (name, config) and _same(got, variables)
    _, _, _, _, t = convert_checkpoint(sd, tables="checkpoint")
    for k in tables:
        ref = compressai_tables(sd, k)
        assert all(np.array_equal(a, b) for a, b in zip(
            (t[k].cdf, t[k].cdf_length, t[k].offset), (ref.cdf, ref.cdf_length, ref.offset)))
    with pytest.raises(ConversionError, match="no 'h_a.reduction.0.weight'|no 'g_a.0.weight'"):
        convert_checkpoint({k: v for k, v in sd.items() if not k.startswith(("h_a", "g_a"))}, model=name)


def _official_names(variables, key_map):
    """Inverse of a key map, for tests: each Flax leaf -> the official key that maps onto it (layout inverted)."""
    import re
    from flax import traverse_util
    inverse = {"conv": lambda w: w.transpose(3, 2, 0, 1), "linear": lambda w: w.T, "copy": lambda w: w}
    out = {}
    for path, w in traverse_util.flatten_dict(variables).items():
        inner = ".".join(re.sub(r"_(\d+)$", r".\1", p) for p in path[1:-1])
        leaf = {"kernel": "weight", "scale": "weight"}.get(path[-1], path[-1])
        m = re.fullmatch(r"(matrix|bias|factor)(\d)", leaf) if path[1] == "entropy_bottleneck" else None
        candidates = [f"{inner}.{leaf}", f"{inner}.{leaf}".replace(".conv.", ".0.").replace(".conv.", ".0.")]
        if m:
            candidates = [f"entropy_bottleneck._{m.group(1)}{m.group(2)}"]
        elif path[-1] in ("relative_position_table", "quantiles", "scale_table"):
            candidates = [f"{inner}.{path[-1]}"]
        for key in candidates:
            hit = key_map(key)
            if hit and tuple(hit[0]) == path:
                out[key] = inverse[hit[1]](np.asarray(w))
                break
        else:
            raise AssertionError(f"no official key maps to {path}")
    return out


@pytest.mark.parametrize("old", [(True, True), (False, True), (True, False)])
def test_mlicpp_old_modules_detected_and_converted(old, tmp_path):
    """State_dicts of the Old variants (LatentResidualPredictionOld, SynthesisTransformOld, as in the 2023-09
    checkpoints) in CompressAI 1.2.0b3 naming: the converter detects which modules are Old and maps every key."""
    import jax
    import jax.numpy as jnp
    from jaxlic.convert.checkpoint import convert_checkpoint
    from jaxlic.models.mlicpp import MLICPlusPlus, mlicpp_key
    model = MLICPlusPlus(N=32, M=64, slice_num=2, old_g_s=old[0], old_lrp=old[1])
    shapes = jax.eval_shape(model.init, jax.random.key(3), jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
    rng = np.random.default_rng(3)  # random values, no compilation: the test is about names and layouts
    variables = jax.tree_util.tree_map(lambda t: rng.standard_normal(t.shape).astype(np.float32), shapes)
    from jaxlic.entropy.gaussian import default_scale_table
    variables["params"]["entropy_bottleneck"]["quantiles"][:] = [-5.0, 0.0, 5.0]  # valid coding tables
    variables["constants"]["gaussian_conditional"]["scale_table"] = np.asarray(default_scale_table(), np.float32)
    sd = _official_names(variables, mlicpp_key)
    name, config, _, got, _ = convert_checkpoint(sd, str(tmp_path / "m.npz"))
    assert name == "mlicpp" and (config["old_g_s"], config["old_lrp"]) == old
    assert (config["N"], config["M"], config["slice_num"]) == (32, 64, 2)
    assert _same(got, variables)
