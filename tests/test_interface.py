"""The written model interface (``jaxlic.models.interface``) against every registered model: each has the members,
and they agree with one another (shapes through ``jax.eval_shape``, nothing computed): the analysis gives the
latents ``latent_shapes`` names, the plan codes exactly those, the forward returns the image and a likelihood per
coded latent, the synthesis inverts the shapes."""
import jax
import jax.numpy as jnp
import pytest

from helpers import tiny_config
from jaxlic.models.interface import CompressionModel
from jaxlic.registry import REGISTRY, get_spec


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_model_has_the_interface_and_its_parts_agree(name):
    model = get_spec(name).build(**tiny_config(name))
    assert isinstance(model, CompressionModel), name
    m = model.downsampling
    x = jax.ShapeDtypeStruct((2, 2 * m, 3 * m, 3), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, m, m, 3), jnp.float32))
    shapes = model.latent_shapes(2, 2 * m, 3 * m)
    latents = jax.eval_shape(lambda v, x: model.apply(v, x, method="analysis"), variables, x)
    assert {k: a.shape for k, a in latents.items()} == shapes
    plan = model.plan(shapes)
    assert dict(plan.shapes) == shapes and {g.latent for g in plan.groups} == set(shapes)
    for g in plan.groups:  # scales need an entropy model to look them up in; the codec reaches it as an object
        assert g.entropy is None or callable(g.entropy), g.name
    out = jax.eval_shape(lambda v, x, r: model.apply(v, x, training=True, rng=r), variables, x, jax.random.key(1))
    assert out["x_hat"].shape == x.shape
    assert {k: a.shape for k, a in out["likelihoods"].items()} == shapes
    y = jax.ShapeDtypeStruct(shapes["y"], jnp.float32)
    assert jax.eval_shape(lambda v, y: model.apply(v, y, method="synthesis"), variables, y).shape == x.shape
    assert jax.eval_shape(lambda v: model.apply(v, method="aux_loss"), variables).shape == ()
