"""CompressAI's variable-rate models (Kamisli, Racape and Choi, "Variable-Rate Learned Image Compression with
Multi-Objective Optimization and Quantization-Reconstruction Offsets", DCC 2024): ``bmshj2018-hyperprior-vbr``,
``mbt2018-mean-vbr`` and ``mbt2018-vbr``, one model for a continuous range of rates.

The transforms are those of the fixed-rate models (``jaxlic.models.hyperprior``); the rate is a gain g, the
inverse of y's quantization step: one of the eight learned ``Gain`` levels or any positive value (CompressAI's
``inputscale``). The tree: z under a factorized prior whose step follows the rate (``VariableStepLatent``,
step = max(gayn2zqstep(1 / g), 0.5)), y quantized at step 1 / g with learned reconstruction offsets
(``OffsetGaussianLatent``, the offsets from ``QuantABCD``). What the official forward does is reproduced as it
is, in CompressAI's "stage 2" (the variable-rate path):

- the forward uses ``Gain[s]`` as it is, CompressAI's compress / decompress ``abs(Gain[s])`` (the same for the
  positive official gains); the default level is CompressAI's ``s=1``;
- mbt2018-mean-vbr's forward rounds (y - mean) g while its compress codes round(y g - mean g): the two can
  differ where a value lies at a rounding boundary;
- mbt2018-vbr (``VariableRateJointAutoregressive``) keeps z at a fixed step (straight-through rounding in the
  forward), adds ``scale_to_context``(g) to its masked context, and its forward is itself sequential: the
  context sees the offset-reconstructed y_hat (``OffsetContextLatent``, a scan over the wavefront); its
  decompress convolves with the unmasked context weight, which the official checkpoints store masked (the
  mask is applied here in every path).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlic import latent_codecs as lc
from jaxlic.entropy import EntropyBottleneck, GaussianConditional
from jaxlic.entropy.factorized import factorized_table
from jaxlic.models.base import LatentCodecModel
from jaxlic.layers.conv import MaskedConv
from jaxlic.models.hyperprior import (gdn_analysis, hyper_analysis, igdn_synthesis, joint_entropy_parameters,
                                      mean_scale_hyper_synthesis, scale_hyper_synthesis)

GAINS = (0.10000, 0.13944, 0.19293, 0.26874, 0.37268, 0.51801, 0.71957, 1.00000)  # CompressAI's initial ``Gain``
LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.025, 0.0483, 0.0932, 0.18)           # its training lambda per level


def _mlp(features, p, last=None):
    """CompressAI's ``nn.Sequential(Linear, ReLU, ..., Linear[, last])``: Dense layers at indexes 0, 2, 4."""
    layers = []
    for i, f in enumerate(features):
        layers += [nn.Dense(f, precision=p)] + ([nn.relu] if i + 1 < len(features) else [])
    return nn.Sequential(layers + ([last] if last else []))


