"""The deep factorized prior (Balle et al. 2018, appendix 6.1) as CompressAI's ``EntropyBottleneck``.

Parameters keep CompressAI's shapes (``matrix{k}`` (C, out, in), ``bias{k}`` (C, out, 1), ``factor{k}``
(C, out, 1), ``quantiles`` (C, 1, 3)) so converted weights need no reshaping. Latents are channels-last.
"""
from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlic.entropy.bounds import lower_bound
from jaxlic.entropy.quantization import quantize
from jaxlic.entropy.tables import CodingTable, pmf_to_quantized_cdf


def _softplus(x, xp):
    return jax.nn.softplus(x) if xp is jnp else np.logaddexp(0.0, x)


def logits_cumulative(params: Mapping[str, Any], x, n_layers: int, xp=jnp):
    """Cumulative logits of each channel's density at x, x of shape (C, 1, N); works in numpy (float64) too."""
    for k in range(n_layers):
        x = xp.matmul(_softplus(params[f"matrix{k}"], xp), x) + params[f"bias{k}"]
        if k < n_layers - 1:
            x = x + xp.tanh(params[f"factor{k}"]) * xp.tanh(x)
    return x


def _sigmoid(x, xp):
    return jax.nn.sigmoid(x) if xp is jnp else 0.5 * (1.0 + np.tanh(0.5 * x))


def interval_probability(params, x, n_layers: int, xp=jnp, half=0.5):
    """P(x - half < X < x + half), computed on the side of the median where sigmoids do not saturate."""
    lower = logits_cumulative(params, x - half, n_layers, xp)
    upper = logits_cumulative(params, x + half, n_layers, xp)
    sign = -xp.sign(lower + upper)
    if xp is jnp:
        sign = jax.lax.stop_gradient(sign)
    return xp.abs(_sigmoid(sign * upper, xp) - _sigmoid(sign * lower, xp)), lower, upper


