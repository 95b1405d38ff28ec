"""Training at scale: the FSDP sharding rule, bfloat16 compute with float32 entropy math, rematerialisation.
(Eight simulated devices, FSDP against one device and the restore on another mesh: test_train.py.)"""
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, PartitionSpec as P

from jaxlic.training.compute import cast_params, computing, float32_paths, saved_residual_bytes
from jaxlic.training.config import load_config
from jaxlic.training.sharding import array_spec, batch_sharding, bytes_per_device, tree_shardings
from jaxlic.training.trainer import Trainer

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_fsdp_rule_shards_the_largest_dividing_dimension_and_replicates_small_arrays():
    assert array_spec((3, 3, 192, 320), 4) == P(None, None, None, "fsdp")      # the largest dimension
    assert array_spec((5, 5, 192, 192), 8) == P(None, None, "fsdp", None)      # the first of equals
    assert array_spec((3, 3, 190, 322), 4) == P()                              # none divides: replicated
    assert array_spec((320, 3, 3, 190), 4) == P("fsdp", None, None, None)
    assert array_spec((320,), 4) == P()                                        # below min_size
    assert array_spec((320,), 4, min_size=64) == P("fsdp")
    assert array_spec((1024, 1024), 1) == P()                                  # no fsdp axis
    mesh = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("data", "fsdp"))
    tree = {"params": {"g_a": {"kernel": jax.ShapeDtypeStruct((3, 3, 192, 192), jnp.float32),
                               "bias": jax.ShapeDtypeStruct((192,), jnp.float32)}}}
    shardings = tree_shardings(mesh, tree, rules=[("g_a/kernel", ("fsdp", None, None, None))])
    assert shardings["params"]["g_a"]["kernel"].spec == P("fsdp", None, None, None)  # the rule wins
    assert shardings["params"]["g_a"]["bias"].spec == P()
    assert batch_sharding(mesh).spec == P(("data", "fsdp"))
    assert bytes_per_device(tree, shardings) == (9 * 192 * 192 + 192) * 4  # one device holds everything


def _tiny_config(model: str, **over):
    c = load_config(str(ROOT / "configs" / f"{model}.py") + ":tiny")
    for k, v in over.items():
        setattr(c, k, v)
    return c


@pytest.mark.slow
def test_remat_keeps_block_inputs_only_and_bfloat16_keeps_the_entropy_math_float32(tmp_path):
    """MLIC++ (tiny): with remat, the activations JAX keeps for the backward pass shrink to the blocks' inputs
    and the loss is the same (the gradients' equality: the training test below); in bfloat16 the convolutions compute in bf16 and the entropy models'
    parameters, their arguments and the likelihoods stay float32."""
    t = Trainer(_tiny_config("mlicpp"), str(tmp_path))
    variables = t._init(jax.random.PRNGKey(0))
    params, constants = variables["params"], {k: v for k, v in variables.items() if k != "params"}
    x = jax.random.uniform(jax.random.PRNGKey(1), (2, 64, 64, 3))

    def loss(p, remat=False, dtype=jnp.float32, keep=frozenset()):
        with computing(dtype, remat):
            out = t.model.apply({"params": cast_params(p, dtype, keep), **constants}, x, training=True,
                                rng=jax.random.PRNGKey(2))
        return sum(-jnp.sum(jnp.log2(v)) for v in out["likelihoods"].values()) + \
            1e3 * jnp.mean(jnp.square(out["x_hat"].astype(jnp.float32) - x)), out

    plain, remat = saved_residual_bytes(lambda p: loss(p)[0], params), saved_residual_bytes(lambda p: loss(p, True)[0], params)
    assert remat < 0.5 * plain, (remat, plain)
    l0, l1 = jax.jit(lambda p: (loss(p)[0], loss(p, True)[0]))(params)  # the blocks get their own arguments
    np.testing.assert_allclose(l1, l0, rtol=1e-6)

    keep = float32_paths(t.model, x)
    assert ("entropy_bottleneck",) in keep and ("gaussian_conditional",) in keep
    cast = cast_params(params, jnp.bfloat16, keep)
    assert cast["entropy_bottleneck"]["quantiles"].dtype == jnp.float32
    assert cast["g_a"]["analysis_transform_0"]["conv1"]["kernel"].dtype == jnp.bfloat16
    jaxpr = str(jax.make_jaxpr(lambda p: loss(p, False, jnp.bfloat16, keep)[0])(params))
    # every convolution's result type (the left side of its equation): bf16 where the networks compute in bf16;
    # a float32 input would promote a bf16 kernel's convolution back to float32
    convs = re.findall(r"(\w+):(\w+)\[[\d,]*\] = conv_general_dilated", jaxpr)
    assert len(convs) > 10 and {dtype for _, dtype in convs} == {"bf16"}, sorted({d for _, d in convs})
    _, out = jax.eval_shape(lambda p: loss(p, False, jnp.bfloat16, keep), params)
    assert out["x_hat"].dtype == jnp.bfloat16
    assert all(v.dtype == jnp.float32 for v in out["likelihoods"].values())


