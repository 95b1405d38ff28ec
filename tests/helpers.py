"""Shared test helpers: models converted from the parity fixtures."""
import json

import jax
import jax.numpy as jnp
import numpy as np

from conftest import fixture_dir
from jaxlic.convert import convert_state_dict
from jaxlic.models import get_spec

# config.json constructor argument names -> jaxlic config keys, per fixture
FIXTURE_MODELS = {"mbt2018_mean": ("mbt2018-mean", ("N", "M"))}


def converted(fixture: str, precision=jax.lax.Precision.HIGHEST):
    """(model name, config, model, variables, state_dict, outputs) for a parity fixture."""
    d = fixture_dir(fixture)
    name, keys = FIXTURE_MODELS[fixture]
    cfg = json.loads((d / "config.json").read_text())
    config = {k: cfg[k] for k in keys}
    spec = get_spec(name)
    model = spec.build(**config, precision=precision)
    with np.load(d / "weights.npz") as f:
        sd = {k: f[k] for k in f.files}
    with np.load(d / "outputs.npz") as f:
        out = {k: f[k] for k in f.files}
    x = jax.ShapeDtypeStruct((1, model.downsampling, model.downsampling, 3), jnp.float32)
    template = jax.eval_shape(model.init, jax.random.key(0), x)
    variables = convert_state_dict(sd, spec.key_map, template, spec.ignore)
    return name, config, model, variables, sd, out
