"""Cheng et al. 2020 in CompressAI's layouts: ``cheng2020-anchor``, ``cheng2020-attn`` (both with mbt2018's
5x5 masked context, decoded along its wavefront) and ``cheng2020-anchor-checkerboard`` (He et al. 2021's
two-pass checkerboard context). Residual blocks with LeakyReLU, sub-pixel up-sampling, M = N.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn

from jaxlic import latent_codecs as lc
from jaxlic.entropy import EntropyBottleneck, GaussianConditional
from jaxlic.layers.blocks import (AttentionBlock, ResidualBlock, ResidualBlockUpsample, ResidualBlockWithStride,
                                  leaky_relu)
from jaxlic.layers.conv import Conv, MaskedConv, SubpelConv
from jaxlic.models.base import LatentCodecModel
from jaxlic.models.hyperprior import JointAutoregressive


def _anchor_transforms(N, p, attention: bool):
    rbws = lambda: ResidualBlockWithStride(N, precision=p, act=leaky_relu)
    rb = lambda: ResidualBlock(N, precision=p, act=leaky_relu)
    rbu = lambda: ResidualBlockUpsample(N, precision=p, act=leaky_relu)
    att = lambda: AttentionBlock(N, p)
    if attention:
        g_a = [rbws(), rb(), rbws(), att(), rb(), rbws(), rb(), Conv(N, 3, 2, precision=p), att()]
        g_s = [att(), rb(), rbu(), rb(), rbu(), att(), rb(), rbu(), rb(), SubpelConv(3, 2, precision=p)]
    else:
        g_a = [rbws(), rb(), rbws(), rb(), rbws(), rb(), Conv(N, 3, 2, precision=p)]
        g_s = [rb(), rbu(), rb(), rbu(), rb(), rbu(), rb(), SubpelConv(3, 2, precision=p)]
    h_a = [Conv(N, 3, precision=p), leaky_relu, Conv(N, 3, precision=p), leaky_relu, Conv(N, 3, 2, precision=p),
           leaky_relu, Conv(N, 3, precision=p), leaky_relu, Conv(N, 3, 2, precision=p)]
    h_s = [Conv(N, 3, precision=p), leaky_relu, SubpelConv(N, 2, precision=p), leaky_relu,
           Conv(N * 3 // 2, 3, precision=p), leaky_relu, SubpelConv(N * 3 // 2, 2, precision=p), leaky_relu,
           Conv(N * 2, 3, precision=p)]
    return tuple(nn.Sequential(x) for x in (g_a, g_s, h_a, h_s))


class Cheng2020Anchor(JointAutoregressive):
    """``cheng2020-anchor``: mbt2018's entropy model (masked context, wavefront codec) with residual transforms;
    M must equal N (the registry builds it so)."""

    attention = False

    def _transforms(self):
        return _anchor_transforms(self.N, self.precision, self.attention)


class Cheng2020Attention(Cheng2020Anchor):
    """``cheng2020-attn``: the anchor plus simplified attention blocks in g_a and g_s."""

    attention = True


class Cheng2020AnchorCheckerboard(LatentCodecModel):
    """``cheng2020-anchor-checkerboard``: anchor transforms; y coded in two passes, anchors ((row + col) even)
    from the hyperprior alone, then the rest with a checkerboard-masked 5x5 context of the anchors."""

    N: int = 192
    precision: Any = None

    @property
    def M(self) -> int:
        return self.N

    def setup(self):
        N, p = self.N, self.precision
        self.g_a, self.g_s, self.h_a, self.h_s = _anchor_transforms(N, p, attention=False)
        self.entropy_parameters = nn.Sequential([
            Conv(N * 10 // 3, 1, precision=p), leaky_relu, Conv(N * 8 // 3, 1, precision=p), leaky_relu,
            Conv(N * 6 // 3, 1, precision=p)])
        self.context_prediction = MaskedConv(N, 2 * N, 5, "checkerboard", precision=p)
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional()
        self.latent_codec = lc.Hyperprior(
            self.h_a, self.h_s, lc.EntropyBottleneckLatent(self.entropy_bottleneck, ste=True),
            lc.CheckerboardLatent(self.gaussian_conditional, self.context_prediction, self.entropy_parameters))
