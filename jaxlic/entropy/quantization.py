"""Quantization modes used in training and coding (CompressAI / tensorflow-compression conventions)."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _float32(x):
    """Quantization is float32 however the networks around it compute (bfloat16 training): rounding a bfloat16
    value of magnitude above 256 would already be off by more than one."""
    x = jnp.asarray(x)
    return x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating) and x.dtype.itemsize < 4 else x


def ste_round(x: jax.Array) -> jax.Array:
    """round(x) forward, identity gradient."""
    x = _float32(x)
    return x + jax.lax.stop_gradient(jnp.round(x) - x)


def quantize(x: jax.Array, mode: str, means: jax.Array | None = None, rng: jax.Array | None = None) -> jax.Array:
    """``noise``: x + U(-1/2, 1/2) (needs ``rng``); ``ste``: round(x - m) + m with identity gradient;
    ``dequantize``: round(x - m) + m; ``symbols``: round(x - m) as int32.

    ``jnp.round`` rounds half to even, like ``torch.round``.
    """
    x = _float32(x)
    if mode == "noise":
        if rng is None:
            raise ValueError("quantize(mode='noise') needs an rng key")
        return x + jax.random.uniform(rng, x.shape, x.dtype, -0.5, 0.5)
    m = 0.0 if means is None else _float32(means)
    if mode == "ste":
        return ste_round(x - m) + m
    if mode == "dequantize":
        return jnp.round(x - m) + m
    if mode == "symbols":
        return symbols_of(x, m)
    raise ValueError(f"unknown quantization mode {mode!r}; expected noise, ste, dequantize or symbols")


def symbols_of(x: jax.Array, means=0.0) -> jax.Array:
    return jnp.round(x - means).astype(jnp.int32)
