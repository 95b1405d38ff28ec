"""MLIC++ (Jiang & Wang, arXiv 2307.15421; official code ``JiangWeibeta/MLIC``, ``MLIC++/``), in progress.

This part: the transforms g_a, g_s (current and ``Old``), h_a, h_s, with the official state_dict naming
(``g_a.analysis_transform.{k}``, ``g_s.synthesis_transform.{k}``, ``h_a.reduction.{k}``, ``h_s.increase.{k}``).
The MEM++ entropy model (checkerboard, linear-attention contexts, LRP) and the codec plan follow.
"""
from __future__ import annotations

import re
from typing import Any

import flax.linen as nn

from jaxlic.layers.blocks import ResidualBlock, ResidualBlockUpsample, ResidualBlockWithStride, gelu
from jaxlic.layers.conv import Conv, SubpelConv


class AnalysisTransform(nn.Module):
    """g_a: RBS 3->N, RB, RBS, RB, RBS, RB, conv3x3 s2 N->M (x16 down)."""

    N: int = 192
    M: int = 320
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        p, n = self.precision, "analysis_transform_"
        for k in range(6):
            block = ResidualBlockWithStride if k % 2 == 0 else ResidualBlock
            x = block(self.N, precision=p, name=f"{n}{k}")(x)
        return Conv(self.M, 3, 2, precision=p, name=f"{n}6")(x)


class SynthesisTransform(nn.Module):
    """g_s: RB M->M, RBU M->N (``old``: RB M->N, RBU N->N), RB, RBU, RB, RBU, RB, subpel N->3 (x16 up)."""

    N: int = 192
    M: int = 320
    old: bool = False
    precision: Any = None

    @nn.compact
    def __call__(self, y):
        p, n = self.precision, "synthesis_transform_"
        x = ResidualBlock(self.N if self.old else self.M, precision=p, name=f"{n}0")(y)
        for k in range(1, 7):
            block = ResidualBlockUpsample if k % 2 == 1 else ResidualBlock
            x = block(self.N, precision=p, name=f"{n}{k}")(x)
        return SubpelConv(3, 2, precision=p, name=f"{n}7")(x)


class HyperAnalysis(nn.Module):
    """h_a: five 3x3 convs M->N->N->N(s2)->N->N(s2), GELU between; input y itself (not |y|)."""

    N: int = 192
    precision: Any = None

    @nn.compact
    def __call__(self, y):
        x = y
        for i, k in enumerate((0, 2, 4, 6, 8)):
            if i:
                x = gelu(x)
            x = Conv(self.N, 3, 2 if k in (4, 8) else 1, precision=self.precision, name=f"reduction_{k}")(x)
        return x


class HyperSynthesis(nn.Module):
    """h_s: conv N->M, subpel M->M, conv M->3M/2, subpel 3M/2->3M/2, conv 3M/2->2M, GELU between. Output channels
    0..M-1 feed the scales, M..2M-1 are the hyper means; all 2M feed every parameter network."""

    N: int = 192
    M: int = 320
    precision: Any = None

    @nn.compact
    def __call__(self, z_hat):
        p, m = self.precision, self.M
        x = gelu(Conv(m, 3, precision=p, name="increase_0")(z_hat))
        x = gelu(SubpelConv(m, 2, precision=p, name="increase_2")(x))
        x = gelu(Conv(m * 3 // 2, 3, precision=p, name="increase_4")(x))
        x = gelu(SubpelConv(m * 3 // 2, 2, precision=p, name="increase_6")(x))
        return Conv(m * 2, 3, precision=p, name="increase_8")(x)


_INDEXED = r"(analysis_transform|synthesis_transform|reduction|increase)\.(\d+)"


def transform_key(key: str):
    """Official state_dict key of a transform -> (flax path, layout), or None."""
    m = re.fullmatch(r"(g_a|g_s|h_a|h_s)\.(.+)\.(weight|bias|beta|gamma)", key)
    if not m:
        return None
    net, inner, leaf = m.groups()
    inner = re.sub(_INDEXED + r"\.0$", r"\1_\2.conv", inner)            # top-level subpel: Sequential(conv, shuffle)
    inner = re.sub(r"(subpel_conv|upsample)\.0$", r"\1.conv", inner)   # inside ResidualBlockUpsample
    inner = re.sub(r"(subpel_conv|upsample)\.0\.", r"\1.conv.", inner)
    inner = re.sub(_INDEXED, r"\1_\2", inner)
    path = ("params", net, *inner.split("."))
    if leaf == "weight":
        return path + ("kernel",), "conv"
    return path + (leaf,), "copy"