class VariableRateHyperprior(LatentCodecModel):
    """``bmshj2018-hyperprior-vbr`` (``means=False``: h_a sees |y|, a zero-mean Gaussian) and
    ``mbt2018-mean-vbr`` (``means=True``). ``vr_entbttlnck``: z's quantization step follows the rate (as in
    every released checkpoint)."""

    N: int = 192
    M: int = 320
    means: bool = False
    vr_entbttlnck: bool = True
    precision: Any = None

    levels = len(GAINS)
    default_level = 1  # CompressAI's ``s=1``
    rated = True   # the codec takes a rate (``Codec.encode(..., gain=)``) and writes it into the file

    def _shared_setup(self):
        """What every variable-rate model has: the transforms, both entropy models, the gains and the offsets
        network (called from ``setup``)."""
        N, M, p = self.N, self.M, self.precision
        self.g_a, self.g_s = gdn_analysis(N, M, p), igdn_synthesis(N, p)
        if self.means:
            self.h_a, self.h_s = hyper_analysis(N, p), mean_scale_hyper_synthesis(M, p)
        else:
            self.h_a, self.h_s = hyper_analysis(N, p, nn.relu), scale_hyper_synthesis(N, M, p)
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional()
        self.Gain = self.own_param("Gain", lambda key: jnp.asarray(GAINS, jnp.float32))
        self.QuantABCD = _mlp((12, 12, 1), p)

    def setup(self):
        p = self.precision
        self._shared_setup()
        if self.vr_entbttlnck:
            self.gayn2zqstep = _mlp((10, 10, 1), p, nn.softplus)
            z = lc.VariableStepLatent(self.entropy_bottleneck, self.gayn2zqstep)
        else:
            z = lc.EntropyBottleneckLatent(self.entropy_bottleneck, ste=True)
        self.latent_codec = lc.Hyperprior(self.h_a, self.h_s, z,
                                          lc.OffsetGaussianLatent(self.gaussian_conditional, self.QuantABCD,
                                                                  means=self.means),
                                          abs_input=not self.means)

    def gain(self, level: int | None = None, gain=None):
        """The rate's gain: ``gain`` itself if given, else the learned one of ``level`` (0 .. levels - 1,
        clipped as CompressAI clips it; default 1, CompressAI's ``s=1``)."""
        if gain is not None:
            return jnp.asarray(gain, jnp.float32)
        if level is None:
            level = self.default_level
        # a traced level (a random one per training batch) is clipped in the graph
        k = max(0, min(int(level), self.levels - 1)) if isinstance(level, (int, np.integer)) else \
            jnp.clip(level, 0, self.levels - 1)
        # detached, as CompressAI's ``_get_scale``: the rate loss would otherwise pull every gain down
        return jax.lax.stop_gradient(self.Gain[k])

    def analysis(self, x, gain=None):
        """The latents as the codec codes them at rate ``gain`` (default: level 1): y g and, with the
        variable-step z, (z - median) / step."""
        g = self.gain(None, gain)
        return self.latent_codec.scaled_latents(self.g_a(x), g)

    def z_step(self, gain):
        return self.latent_codec.z.step(self.gain(None, gain))

    def rate_tables(self, variables, gain) -> dict:
        """The coding tables that depend on the rate: z's at its step for ``gain`` (none with a fixed step)."""
        if not self.vr_entbttlnck:
            return {}
        step = float(self.apply(variables, gain, method="z_step"))
        return {"entropy_bottleneck": factorized_table(variables["params"]["entropy_bottleneck"], step=step)}

    def __call__(self, x, training: bool = False, rng=None, level: int | None = None, gain=None):
        """The forward at one rate (``gain`` / ``level``, see ``gain``); also returns the gain used."""
        g = self.gain(level, gain)
        y = self.g_a(x)
        out = self.latent_codec(y, training, rng, gain=g)
        return {"x_hat": self.g_s(out["y_hat"]), **out, "y": y, "gain": g}


class VariableRateJointAutoregressive(VariableRateHyperprior):
    """``mbt2018-vbr``: Minnen et al.'s joint autoregressive model at a variable rate. The tree: z under the
    factorized prior at a fixed step, y under ``OffsetContextLatent`` (the 5x5 context plus the rate's
    ``scale_to_context``, reconstruction offsets from ``QuantABCD``)."""

    N: int = 192
    M: int = 320
    means: bool = True
    vr_entbttlnck: bool = False   # CompressAI's mbt2018-vbr has no variable-step z

    def setup(self):
        M, p = self.M, self.precision
        self._shared_setup()
        self.entropy_parameters = joint_entropy_parameters(M, p)
        self.context_prediction = MaskedConv(M, 2 * M, 5, "A", precision=p)
        self.scale_to_context = nn.Dense(2 * M, precision=p)
        self.latent_codec = lc.Hyperprior(
            self.h_a, self.h_s, lc.EntropyBottleneckLatent(self.entropy_bottleneck, ste=True),
            lc.OffsetContextLatent(self.gaussian_conditional, self.context_prediction, self.entropy_parameters,
                                   precision=p, offsets=self.QuantABCD, rate_context=self.scale_to_context))
