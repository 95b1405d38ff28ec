"""Shared test helpers: models converted from the parity fixtures."""
import jax
import jax.numpy as jnp
import numpy as np

from conftest import fixture_dir
from jaxlic.convert import convert_state_dict
from jaxlic.models import detect_model, get_spec


def converted(fixture: str, precision=jax.lax.Precision.HIGHEST):
    """(model name, config, model, variables, state_dict, outputs) for a parity fixture; the model and its
    configuration are detected from the official state_dict, so any fixture of a known model works."""
    d = fixture_dir(fixture)
    with np.load(d / "weights.npz") as f:
        sd = {k: f[k] for k in f.files}
    with np.load(d / "outputs.npz") as f:
        out = {k: f[k] for k in f.files}
    name, config = detect_model(sd)
    spec = get_spec(name)
    model = spec.build(**config, precision=precision)
    x = jax.ShapeDtypeStruct((1, model.downsampling, model.downsampling, 3), jnp.float32)
    template = jax.eval_shape(model.init, jax.random.key(0), x)
    variables = convert_state_dict(sd, spec.key_map, template, spec.ignore)
    return name, config, model, variables, sd, out
