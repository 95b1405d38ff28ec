"""Residual blocks of CompressAI / MLIC++ (``modules/layers/res_blk.py``), GELU variant as MLIC++ uses it."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from jaxlic.layers.conv import Conv, SubpelConv
from jaxlic.layers.gdn import GDN


def gelu(x: jax.Array) -> jax.Array:
    return nn.gelu(x, approximate=False)  # PyTorch nn.GELU() is the exact (erf) form


class ResidualBlockWithStride(nn.Module):
    """GDN(conv2(GELU(conv1_s2(x)))) + skip_1x1_s2(x)."""

    features: int
    stride: int = 2
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        out = gelu(Conv(self.features, 3, self.stride, precision=self.precision, name="conv1")(x))
        out = GDN(precision=self.precision, name="gdn")(Conv(self.features, 3, precision=self.precision, name="conv2")(out))
        if self.stride != 1 or x.shape[-1] != self.features:
            x = Conv(self.features, 1, self.stride, padding=0, precision=self.precision, name="skip")(x)
        return out + x


class ResidualBlock(nn.Module):
    """GELU(conv2(GELU(conv1(x)))) + (skip_1x1(x) if channels change else x)."""

    features: int
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        out = gelu(Conv(self.features, 3, precision=self.precision, name="conv1")(x))
        out = gelu(Conv(self.features, 3, precision=self.precision, name="conv2")(out))
        if x.shape[-1] != self.features:
            x = Conv(self.features, 1, padding=0, precision=self.precision, name="skip")(x)
        return out + x


class ResidualBlockUpsample(nn.Module):
    """IGDN(conv(GELU(subpel_conv(x)))) + subpel_upsample(x)."""

    features: int
    r: int = 2
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        out = gelu(SubpelConv(self.features, self.r, precision=self.precision, name="subpel_conv")(x))
        out = Conv(self.features, 3, precision=self.precision, name="conv")(out)
        out = GDN(inverse=True, precision=self.precision, name="igdn")(out)
        return out + SubpelConv(self.features, self.r, precision=self.precision, name="upsample")(x)
