"""GDN / IGDN (Balle et al.) with CompressAI's non-negative reparametrisation, so weights convert as stored."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlic.entropy.bounds import lower_bound

_PEDESTAL = 2.0 ** -36  # CompressAI NonNegativeParametrizer(reparam_offset=2**-18): pedestal = offset**2


def nonnegative(x: jax.Array, minimum: float = 0.0) -> jax.Array:
    """CompressAI ``NonNegativeParametrizer.forward``: lower_bound(x, sqrt(minimum + pedestal))**2 - pedestal."""
    return lower_bound(x, (minimum + _PEDESTAL) ** 0.5) ** 2 - _PEDESTAL


def nonnegative_init(value: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.maximum(value + _PEDESTAL, _PEDESTAL))


class GDN(nn.Module):
    """y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2); ``inverse`` multiplies instead (IGDN).

    ``beta`` and ``gamma`` hold the reparametrised values (CompressAI's ``beta``/``gamma`` tensors);
    ``gamma`` is (out i, in j) like PyTorch's (C, C, 1, 1) weight.
    """

    inverse: bool = False
    beta_min: float = 1e-6
    gamma_init: float = 0.1
    precision: Any = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        beta = self.param("beta", lambda k, s: nonnegative_init(jnp.ones(s)), (c,))
        gamma = self.param("gamma", lambda k, s: nonnegative_init(self.gamma_init * jnp.eye(s[0])), (c, c))
        beta = nonnegative(beta, self.beta_min).astype(x.dtype)
        gamma = nonnegative(gamma).astype(x.dtype)
        norm = jnp.einsum("bhwj,ij->bhwi", x * x, gamma, precision=self.precision) + beta
        return x * (jnp.sqrt(norm) if self.inverse else jax.lax.rsqrt(norm))
