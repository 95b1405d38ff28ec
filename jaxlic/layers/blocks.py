"""Residual and attention blocks of CompressAI (``compressai/layers/layers.py``, LeakyReLU), MLIC++
(``modules/layers/res_blk.py``, the same blocks with GELU: the default here) and HPCM (``src/layers``)."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlic.layers.conv import Conv, DepthwiseConv, SubpelConv
from jaxlic.layers.gdn import GDN


def gelu(x: jax.Array) -> jax.Array:
    return nn.gelu(x, approximate=False)  # PyTorch nn.GELU() is the exact (erf) form


def leaky_relu(x: jax.Array) -> jax.Array:
    return nn.leaky_relu(x, 0.01)  # torch.nn.LeakyReLU() default slope


class ResidualBlockWithStride(nn.Module):
    """GDN(conv2(GELU(conv1_s2(x)))) + skip_1x1_s2(x)."""

    features: int
    stride: int = 2
    precision: Any = None
    act: Callable = gelu

    @nn.compact
    def __call__(self, x):
        out = self.act(Conv(self.features, 3, self.stride, precision=self.precision, name="conv1")(x))
        out = GDN(precision=self.precision, name="gdn")(Conv(self.features, 3, precision=self.precision, name="conv2")(out))
        if self.stride != 1 or x.shape[-1] != self.features:
            x = Conv(self.features, 1, self.stride, padding=0, precision=self.precision, name="skip")(x)
        return out + x


class ResidualBlock(nn.Module):
    """GELU(conv2(GELU(conv1(x)))) + (skip_1x1(x) if channels change else x)."""

    features: int
    precision: Any = None
    act: Callable = gelu

    @nn.compact
    def __call__(self, x):
        out = self.act(Conv(self.features, 3, precision=self.precision, name="conv1")(x))
        out = self.act(Conv(self.features, 3, precision=self.precision, name="conv2")(out))
        if x.shape[-1] != self.features:
            x = Conv(self.features, 1, padding=0, precision=self.precision, name="skip")(x)
        return out + x


class ResidualBlockUpsample(nn.Module):
    """IGDN(conv(GELU(subpel_conv(x)))) + subpel_upsample(x)."""

    features: int
    r: int = 2
    precision: Any = None
    act: Callable = gelu

    @nn.compact
    def __call__(self, x):
        out = self.act(SubpelConv(self.features, self.r, precision=self.precision, name="subpel_conv")(x))
        out = Conv(self.features, 3, precision=self.precision, name="conv")(out)
        out = GDN(inverse=True, precision=self.precision, name="igdn")(out)
        return out + SubpelConv(self.features, self.r, precision=self.precision, name="upsample")(x)


class ResidualUnit(nn.Module):
    """act(conv(x) + x), conv = 1x1 (C -> C/2), act, 3x3, act, 1x1 (-> C): inside ``AttentionBlock`` (ReLU) and
    CWAM's blocks (GELU)."""

    features: int
    precision: Any = None
    act: Callable = nn.relu

    def setup(self):
        c, p, act = self.features, self.precision, self.act
        self.conv = nn.Sequential([Conv(c // 2, 1, padding=0, precision=p), act, Conv(c // 2, 3, precision=p),
                                   act, Conv(c, 1, padding=0, precision=p)])

    def __call__(self, x):
        return self.act(self.conv(x) + x)


class AttentionBlock(nn.Module):
    """Cheng et al. 2020's simplified attention: x + conv_a(x) * sigmoid(conv_b(x)), three residual units
    each, conv_b ending in a 1x1 conv. (``setup``, so the Sequentials own their layers and the names follow
    CompressAI's ``conv_a.{k}`` / ``conv_b.{k}``.)"""

    features: int
    precision: Any = None

    def setup(self):
        c, p = self.features, self.precision
        self.conv_a = nn.Sequential([ResidualUnit(c, p) for _ in range(3)])
        self.conv_b = nn.Sequential([*(ResidualUnit(c, p) for _ in range(3)), Conv(c, 1, padding=0, precision=p)])

    def __call__(self, x):
        return self.gated(x, x)

    def gated(self, x, context):
        """x + conv_a(x) * sigmoid(conv_b(context)): the block with its gate computed from another input (TCM's
        Swin-attention gates with the Swin block's output)."""
        return self.conv_a(x) * jax.nn.sigmoid(self.conv_b(context)) + x


class ResidualBottleneckBlock(nn.Module):
    """ELIC's block: x + conv3(relu(conv2(relu(conv1(x))))), 1x1 (C -> C/2), 3x3, 1x1 (-> C)."""

    features: int
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        mid, p = min(x.shape[-1], self.features) // 2, self.precision
        out = nn.relu(Conv(mid, 1, padding=0, precision=p, name="conv1")(x))
        out = nn.relu(Conv(mid, 3, precision=p, name="conv2")(out))
        out = Conv(self.features, 1, padding=0, precision=p, name="conv3")(out)
        if x.shape[-1] != self.features:
            x = Conv(self.features, 1, padding=0, precision=p, name="skip")(x)
        return out + x


class ConvStack(nn.Module):
    """3x3 convolutions with exact GELU between, named as the official ``nn.Sequential`` (``layers_{2i}``);
    stride 2 downsamples, -2 upsamples by a sub-pixel convolution (``subpel_conv3x3``). Shen & Liu's hyper
    transforms and context stacks, TCM's context stacks."""

    features: Sequence[int]
    strides: Sequence[int] = ()
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        for i, f in enumerate(self.features):
            s = self.strides[i] if self.strides else 1
            if i:
                x = gelu(x)
            if s < 0:
                x = SubpelConv(f, -s, precision=self.precision, name=f"layers_{2 * i}")(x)
            else:
                x = Conv(f, 3, s, precision=self.precision, name=f"layers_{2 * i}")(x)
        return x



class PartialConv(nn.Module):
    """HPCM's ``pconv3x3``: a 3x3 conv (``pconv``) on the first ``partial`` channels, the rest passed through."""

    partial: int
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        n = self.partial
        return jnp.concatenate([Conv(n, 3, precision=self.precision, name="pconv")(x[..., :n]), x[..., n:]], -1)


class PConvRB(nn.Module):
    """HPCM's partial-convolution residual block: x + conv1x1(act(conv1x1(pconv(x)))), pconv on the first
    C / ``partial_ratio`` channels, the middle width C x ``mlp_ratio``, LeakyReLU. Submodules ``branch_k`` are the
    official ``branch.k``."""

    partial_ratio: int = 4
    mlp_ratio: int = 4
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        c, p = x.shape[-1], self.precision
        t = PartialConv(c // self.partial_ratio, p, name="branch_0")(x)
        t = leaky_relu(Conv(c * self.mlp_ratio, 1, padding=0, precision=p, name="branch_1")(t))
        return x + Conv(c, 1, padding=0, precision=p, name="branch_3")(t)


class DWConvRB(nn.Module):
    """HPCM's depthwise residual block: x + conv1x1(act(conv1x1(dwconv3x3(x)))), the middle width C x
    ``mlp_ratio``, LeakyReLU (submodules ``branch_k``: the official ``branch.k``)."""

    mlp_ratio: int = 2
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        c, p = x.shape[-1], self.precision
        t = DepthwiseConv(3, precision=p, name="branch_0")(x)
        t = leaky_relu(Conv(c * self.mlp_ratio, 1, padding=0, precision=p, name="branch_1")(t))
        return x + Conv(c, 1, padding=0, precision=p, name="branch_3")(t)
