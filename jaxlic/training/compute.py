"""How the training step computes, for every model alike: mixed precision and rematerialisation.

Both are written once, with Flax's method interception (``nn.intercept_methods``), so no model carries code for
them and the exported weights, their names and the codec are the same as without.

**bfloat16** (``config.dtype``): the parameters stay float32 (the optimizer's copy and its moments); the step
casts them to bfloat16 where they are used, except the entropy models' (``EntropyBottleneck``,
``GaussianConditional``). Every floating argument of a module's method is cast to bfloat16 on entry, except an
entropy model's, cast to float32. So the transforms and the context and entropy-parameter networks compute in
bfloat16, while the quantization (``jaxlic.entropy.quantization`` rounds in float32), the likelihoods and the
rate, and the coding tables stay float32; the distortion is taken in float32. The gradients reach the float32
parameters through the casts.

**Rematerialisation** (``config.remat``): the heavy blocks run under ``nn.checkpoint``: their inputs are kept
for the backward pass and their intermediates recomputed there (policy ``config.remat_policy``, a name in
``jax.checkpoint_policies``; default ``nothing_saveable``). The blocks are the module classes in
``REMAT_BLOCKS`` (``config.remat_blocks`` replaces the list): the residual, attention and Swin blocks of the
transforms, a plain ``Sequential`` transform as a whole, and the per-slice / per-chunk context networks. The
outermost wins: a block inside a rematerialised one is not checkpointed again.
"""
from __future__ import annotations

import contextlib
import threading

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxlic.entropy.factorized import EntropyBottleneck
from jaxlic.entropy.gaussian import GaussianConditional

FLOAT32_MODULES = (EntropyBottleneck, GaussianConditional)
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
REMAT_BLOCKS = (
    # transforms: residual, attention, Swin and CWAM blocks; a plain Sequential transform (the hyperprior family)
    "ResidualBlock", "ResidualBlockWithStride", "ResidualBlockUpsample", "ResidualUnit", "ResidualBottleneckBlock",
    "AttentionBlock", "SwinBlock", "EnhBlock", "CWAMBlock", "Sequential",
    # context networks: MLIC++'s per slice, Shen & Liu's per chunk
    "EntropyParameters", "LatentResidualPrediction", "LocalContext", "LinearGlobalInterContext",
    "LinearGlobalIntraContext", "ChannelContext", "ConvStack", "ChunkConvStack")


def _cast(tree, dtype):
    return jax.tree_util.tree_map(
        lambda a: a.astype(dtype) if isinstance(a, (jax.Array, np.ndarray)) and jnp.issubdtype(a.dtype, jnp.floating)
        else a, tree)


def init_shapes(model, *init_args) -> tuple[dict, frozenset]:
    """The shapes and dtypes of ``model``'s variables (``jax.eval_shape`` of its init) and the module paths
    (tuples of names) of its entropy models, from one trace of the init."""
    found = set()

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, FLOAT32_MODULES) and context.module.scope is not None:
            found.add(tuple(context.module.scope.path))
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), *init_args)
    return shapes, frozenset(found)


def float32_paths(model, *init_args) -> frozenset:
    """Module paths (tuples of names) of the entropy models in ``model``, found by tracing its init."""
    return init_shapes(model, *init_args)[1]


def saved_residual_bytes(fn, *args) -> int:
    """Bytes of the activations JAX keeps from ``fn``'s forward pass for its backward (parsed from
    ``jax.ad_checkpoint.print_saved_residuals``; ``fn``'s arguments, which are kept anyway, not counted): what
    rematerialisation saves before any compiler scheduling."""
    import contextlib
    import io
    import re
    from jax.ad_checkpoint import print_saved_residuals
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        print_saved_residuals(fn, *args)
    sizes = {"bf16": 2, "f16": 2, "f32": 4, "i32": 4, "u32": 4, "bool": 1}
    total = 0
    for kind, shape, source in re.findall(r"^(bf16|f16|f32|i32|u32|bool)\[([\d,]*)\](.*)$", text.getvalue(), re.M):
        if "from the argument" not in source:
            total += int(np.prod([int(d) for d in shape.split(",") if d])) * sizes[kind]
    return total


def cast_params(params, dtype, keep: frozenset):
    """``params`` in ``dtype``, except those under a path in ``keep`` (float32)."""
    if dtype == jnp.float32:
        return params
    flat = traverse_util.flatten_dict(params)
    return traverse_util.unflatten_dict({k: v if any(k[:len(p)] == p for p in keep) else v.astype(dtype)
                                         for k, v in flat.items()})


def _mixed_precision(dtype):
    def interceptor(next_fun, args, kwargs, context):
        to = jnp.float32 if isinstance(context.module, FLOAT32_MODULES) else dtype
        return next_fun(*_cast(args, to), **_cast(kwargs, to))
    return interceptor


def _remat(blocks: frozenset, policy):
    local = threading.local()  # own: a checkpointed block's own call is next; active: inside one

    def interceptor(next_fun, args, kwargs, context):
        module = context.module
        if context.method_name != "__call__" or type(module).__name__ not in blocks or module.scope is None:
            return next_fun(*args, **kwargs)
        if getattr(local, "own", False) or getattr(local, "active", 0):
            local.own = False
            return next_fun(*args, **kwargs)
        leaves, tree = jax.tree_util.tree_flatten((args, kwargs))
        dynamic = [i for i, x in enumerate(leaves) if isinstance(x, (jax.Array, np.ndarray))]

        def run(mdl, *arrays):  # the static arguments (flags, modes) stay Python values
            filled = list(leaves)
            for i, a in zip(dynamic, arrays):
                filled[i] = a
            a, k = jax.tree_util.tree_unflatten(tree, filled)
            local.own, local.active = True, getattr(local, "active", 0) + 1
            try:
                return mdl(*a, **k)
            finally:
                local.active -= 1

        return nn.checkpoint(run, policy=policy)(module, *(leaves[i] for i in dynamic))
    return interceptor


@contextlib.contextmanager
def computing(dtype=jnp.float32, remat: bool = False, remat_blocks=REMAT_BLOCKS,
              remat_policy: str = "nothing_saveable"):
    """Within: module calls compute in ``dtype`` (mixed precision as above) and, with ``remat``, the modules of
    the classes named in ``remat_blocks`` are rematerialised. Active while a function is traced (in ``jax.jit``)."""
    with contextlib.ExitStack() as stack:
        if remat:
            policy = None if remat_policy == "nothing_saveable" else getattr(jax.checkpoint_policies, remat_policy)
            stack.enter_context(nn.intercept_methods(_remat(frozenset(remat_blocks), policy)))
        if dtype != jnp.float32:
            stack.enter_context(nn.intercept_methods(_mixed_precision(dtype)))
        yield
