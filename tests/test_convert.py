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


def test_pth_tar_file(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is an optional extra (reading .pth files only)")
    spec, variables, sd = _template_and_sd()
    path = tmp_path / "checkpoint.pth.tar"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": torch.from_numpy(np.array(v)) for k, v in sd.items()}}, path)
    from jaxlic.convert import load_torch_state_dict
    got = convert_state_dict(load_torch_state_dict(str(path)), spec.key_map, variables, spec.ignore)
    assert _same(got, variables)
