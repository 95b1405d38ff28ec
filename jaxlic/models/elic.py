"""ELIC (He et al. 2022) in CompressAI's layouts: ``elic2022-official`` and ``elic2022-chandelier``.

y is split into uneven channel groups (default 16, 16, 32, 64, M - 128); each group is coded in two
checkerboard passes, its entropy parameters from a spatial context (checkerboard-masked 5x5 conv of the group's
anchors), a channel context of earlier groups (all of them; Chandelier's: the first and the latest) and the
hyperprior. The codec plan is z, then anchors and non-anchors per group: 2 x groups + 1 steps.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import numpy as np

from jaxlic import latent_codecs as lc
from jaxlic.entropy import EntropyBottleneck, GaussianConditional
from jaxlic.errors import UserError
from jaxlic.layers.blocks import AttentionBlock, ResidualBottleneckBlock
from jaxlic.layers.conv import Conv, ConvTranspose, MaskedConv
from jaxlic.models.base import LatentCodecModel
from jaxlic.models.hyperprior import hyper_analysis


def default_groups(M: int) -> tuple[int, ...]:
    return (16, 16, 32, 64, M - 128)


def channel_ramp(c_in: int, c_out: int, min_ch: int, layers: int = 3) -> list[int]:
    """CompressAI's ``sequential_channel_ramp`` widths: floor(torch.linspace(c_in, c_out, layers + 1)) in
    float32 (torch's two-sided formula), the inner ones at least ``min_ch``."""
    n = layers + 1
    step = np.float32((c_out - c_in) / (n - 1))
    vals = [np.float32(c_in) + np.float32(i) * step if i < n // 2 else np.float32(c_out) - np.float32(n - 1 - i) * step
            for i in range(n)]
    ch = [int(np.floor(v)) for v in vals]
    return [ch[0]] + [max(c, min_ch) for c in ch[1:-1]] + [ch[-1]]


class Elic2022(LatentCodecModel):
    """``chandelier`` False: ``Elic2022Official``; True: ``Elic2022Chandelier`` (h_s ends in a conv to 2M,
    1x1 entropy-parameter nets 2M -> 512 -> 2g, means before scales, channel context of the first and the
    latest groups)."""

    N: int = 192
    M: int = 320
    groups: tuple[int, ...] | None = None
    chandelier: bool = False
    precision: Any = None

    @property
    def group_sizes(self) -> tuple[int, ...]:
        g = tuple(self.groups) if self.groups is not None else default_groups(self.M)
        if sum(g) != self.M or min(g) < 1:
            raise UserError(f"ELIC's channel groups {g} must be positive and sum to M={self.M} (the default "
                            "16, 16, 32, 64, M - 128 needs M > 128; give groups, e.g. --config groups=8/8/16)")
        return g

    def setup(self):
        N, M, p, g = self.N, self.M, self.precision, self.group_sizes
        rbb = lambda: ResidualBottleneckBlock(N, precision=p)
        self.g_a = nn.Sequential([
            Conv(N, 5, 2, precision=p), rbb(), rbb(), rbb(), Conv(N, 5, 2, precision=p), rbb(), rbb(), rbb(),
            AttentionBlock(N, p), Conv(N, 5, 2, precision=p), rbb(), rbb(), rbb(), Conv(M, 5, 2, precision=p),
            AttentionBlock(M, p)])
        self.g_s = nn.Sequential([
            AttentionBlock(M, p), ConvTranspose(N, 5, precision=p), rbb(), rbb(), rbb(), ConvTranspose(N, 5, precision=p),
            AttentionBlock(N, p), rbb(), rbb(), rbb(), ConvTranspose(N, 5, precision=p), rbb(), rbb(), rbb(),
            ConvTranspose(3, 5, precision=p)])
        self.h_a = hyper_analysis(N, p, nn.relu)
        last = Conv(2 * M, 3, 1, precision=p) if self.chandelier else ConvTranspose(2 * N, 3, 1, precision=p)
        self.h_s = nn.Sequential([ConvTranspose(N, 5, precision=p), nn.relu, ConvTranspose(N * 3 // 2, 5, precision=p),
                                  nn.relu, last])
        side = 2 * M if self.chandelier else 2 * N
        self.channel_context = {k: nn.Sequential([
            Conv(224, 5, precision=p), nn.relu, Conv(128, 5, precision=p), nn.relu, Conv(2 * g[k], 5, precision=p)])
            for k in range(1, len(g))}
        self.context_prediction = [MaskedConv(g[k], 2 * g[k], 5, "checkerboard", precision=p) for k in range(len(g))]
        nets = []
        for k in range(len(g)):
            c_in = 2 * g[k] + (k > 0) * 2 * g[k] + side
            widths = [c_in, 2 * M, 512, 2 * g[k]] if self.chandelier else channel_ramp(c_in, 2 * g[k], 2 * N)
            layers = []
            for w in widths[1:]:
                layers += [Conv(w, 1, padding=0, precision=p), nn.relu]
            nets.append(nn.Sequential(layers[:-1]))
        self.entropy_parameters = nets
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional()
        groups = [lc.CheckerboardLatent(self.gaussian_conditional, self.context_prediction[k],
                                        self.entropy_parameters[k], means_first=self.chandelier)
                  for k in range(len(g))]
        self.latent_codec = lc.Hyperprior(
            self.h_a, self.h_s, lc.EntropyBottleneckLatent(self.entropy_bottleneck, ste=True),
            lc.ChannelGroupsLatent(groups, lc.str_keys(self.channel_context), g, self.chandelier))