class EntropyBottleneck(nn.Module):
    channels: int
    filters: tuple[int, ...] = (3, 3, 3, 3)
    init_scale: float = 10.0
    tail_mass: float = 1e-9
    likelihood_bound: float = 1e-9

    @property
    def n_layers(self) -> int:
        return len(self.filters) + 1

    def setup(self):
        f = (1,) + tuple(self.filters) + (1,)
        scale = self.init_scale ** (1.0 / (len(self.filters) + 1))
        c = self.channels
        for k in range(len(f) - 1):
            init = float(np.log(np.expm1(1.0 / scale / f[k + 1])))
            setattr(self, f"matrix{k}", self.param(
                f"matrix{k}", lambda key, s, v=init: jnp.full(s, v, jnp.float32), (c, f[k + 1], f[k])))
            setattr(self, f"bias{k}", self.param(
                f"bias{k}", lambda key, s: jax.random.uniform(key, s, jnp.float32, -0.5, 0.5), (c, f[k + 1], 1)))
            if k < len(f) - 2:
                setattr(self, f"factor{k}", self.param(f"factor{k}", nn.initializers.zeros, (c, f[k + 1], 1)))
        s = self.init_scale
        self.quantiles = self.param(
            "quantiles", lambda key, shape: jnp.tile(jnp.array([[[-s, 0.0, s]]], jnp.float32), (shape[0], 1, 1)),
            (c, 1, 3))

    def _params(self, stop_gradient: bool = False) -> dict:
        p = {}
        for k in range(self.n_layers):
            for name in (f"matrix{k}", f"bias{k}", f"factor{k}"):
                if hasattr(self, name):
                    p[name] = getattr(self, name)
        return jax.lax.stop_gradient(p) if stop_gradient else p

    def medians(self) -> jax.Array:
        return jax.lax.stop_gradient(self.quantiles[:, 0, 1])

    def likelihood(self, values: jax.Array, step=1.0) -> jax.Array:
        """Probability mass of the interval of width ``step`` (the quantization step) around each (quantized
        or noisy) value, channels last."""
        shape = values.shape
        v = jnp.moveaxis(values, -1, 0).reshape(self.channels, 1, -1)
        p, _, _ = interval_probability(self._params(), v, self.n_layers, half=0.5 * step)
        p = p.reshape((self.channels,) + shape[:-1])
        p = jnp.moveaxis(p, 0, -1)
        return lower_bound(p, self.likelihood_bound) if self.likelihood_bound > 0 else p

    def __call__(self, x: jax.Array, mode: str = "dequantize", rng: jax.Array | None = None):
        """Returns (quantized x, likelihoods). ``mode``: noise (training), ste or dequantize (around medians)."""
        x_hat = quantize(x, mode, self.medians(), rng)
        return x_hat, self.likelihood(x_hat)

    def variable(self, x: jax.Array, step, mode: str = "dequantize", rng: jax.Array | None = None):
        """Returns (quantized x, likelihoods) with quantization step ``step`` (a traced scalar; CompressAI's
        ``EntropyBottleneckVbr`` forward): noise of width ``step`` in training, else round((x - median) / step)
        * step + median. The likelihood is, as the official forward computes it, the mass of the interval of
        width 1 around each value, not of width ``step``: it passes ``qs`` positionally into
        ``_likelihood_variable``'s ``stop_gradient`` slot, which leaves ``qs=None`` (its coding tables, built
        with ``qs`` by keyword, use width ``step``)."""
        if mode == "noise":
            if rng is None:
                raise ValueError("EntropyBottleneck.variable(mode='noise') needs an rng key")
            x_hat = x + step * jax.random.uniform(rng, x.shape, jnp.float32, -0.5, 0.5)
        elif mode == "dequantize":
            m = self.medians()
            x_hat = jnp.round((x - m) / step) * step + m
        else:
            raise ValueError(f"EntropyBottleneck.variable: mode {mode!r} (noise or dequantize)")
        return x_hat, self.likelihood(x_hat)

    def aux_loss(self) -> jax.Array:
        """Pulls ``quantiles`` to the tail_mass/2, median and 1 - tail_mass/2 points of each density."""
        target = np.log(2.0 / self.tail_mass - 1.0)
        logits = logits_cumulative(self._params(stop_gradient=True), self.quantiles, self.n_layers)
        return jnp.abs(logits - jnp.array([-target, 0.0, target], jnp.float32)).sum()


def factorized_table(params: Mapping[str, Any], precision: int = 16, step: float = 1.0) -> CodingTable:
    """Per-channel integer CDF tables from an EntropyBottleneck's parameters (numpy, float64).

    Support per channel: integers from ceil(median - q_low) below to ceil(q_high - median) above the median,
    plus an escape symbol that carries the remaining tail mass. ``step``: the quantization step of a variable-
    rate latent (CompressAI's ``EntropyBottleneckVbr.update_variable``): symbol k stands for median + k step,
    with the mass of the interval of width ``step`` around it.
    """
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    n_layers = sum(1 for k in p if k.startswith("matrix"))
    q = p["quantiles"][:, 0, :]
    medians = q[:, 1]
    step = float(step)
    minima = np.maximum(np.ceil((medians - q[:, 0]) / step), 0).astype(np.int64)
    maxima = np.maximum(np.ceil((q[:, 2] - medians) / step), 0).astype(np.int64)
    pmf_length = minima + maxima + 1
    max_length = int(pmf_length.max())
    samples = (np.arange(max_length)[None, :] * step + (medians - minima * step)[:, None])[:, None, :]
    pmf, lower, upper = interval_probability(p, samples, n_layers, np, half=0.5 * step)
    pmf = pmf[:, 0, :]
    last = upper[np.arange(len(q)), 0, pmf_length - 1]  # each channel's own last sample, not the padded end
    tail = _sigmoid(lower[:, 0, 0], np) + _sigmoid(-last, np)
    cdfs = [pmf_to_quantized_cdf(np.append(pmf[c, :pmf_length[c]], tail[c]), precision) for c in range(len(q))]
    return CodingTable.from_cdfs(cdfs, offset=-minima, precision=precision)
