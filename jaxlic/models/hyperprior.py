"""Balle et al. 2018 and Minnen et al. 2018 in CompressAI's layouts: ``bmshj2018-factorized``,
``bmshj2018-hyperprior``, ``mbt2018-mean`` and ``mbt2018`` (joint autoregressive and hierarchical priors).

``g_a``/``g_s``/``h_a``/``h_s`` are ``nn.Sequential``s whose ``layers_{k}`` is PyTorch index ``k``. The codec
plans: the factorized prior codes y at once; the hyperpriors code z, then y at once; mbt2018 codes z, then y
along the wavefront of its 5x5 masked context (W + 3H - 3 steps of one compiled function, not H * W).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlic import plan as P
from jaxlic.entropy import EntropyBottleneck, GaussianConditional
from jaxlic.entropy.quantization import quantize
from jaxlic.layers import GDN, Conv, ConvTranspose
from jaxlic.layers.conv import MaskedConv
from jaxlic.models.base import HyperpriorModel


def _leaky(x):
    return nn.leaky_relu(x, 0.01)  # torch.nn.LeakyReLU() default slope


def _gdn_analysis(N, M, p, k=5):
    return nn.Sequential([
        Conv(N, k, 2, precision=p), GDN(precision=p), Conv(N, k, 2, precision=p), GDN(precision=p),
        Conv(N, k, 2, precision=p), GDN(precision=p), Conv(M, k, 2, precision=p)])


def _igdn_synthesis(N, p, k=5):
    return nn.Sequential([
        ConvTranspose(N, k, precision=p), GDN(inverse=True, precision=p),
        ConvTranspose(N, k, precision=p), GDN(inverse=True, precision=p),
        ConvTranspose(N, k, precision=p), GDN(inverse=True, precision=p), ConvTranspose(3, k, precision=p)])


class FactorizedPrior(HyperpriorModel):
    """``bmshj2018-factorized``: y under a per-channel factorized prior, no hyperprior."""

    N: int = 128
    M: int = 192
    precision: Any = None

    downsampling = 16

    def setup(self):
        self.g_a = _gdn_analysis(self.N, self.M, self.precision)
        self.g_s = _igdn_synthesis(self.N, self.precision)
        self.entropy_bottleneck = EntropyBottleneck(self.M)

    def __call__(self, x, training: bool = False, rng=None):
        y = self.g_a(x)
        y_hat, y_lik = self.entropy_bottleneck(y, "noise" if training else "dequantize", rng)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_lik}, "y": y, "y_hat": y_hat}

    def analysis(self, x):
        return {"y": self.g_a(x)}

    def latent_shapes(self, batch: int, height: int, width: int):
        return {"y": (batch, height // 16, width // 16, self.M)}

    def plan(self, shapes) -> P.Plan:
        y = P.factorized("y", "entropy_bottleneck", "y", shapes["y"], lambda m, v: m.apply(v, method="z_medians"),
                         layout="nchw")
        return P.Plan((y,), shapes)


class ScaleHyperprior(HyperpriorModel):
    """``bmshj2018-hyperprior``: z from |y|, scales of a zero-mean Gaussian from z."""

    N: int = 128
    M: int = 192
    precision: Any = None

    hyper_input_abs = True

    def setup(self):
        N, M, p = self.N, self.M, self.precision
        self.g_a = _gdn_analysis(N, M, p)
        self.g_s = _igdn_synthesis(N, p)
        self.h_a = nn.Sequential([Conv(N, 3, 1, precision=p), nn.relu, Conv(N, 5, 2, precision=p), nn.relu,
                                  Conv(N, 5, 2, precision=p)])
        self.h_s = nn.Sequential([ConvTranspose(N, precision=p), nn.relu, ConvTranspose(N, precision=p), nn.relu,
                                  Conv(M, 3, 1, precision=p), nn.relu])
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional()

    def __call__(self, x, training: bool = False, rng=None):
        mode = "noise" if training else "dequantize"
        rz, ry = jax.random.split(rng) if training else (None, None)
        latents = self.analysis(x)
        z_hat, z_lik = self.entropy_bottleneck(latents["z"], mode, rz)
        scales = self.h_s(z_hat)
        y_hat, y_lik = self.gaussian_conditional(latents["y"], scales, None, mode, ry)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_lik, "z": z_lik}, "z_hat": z_hat,
                "y_hat": y_hat, "scales": scales, **latents}

    def y_params(self, z_hat):
        return self.h_s(z_hat), None

    def plan(self, shapes) -> P.Plan:
        return _hyperprior_plan(self, shapes)


def _hyperprior_plan(model, shapes) -> P.Plan:
    """z, then y at once from ``y_params(z_hat) -> (scales, means or None)``."""
    z = model.z_step(shapes, lambda m, v, state, z_hat: {"z": z_hat})

    def predict(m, v, state):
        scales, means = m.apply(v, state["z"], method="y_params")
        return (jnp.zeros_like(scales) if means is None else means), scales

    return P.Plan((z, P.whole("y", "gaussian_conditional", "y", shapes["y"], predict)), shapes)


class MeanScaleHyperprior(HyperpriorModel):
    """``mbt2018-mean``: scales and means of the Gaussian from z."""

    N: int = 128
    M: int = 192
    precision: Any = None

    def setup(self):
        N, M, p = self.N, self.M, self.precision
        self.g_a = _gdn_analysis(N, M, p)
        self.g_s = _igdn_synthesis(N, p)
        self.h_a = nn.Sequential([
            Conv(N, 3, 1, precision=p), _leaky, Conv(N, 5, 2, precision=p), _leaky, Conv(N, 5, 2, precision=p)])
        self.h_s = nn.Sequential([
            ConvTranspose(M, precision=p), _leaky, ConvTranspose(M * 3 // 2, precision=p), _leaky,
            Conv(M * 2, 3, 1, precision=p)])
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional()

    def __call__(self, x, training: bool = False, rng=None):
        """Training / evaluation forward. ``training`` adds uniform noise (needs ``rng``), else rounds."""
        mode = "noise" if training else "dequantize"
        rz, ry = jax.random.split(rng) if training else (None, None)
        y = self.g_a(x)
        z = self.h_a(y)
        z_hat, z_lik = self.entropy_bottleneck(z, mode, rz)
        scales, means = self.hyper_synthesis(z_hat)
        y_hat, y_lik = self.gaussian_conditional(y, scales, means, mode, ry)
        x_hat = self.g_s(y_hat)
        return {"x_hat": x_hat, "likelihoods": {"y": y_lik, "z": z_lik}, "y": y, "z": z, "y_hat": y_hat,
                "z_hat": z_hat, "scales": scales, "means": means}

    def hyper_synthesis(self, z_hat):
        scales, means = jnp.split(self.h_s(z_hat), 2, axis=-1)  # scales first, as CompressAI's chunk(2, 1)
        return scales, means

    def y_params(self, z_hat):
        return self.hyper_synthesis(z_hat)

    def plan(self, shapes) -> P.Plan:
        return _hyperprior_plan(self, shapes)


class JointAutoregressive(HyperpriorModel):
    """``mbt2018``: the mean-scale hyperprior plus a 5x5 masked (type A) context over y; entropy parameters
    from (hyper params, context) by three 1x1 convs. ``_transforms`` is what Cheng et al. 2020 replace."""

    N: int = 192
    M: int = 192
    precision: Any = None

    def _transforms(self):
        N, M, p = self.N, self.M, self.precision
        g_a = _gdn_analysis(N, M, p)
        g_s = _igdn_synthesis(N, p)
        h_a = nn.Sequential([
            Conv(N, 3, 1, precision=p), _leaky, Conv(N, 5, 2, precision=p), _leaky, Conv(N, 5, 2, precision=p)])
        h_s = nn.Sequential([
            ConvTranspose(M, precision=p), _leaky, ConvTranspose(M * 3 // 2, precision=p), _leaky,
            Conv(M * 2, 3, 1, precision=p)])
        return g_a, g_s, h_a, h_s

    def setup(self):
        M, p = self.M, self.precision
        self.g_a, self.g_s, self.h_a, self.h_s = self._transforms()
        self.entropy_parameters = nn.Sequential([
            Conv(M * 10 // 3, 1, precision=p), _leaky, Conv(M * 8 // 3, 1, precision=p), _leaky,
            Conv(M * 6 // 3, 1, precision=p)])
        self.context_prediction = MaskedConv(M, 2 * M, 5, "A", precision=p)
        self.entropy_bottleneck = EntropyBottleneck(self.z_channels)
        self.gaussian_conditional = GaussianConditional()

    def __call__(self, x, training: bool = False, rng=None):
        """As CompressAI: the context sees y rounded (or noisy), the likelihood is of y rounded around its
        mean."""
        mode = "noise" if training else "dequantize"
        rz, ry, rl = jax.random.split(rng, 3) if training else (None, None, None)
        latents = self.analysis(x)
        z_hat, z_lik = self.entropy_bottleneck(latents["z"], mode, rz)
        params = self.h_s(z_hat)
        y_hat = quantize(latents["y"], mode, None, ry)
        gp = self.entropy_parameters(jnp.concatenate([params, self.context_prediction(y_hat)], -1))
        scales, means = jnp.split(gp, 2, axis=-1)
        _, y_lik = self.gaussian_conditional(latents["y"], scales, means, mode, rl)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_lik, "z": z_lik}, "z_hat": z_hat, "y_hat": y_hat,
                "scales": scales, "means": means, **latents}

    # --- codec: z, then the wavefront of the masked context -------------------------------------------------
    def start_y(self, z_hat):
        """State of the wavefront: the decoded y zero-padded for the 5x5 context (2 rows above, 2 columns each
        side), and what does not depend on it, computed once: the hyper params' part of the first entropy-
        parameter layer at every position, and the weights a step multiplies by, sliced and laid out (out, in)
        once (slicing inside a step would copy them at every step)."""
        params = self.h_s(z_hat)
        b, h, w, _ = params.shape
        layers = self.entropy_parameters.layers
        first = layers[0].variables["params"]
        k = first["kernel"][0, 0].astype(params.dtype)
        hyper = jnp.einsum("...c,co->...o", params, k[:2 * self.M], precision=self.precision) + first["bias"]
        later = [layers[i].variables["params"]["kernel"][0, 0].T.astype(params.dtype) for i in (2, 4)]
        return {"hyper": hyper, "weights": [k[2 * self.M:].T, *later], "taps": self.context_prediction.taps(),
                "y_pad": jnp.zeros((b, h + 2, w + 4, self.M), params.dtype)}

    def wave_params(self, state, rows, cols):
        """Means and scales at the positions (rows, cols) from the decoded neighbourhoods: (B, P, M). The same
        function as the forward's entropy_parameters(concat(params, context)), its first layer split in two,
        computed feature-major (features, B * P) as ``MaskedConv.at`` gives the context."""
        layers = self.entropy_parameters.layers
        b = state["y_pad"].shape[0]
        ctx = self.context_prediction.at(state["y_pad"], rows, cols, state["taps"])
        mul = lambda w, x: jnp.einsum("oc,cq->oq", w, x, precision=self.precision)
        first, *later = state["weights"]
        x = state["hyper"][:, rows, cols].reshape(b * rows.shape[0], -1).T + mul(first, ctx)
        for w, layer in zip(later, (layers[2], layers[4])):
            x = mul(w, _leaky(x)) + layer.variables["params"]["bias"].astype(x.dtype)[:, None]
        # the barrier keeps XLA from folding the transpose into the last product (a transposed operand takes
        # XLA:CPU's slower generic dot)
        x = jax.lax.optimization_barrier(x).T.reshape(b, rows.shape[0], -1)
        scales, means = jnp.split(x, 2, axis=-1)
        return means, scales

    def plan(self, shapes) -> P.Plan:
        b, h, w, _ = shapes["y"]
        z = self.z_step(shapes, lambda m, v, state, z_hat: m.apply(v, z_hat, method="start_y"))

        def predict(m, v, state, rows, cols, valid):
            return m.apply(v, state, rows, cols, method="wave_params")

        def update(m, v, state, rows, cols, valid, values):
            r = jnp.where(valid, rows + 2, h + 2)  # out of range: dropped
            return {**state, "y_pad": state["y_pad"].at[:, r, cols + 2].set(values, mode="drop")}

        y = P.wavefront("y", "gaussian_conditional", "y", shapes["y"], predict, update)
        return P.Plan((z, y), shapes, lambda state: {"y": state["y_pad"][:, 2:, 2:-2]})
