"""The generalized Gaussian entropy model (GGM) of HPCM (Li et al. 2025; official ``src/entropy_models``): a
zero-mean generalized Gaussian of shape ``beta`` (1.5) whose scale is bounded below by 0.12, for the residuals
y - mean given their scales, and, with learned per-channel means and scales, as the prior of z.

cdf(v) = (1 + sign(v) P(1 / beta, |v|^beta)) / 2 with P the regularized lower incomplete gamma function; the mass
of a residual r at scale s is cdf((r + 1/2) / s) - cdf((r - 1/2) / s). The official code gives the cdf its own
derivative, beta / 2 exp(-|v|^beta) / Gamma(1 / beta) (the density; autodiff of P would divide 0 by 0 at v = 0).
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from scipy import special, stats

from jaxlic.entropy.bounds import lower_bound
from jaxlic.entropy.gaussian import ScaleTableConditional
from jaxlic.entropy.tables import CodingTable, pmf_to_quantized_cdf

BETA = 1.5
SCALE_BOUND = 0.12


def ggm_scale_table(lo: float = 0.12, hi: float = 64.0, n: int = 60) -> np.ndarray:
    """HPCM's ``get_scale_table(0.12, 64, 60)``: exp(linspace(ln lo, ln hi, n)) in float32."""
    return np.exp(np.linspace(np.log(lo), np.log(hi), n)).astype(np.float32)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def ggm_cdf(v, beta: float = BETA):
    return 0.5 * (1.0 + jnp.sign(v) * jax.scipy.special.gammainc(1.0 / beta, jnp.abs(v) ** beta))


@ggm_cdf.defjvp
def _ggm_cdf_jvp(beta, primals, tangents):
    (v,), (dv,) = primals, tangents
    density = (jnp.exp(-jnp.abs(v) ** beta - special.gammaln(1.0 / beta)) * (beta / 2)).astype(v.dtype)
    return ggm_cdf(v, beta), density * dv


def ggm_likelihood(residuals, scales, beta: float = BETA, scale_bound: float = SCALE_BOUND,
                   likelihood_bound: float = 1e-9):
    """Mass of [r - 1/2, r + 1/2] under the zero-mean GGM of scale max(scale, bound), bounded below; in float32
    whatever the networks computed in (bfloat16 training)."""
    residuals, scales = jnp.asarray(residuals, jnp.float32), lower_bound(jnp.asarray(scales, jnp.float32), scale_bound)
    p = ggm_cdf((residuals + 0.5) / scales, beta) - ggm_cdf((residuals - 0.5) / scales, beta)
    return lower_bound(p, likelihood_bound) if likelihood_bound > 0 else p


class GGMConditional(ScaleTableConditional):
    """The GGM for residuals given scales (the y of HPCM), with HPCM's scale table. Table indexes count the entries
    of table[:-1] below a scale, as the official ``build_indexes_conditional`` does without a bound: the bound 0.12
    applied here is table[0], which gives the same indexes."""

    scale_bound: float = SCALE_BOUND
    beta: float = BETA

    def initial_table(self) -> np.ndarray:
        return ggm_scale_table()

    def likelihood(self, residuals, scales):
        return ggm_likelihood(residuals, scales, self.beta, self.scale_bound, self.likelihood_bound)


class ChannelGGMPrior(nn.Module):
    """A per-channel learned prior (HPCM's z): z - means under the zero-mean GGM of the channel's ``scales``
    (parameters ``means``, ``scales``, shape (C,)). The interface of ``EntropyBottleneck`` that
    ``EntropyBottleneckLatent`` uses: ``(x_hat, likelihood) = prior(x, mode, rng)``, ``medians()``."""

    channels: int
    beta: float = BETA
    scale_bound: float = SCALE_BOUND
    likelihood_bound: float = 1e-9

    def setup(self):
        self.means = self.param("means", nn.initializers.zeros, (self.channels,))
        self.scales = self.param("scales", nn.initializers.ones, (self.channels,))

    def medians(self):
        return self.means

    def __call__(self, x, mode: str = "dequantize", rng=None):
        res = jnp.asarray(x, jnp.float32) - self.means
        if mode == "noise":
            res = res + jax.random.uniform(rng, res.shape, res.dtype, -0.5, 0.5)
        elif mode == "dequantize":
            res = jnp.round(res)
        else:
            raise ValueError(f"mode must be 'noise' or 'dequantize', got {mode!r}")
        lik = ggm_likelihood(res, self.scales, self.beta, self.scale_bound, self.likelihood_bound)
        return res + self.means, lik

    def aux_loss(self):
        return jnp.zeros((), jnp.float32)


def ggm_table(scales, beta: float = BETA, scale_bound: float = SCALE_BOUND, tail_mass: float = 1e-6,
              precision: int = 16) -> CodingTable:
    """One table per scale (the official ``get_quantized_cdf``): the discretised GGM of scale max(s, bound) on
    |k| <= ceil(s q), q the tail_mass / 2 quantile of the standard GGM, the two tails' mass as the escape. The
    support is the official one (its centre computed in float32, as there); the masses in float64."""
    s32 = np.maximum(np.asarray(scales, np.float32).reshape(-1), np.float32(scale_bound))
    multiplier = -stats.gennorm.ppf(tail_mass / 2, beta)
    centers = np.ceil(s32 * np.float32(multiplier)).astype(np.int64)
    cdf = lambda v: 0.5 * (1 + np.sign(v) * special.gammainc(1 / beta, np.abs(v) ** beta))
    cdfs = []
    for s, c in zip(s32.astype(np.float64), centers):
        k = np.arange(2 * c + 1) - c
        upper, lower = cdf((k + 0.5) / s), cdf((k - 0.5) / s)
        tail = lower[0] + (1 - upper[-1])
        cdfs.append(pmf_to_quantized_cdf(np.append(upper - lower, tail), precision))
    return CodingTable.from_cdfs(cdfs, offset=-centers, precision=precision)
