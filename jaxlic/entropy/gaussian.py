"""The Gaussian conditional (CompressAI ``GaussianConditional``): likelihoods, scale indexes and tables."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from jaxlic.entropy.bounds import lower_bound
from jaxlic.entropy.quantization import quantize
from jaxlic.entropy.tables import CodingTable, pmf_to_quantized_cdf

SCALE_BOUND = 0.11


def default_scale_table(lo: float = 0.11, hi: float = 256.0, n: int = 64) -> np.ndarray:
    """exp(linspace(ln lo, ln hi, n)) in float32, as CompressAI's ``get_scale_table`` (the checkpoints' buffer)."""
    return np.exp(np.linspace(np.log(lo), np.log(hi), n)).astype(np.float32)


def _standardized_cumulative(x):
    # Phi(x) via erfc: accurate in the lower tail where 0.5 * (1 + erf) cancels.
    return 0.5 * jax.scipy.special.erfc(-x * (2 ** -0.5))


def gaussian_likelihood(y_hat, scales, means=None, scale_bound: float = SCALE_BOUND, likelihood_bound: float = 1e-9):
    """P(y_hat - 1/2 < Y < y_hat + 1/2) for Y ~ N(means, max(scales, bound)); symmetric form as CompressAI."""
    values = y_hat - (0.0 if means is None else means)
    scales = lower_bound(scales, scale_bound)
    values = jnp.abs(values)
    upper = _standardized_cumulative((0.5 - values) / scales)
    lower = _standardized_cumulative((-0.5 - values) / scales)
    p = upper - lower
    return lower_bound(p, likelihood_bound) if likelihood_bound > 0 else p


def build_indexes(scales: jax.Array, scale_table, scale_bound: float = SCALE_BOUND) -> jax.Array:
    """Index of the largest table scale below max(scale, bound): count of table[:-1] entries below it (the
    table is ascending). A binary search: comparing against all 63 entries is 9x slower on XLA:CPU."""
    table = jnp.asarray(scale_table, scales.dtype)
    scales = jnp.maximum(scales, jnp.asarray(scale_bound, scales.dtype))
    return jnp.searchsorted(table[:-1], scales, side="left").astype(jnp.int32)


def nearest_boundary(scales: jax.Array, scale_table, scale_bound: float, margin) -> jax.Array:
    """j where a scale lies within relative distance ``margin`` of table boundary j, else -1. The boundaries are
    the entries of table[:-1] at or above the bound (those below it are counted for every scale); a scale s near
    boundary j has index j (s <= table[j]) or j + 1 (s > table[j]). Measured on the scale before the bound, so
    scales far below the bound are far from every boundary (files that decode on any machine, the repair)."""
    table = jnp.asarray(scale_table, scales.dtype)[:-1]
    n = table.shape[0]
    decides = table >= jnp.asarray(scale_bound, scales.dtype)
    # build_indexes' own search (XLA computes it once for both): table[k - 1] < max(s, bound) <= table[k]
    k = jnp.searchsorted(table, jnp.maximum(scales, jnp.asarray(scale_bound, scales.dtype)), side="left")
    lo, hi = jnp.clip(k - 1, 0, n - 1), jnp.clip(k, 0, n - 1)
    inf = jnp.asarray(jnp.inf, scales.dtype)
    d_lo = jnp.where((k > 0) & decides[lo], scales / table[lo] - 1, inf)
    d_hi = jnp.where((k < n) & decides[hi], 1 - scales / table[hi], inf)
    j = jnp.where(d_lo <= d_hi, lo, hi).astype(jnp.int32)
    return jnp.where(jnp.minimum(d_lo, d_hi) < margin, j, -1)


class ScaleTableConditional(nn.Module):
    """A conditional density coded through a table of scales: the table (a ``constants`` variable, so converted
    checkpoints carry theirs: its float32 values decide scale indexes at table boundaries), the index of a scale
    and the boundaries the cross-platform repair watches. Subclasses give the density and ``initial_table``."""

    scale_bound: float = SCALE_BOUND
    likelihood_bound: float = 1e-9

    def initial_table(self) -> np.ndarray:
        return default_scale_table()

    def setup(self):
        self.scale_table = self.variable("constants", "scale_table", lambda: jnp.asarray(self.initial_table()))

    def build_indexes(self, scales):
        return build_indexes(scales, self.scale_table.value, self.scale_bound)

    def nearest_boundary(self, scales, margin):
        return nearest_boundary(scales, self.scale_table.value, self.scale_bound, margin)

    def boundary_spacing(self):
        """The smallest relative gap between consecutive boundaries (the repair's margins must stay below it)."""
        t = self.scale_table.value[:-1]
        t = t[t >= self.scale_bound]
        return jnp.min(t[1:] / t[:-1] - 1) if t.shape[0] > 1 else jnp.inf


class GaussianConditional(ScaleTableConditional):
    """The Gaussian of y given its scales and means (CompressAI's ``GaussianConditional``)."""

    def __call__(self, y, scales, means=None, mode: str = "dequantize", rng=None):
        y_hat = quantize(y, mode, means, rng)
        return y_hat, gaussian_likelihood(y_hat, scales, means, self.scale_bound, self.likelihood_bound)


def gaussian_table(scale_table, tail_mass: float = 1e-9, precision: int = 16) -> CodingTable:
    """One table per scale: the discretised N(0, s) on |k| <= ceil(s * q) with q the tail_mass/2 quantile."""
    scales = np.asarray(scale_table, np.float64)
    multiplier = -special.ndtri(tail_mass / 2)
    centers = np.ceil(scales * multiplier).astype(np.int64)
    cdfs = []
    for s, c in zip(scales, centers):
        k = np.abs(np.arange(2 * c + 1) - c)
        pmf = special.ndtr((0.5 - k) / s) - special.ndtr((-0.5 - k) / s)
        tail = 2.0 * special.ndtr((-0.5 - c) / s)
        cdfs.append(pmf_to_quantized_cdf(np.append(pmf, tail), precision))
    return CodingTable.from_cdfs(cdfs, offset=-centers, precision=precision)
