"""Checkpoint conversion: prefixes, both factorized-prior namings, clear errors, .pth files."""
import numpy as np
import pytest

from helpers import converted
from jaxlic.convert import ConversionError, convert_state_dict
from jaxlic.registry import get_spec


def _template_and_sd():
    name, config, model, variables, sd, _ = converted("mbt2018_mean", precision=None)
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
    from jaxlic.export import convert_checkpoint
    name, config, model, variables, sd, _ = converted(fixture, precision=None)
    got_name, got_config, _, got, tables = convert_checkpoint({f"_orig_mod.{k}": v for k, v in sd.items()})
    assert (got_name, got_config) == (name, config) and _same(got, variables)
    _, _, _, _, t = convert_checkpoint(sd, tables="checkpoint")
    for k in tables:  # each row is the official buffer's, the padding CompressAI leaves in it cut off
        lengths = sd[f"{k}._cdf_length"]
        np.testing.assert_array_equal(t[k].cdf_length, lengths)
        np.testing.assert_array_equal(t[k].offset, sd[f"{k}._offset"])
        for i, n in enumerate(lengths):
            np.testing.assert_array_equal(t[k].cdf[i, :n], sd[f"{k}._quantized_cdf"][i, :n])
        assert not any(np.array_equal(t[k].cdf, r.cdf) for r in tables.values())  # not the rebuilt tables
    with pytest.raises(ConversionError, match="no 'h_a.reduction.0.weight'|no 'g_a.0.weight'"):
        convert_checkpoint({k: v for k, v in sd.items() if not k.startswith(("h_a", "g_a"))}, model=name)


_COMPRESSAI = ["mbt2018_mean", "bmshj2018_factorized", "bmshj2018_hyperprior", "mbt2018", "cheng2020_anchor",
               "cheng2020_attn", "cheng2020_anchor_checkerboard", "elic2022_official", "elic2022_chandelier"]


@pytest.mark.parametrize("fixture", _COMPRESSAI + ["cwam"])
def test_each_compressai_model_detected_as_itself_and_refused_as_any_other(fixture):
    """Related models share most keys (the same g_a in four of them; CWAM shares Cheng's entropy model): each
    state_dict is detected as its own model only, and converting it as any other registered model fails with
    an error naming the mismatch."""
    from conftest import fixture_dir
    from jaxlic.export import convert_checkpoint
    from jaxlic.registry import REGISTRY, detect_model
    with np.load(fixture_dir(fixture) / "weights.npz") as f:
        sd = {k: f[k] for k in f.files}
    name, _ = detect_model(sd)
    assert name == fixture.replace("_", "-")
    for other in REGISTRY:
        if other != name:
            with pytest.raises(ConversionError, match=f"--model {other}: not an? "):
                convert_checkpoint(sd, model=other)
