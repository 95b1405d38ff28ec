"""Balle et al. 2018 and Minnen et al. 2018 in CompressAI's layouts: ``bmshj2018-factorized``,
``bmshj2018-hyperprior``, ``mbt2018-mean`` and ``mbt2018`` (joint autoregressive and hierarchical priors).

Each model is its transforms plus its latent-codec tree (``jaxlic.latent_codecs``). ``g_a``/``g_s``/``h_a``/
``h_s`` are ``nn.Sequential``s whose ``layers_{k}`` is PyTorch index ``k``. The codec plans: the factorized prior
codes y at once; the hyperpriors code z, then y at once; mbt2018 codes z, then y along the wavefront of its 5x5
masked context (W + 3H - 3 steps of one compiled function, not H * W).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn

from jaxlic import latent_codecs as lc
from jaxlic.entropy import EntropyBottleneck, GaussianConditional
from jaxlic.layers import GDN, Conv, ConvTranspose
from jaxlic.layers.blocks import leaky_relu
from jaxlic.layers.conv import MaskedConv
from jaxlic.models.base import LatentCodecModel


def gdn_analysis(N, M, p, k=5):
    return nn.Sequential([
        Conv(N, k, 2, precision=p), GDN(precision=p), Conv(N, k, 2, precision=p), GDN(precision=p),
        Conv(N, k, 2, precision=p), GDN(precision=p), Conv(M, k, 2, precision=p)])


def igdn_synthesis(N, p, k=5):
    return nn.Sequential([
        ConvTranspose(N, k, precision=p), GDN(inverse=True, precision=p),
        ConvTranspose(N, k, precision=p), GDN(inverse=True, precision=p),
        ConvTranspose(N, k, precision=p), GDN(inverse=True, precision=p), ConvTranspose(3, k, precision=p)])


def hyper_analysis(N, p, act=leaky_relu):
    return nn.Sequential([Conv(N, 3, 1, precision=p), act, Conv(N, 5, 2, precision=p), act,
                          Conv(N, 5, 2, precision=p)])


def scale_hyper_synthesis(N, M, p):
    """Balle et al.'s h_s: the scales of y (M channels, ReLU: non-negative)."""
    return nn.Sequential([ConvTranspose(N, precision=p), nn.relu, ConvTranspose(N, precision=p), nn.relu,
                          Conv(M, 3, 1, precision=p), nn.relu])


def mean_scale_hyper_synthesis(M, p):
    """Minnen et al.'s h_s: (scales, means) of y, 2M channels."""
    return nn.Sequential([ConvTranspose(M, precision=p), leaky_relu, ConvTranspose(M * 3 // 2, precision=p),
                          leaky_relu, Conv(M * 2, 3, 1, precision=p)])


def joint_entropy_parameters(M, p):
    """Minnen et al.'s 1x1 entropy-parameter layers: (hyper params, context), 4M -> 2M."""
    return nn.Sequential([Conv(M * 10 // 3, 1, precision=p), leaky_relu, Conv(M * 8 // 3, 1, precision=p), leaky_relu,
                          Conv(M * 6 // 3, 1, precision=p)])


class FactorizedPrior(LatentCodecModel):
    """``bmshj2018-factorized``: y under a per-channel factorized prior, no hyperprior; coded in CompressAI's
    NCHW order."""

    N: int = 128
    M: int = 192
    precision: Any = None

    downsampling = 16

    def setup(self):
        self.g_a = gdn_analysis(self.N, self.M, self.precision)
        self.g_s = igdn_synthesis(self.N, self.precision)
        self.entropy_bottleneck = EntropyBottleneck(self.M)
        self.latent_codec = lc.FactorizedLatentCodec(lc.EntropyBottleneckLatent(self.entropy_bottleneck, "nchw"))

    def latent_shapes(self, batch: int, height: int, width: int):
        return {"y": (batch, height // 16, width // 16, self.M)}


class ScaleHyperprior(LatentCodecModel):
    """``bmshj2018-hyperprior``: z from |y|, scales of a zero-mean Gaussian from z."""

    N: int = 128
    M: int = 192
    precision: Any = None

    def setup(self):
        N, M, p = self.N, self.M, self.precision
        self.g_a = gdn_analysis(N, M, p)
        self.g_s = igdn_synthesis(N, p)
        self.h_a = hyper_analysis(N, p, nn.relu)
        self.h_s = scale_hyper_synthesis(N, M, p)
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional()
        self.latent_codec = lc.Hyperprior(self.h_a, self.h_s, lc.EntropyBottleneckLatent(self.entropy_bottleneck),
                                          lc.GaussianLatent(self.gaussian_conditional, means=False), abs_input=True)


class MeanScaleHyperprior(LatentCodecModel):
    """``mbt2018-mean``: scales and means of the Gaussian from z."""

    N: int = 128
    M: int = 192
    precision: Any = None

    def setup(self):
        N, M, p = self.N, self.M, self.precision
        self.g_a = gdn_analysis(N, M, p)
        self.g_s = igdn_synthesis(N, p)
        self.h_a = hyper_analysis(N, p)
        self.h_s = mean_scale_hyper_synthesis(M, p)
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional()
        self.latent_codec = lc.Hyperprior(self.h_a, self.h_s, lc.EntropyBottleneckLatent(self.entropy_bottleneck),
                                          lc.GaussianLatent(self.gaussian_conditional))

    def hyper_synthesis(self, z_hat):
        """(scales, means) from z_hat."""
        return self.latent_codec.y.params(self.h_s(z_hat))


class JointAutoregressive(LatentCodecModel):
    """``mbt2018``: the mean-scale hyperprior plus a 5x5 masked (type A) context over y; entropy parameters
    from (hyper params, context) by three 1x1 convs. ``_transforms`` is what Cheng et al. 2020 replace."""

    N: int = 192
    M: int = 192
    precision: Any = None

    def _transforms(self):
        N, M, p = self.N, self.M, self.precision
        return gdn_analysis(N, M, p), igdn_synthesis(N, p), hyper_analysis(N, p), mean_scale_hyper_synthesis(M, p)

    def setup(self):
        M, p = self.M, self.precision
        self.g_a, self.g_s, self.h_a, self.h_s = self._transforms()
        self.entropy_parameters = joint_entropy_parameters(M, p)
        self.context_prediction = MaskedConv(M, 2 * M, 5, "A", precision=p)
        self.entropy_bottleneck = EntropyBottleneck(self.z_channels)
        self.gaussian_conditional = GaussianConditional()
        self.latent_codec = lc.Hyperprior(
            self.h_a, self.h_s, lc.EntropyBottleneckLatent(self.entropy_bottleneck),
            lc.MaskedContextLatent(self.gaussian_conditional, self.context_prediction, self.entropy_parameters,
                                   precision=p))