@pytest.mark.slow
def test_bfloat16_and_remat_train_like_float32(tmp_path):
    """mbt2018-mean (tiny), 8 steps on one batch: float32 with remat gives float32's losses; bfloat16 (with remat)
    lowers the loss as float32 does and stays within 2 % of it at every step; the exported model is float32."""
    from jaxlic.export import load_model
    batch = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), np.uint8)
    losses = {}
    for dtype, remat in (("float32", False), ("float32", True), ("bfloat16", True)):
        c = _tiny_config("mbt2018_mean", dtype=dtype, remat=remat)
        c.optim.lr = 3e-3  # one batch, eight steps: a loss that clearly falls
        t = Trainer(c, str(tmp_path / f"{dtype}{remat}"))
        state, out = t.init_state(), []
        for _ in range(8):
            state, m = t._step(state, jax.device_put(batch, t.batch_sharding))
            out.append(float(m["loss"]))
        losses[dtype, remat] = np.array(out)
    f32 = losses["float32", False]
    np.testing.assert_allclose(losses["float32", True], f32, rtol=1e-5)
    bf16 = losses["bfloat16", True]
    assert not np.array_equal(bf16, f32)  # bf16 did compute something else
    np.testing.assert_allclose(bf16, f32, rtol=0.02)
    assert f32[-1] < 0.95 * f32[0] and bf16[-1] < 0.95 * bf16[0], (f32, bf16)
    t.export(state, str(tmp_path / "m.npz"))
    _, _, _, variables, tables = load_model(str(tmp_path / "m.npz"))
    assert {a.dtype for a in jax.tree_util.tree_leaves(variables)} == {np.dtype(np.float32)}


@pytest.mark.parametrize("name", sorted(__import__("jaxlic.registry", fromlist=["REGISTRY"]).REGISTRY))
def test_every_model_trains_in_bfloat16_with_remat(name):
    """Traced, not run (``jax.eval_shape``): every registered model's training loss and gradient in bfloat16
    with its heavy blocks rematerialised; the reconstruction comes out of bf16 networks, the likelihoods are
    float32, and the gradients reach the float32 parameters as float32."""
    from helpers import tiny_config
    from jaxlic.registry import get_spec
    config = dict(_tiny_config("mlicpp").model_config) if name == "mlicpp" else tiny_config(name)  # slices of 32
    model = get_spec(name).build(**config)
    m = model.downsampling
    x = jnp.zeros((2, m, m, 3), jnp.float32)
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x[:1])
    constants = {k: v for k, v in variables.items() if k != "params"}
    keep = float32_paths(model, x[:1])

    def loss(params):
        with computing(jnp.bfloat16, remat=True):
            out = model.apply({"params": cast_params(params, jnp.bfloat16, keep), **constants}, x, training=True,
                              rng=jax.random.PRNGKey(1))
        rate = sum(-jnp.sum(jnp.log2(v)) for v in out["likelihoods"].values())
        return rate + jnp.mean(jnp.square(out["x_hat"].astype(jnp.float32) - x)), out

    (_, out), grads = jax.eval_shape(jax.value_and_grad(loss, has_aux=True), variables["params"])
    assert out["x_hat"].dtype == jnp.bfloat16, out["x_hat"].dtype
    assert {v.dtype for v in out["likelihoods"].values()} == {jnp.dtype(jnp.float32)}
    assert {g.dtype for g in jax.tree_util.tree_leaves(grads)} == {jnp.dtype(jnp.float32)}
