"""TCM (Liu, Sun & Katto, CVPR 2023, "Learned Image Compression with Mixed Transformer-CNN Architectures"), in
the layout of the official code (GitHub ``jmliu206/LIC_TCM``, class ``TCM`` in ``models/tcm.py``).

Transforms of Transformer-CNN mixture blocks (``ConvTransBlock``: a 1x1 conv, half the channels through a
residual block, half through a Swin block, a 1x1 conv back, plus the input); a hyperprior with separate mean and
scale syntheses; y in ``num_slices`` channel slices (Minnen & Singh's channel-wise context, ``ChannelSlicesLatent``)
whose parameter networks each start with a Swin-attention block (``SWAtten``), with latent residual prediction.

The official function, quirks included (tests/test_tcm.py checks each against the official outputs):

- the residual block of a ``ConvTransBlock`` has its own skip and the block adds the input again:
  ``ResidualBlock(x) + x``;
- the shifted-window mask fills with -inf (Swin's -100 elsewhere); heads are split ``(three h c)``, as Swin's;
- stochastic depth: ``dpr[i + begin]`` with ``begin`` never advanced gives every stage the first rates; the
  official training uses rate 0, the only one here;
- the widths are those of ``M`` = 320 and ``z`` = 192 in the official code (``M`` / ``z_channels`` here), the hyper
  blocks' head width 32 and window 4, SWAtten's width 128 and head width 16;
- sizes: the windows need H / 8 and the hyper blocks H / 32 to be multiples of 8 and 4 (H a multiple of 128), and
  ``SwinBlock.forward`` pads an input no larger than its window without cropping back, which no size survives
  (the padded attention map cannot gate the unpadded one): H and W must be multiples of 128 and at least 256. The
  codec pads images to a multiple of 256 (``downsampling``), which is both.
- ``decompress`` handles batch 1 only and puts all slices into one rANS string; the codec here codes the same
  symbols with the same tables in the same order (slice by slice, each C, H, W) at any batch.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxlic.entropy import EntropyBottleneck, GaussianConditional
from jaxlic.errors import UserError
from jaxlic.layers.blocks import (AttentionBlock, ConvStack, ResidualBlock, ResidualBlockUpsample,
                                  ResidualBlockWithStride, leaky_relu)
from jaxlic.layers.conv import Conv, SubpelConv
from jaxlic.layers.swin import SwinBlock
from jaxlic.latent_codecs import Branches, ChannelSlicesLatent, EntropyBottleneckLatent, Hyperprior, str_keys
from jaxlic.models.base import LatentCodecModel

def _swin(heads: int, ws: int, shifted: bool, precision, name: str) -> SwinBlock:
    return SwinBlock(heads, ws, ws // 2 if shifted else 0, 4.0, 0.0, precision, float("-inf"), name=name)


class ConvTransBlock(nn.Module):
    """x + conv1_2(cat(ResidualBlock(a) + a, Swin(b))) with (a, b) = conv1_1(x) split in halves of ``dim``."""

    dim: int
    heads: int
    ws: int
    shifted: bool
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        n, p = self.dim, self.precision
        t = Conv(2 * n, 1, padding=0, precision=p, name="conv1_1")(x)
        a, b = t[..., :n], t[..., n:]
        a = ResidualBlock(n, precision=p, act=leaky_relu, name="conv_block")(a) + a
        b = _swin(self.heads, self.ws, self.shifted, p, "trans_block")(b)
        return x + Conv(2 * n, 1, padding=0, precision=p, name="conv1_2")(jnp.concatenate([a, b], -1))


class SwinPair(nn.Module):
    """The official ``SwinBlock``: a window block, then a shifted-window block."""

    heads: int
    ws: int
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        if min(x.shape[1:3]) <= self.ws:
            raise UserError(f"TCM's Swin attention needs latents larger than its window {self.ws} (got "
                            f"{x.shape[1]}x{x.shape[2]}): inputs must be multiples of 128 and at least 256 a side")
        x = _swin(self.heads, self.ws, False, self.precision, "block_1")(x)
        return _swin(self.heads, self.ws, True, self.precision, "block_2")(x)


class SWAtten(AttentionBlock):
    """Swin-attention in a narrow width: t = in_conv(x); out_conv(conv_a(t) * sigmoid(conv_b(Swin(t))) + t)."""

    out_features: int = 0
    heads: int = 1
    ws: int = 8

    def setup(self):
        super().setup()
        self.in_conv = Conv(self.features, 1, padding=0, precision=self.precision)
        self.non_local_block = SwinPair(self.heads, self.ws, self.precision)
        self.out_conv = Conv(self.out_features, 1, padding=0, precision=self.precision)

    def __call__(self, x):
        t = self.in_conv(x)
        return self.out_conv(self.gated(t, self.non_local_block(t)))


class SliceNets(nn.Module):
    """TCM's per-slice networks for ``ChannelSlicesLatent`` (whole slices; no parameters of its own). ``side``:
    h_scale_s's then h_mean_s's output on the channels. Slice k's means from atten_mean[k] then
    cc_mean_transforms[k] on the hyper means and the decoded slices (at most ``max_support``), its scales likewise;
    the residual prediction from the mean branch's SWAtten output and the rounded slice."""

    atten_mean: Any
    atten_scale: Any
    cc_mean_transforms: Any
    cc_scale_transforms: Any
    lrp_transforms: Any
    max_support: int

    def params(self, k, side, done):
        scales_side, means_side = jnp.split(side, 2, -1)
        support = list(done[:self.max_support])
        ms = self.atten_mean[str(k)](jnp.concatenate([means_side] + support, -1))
        ss = self.atten_scale[str(k)](jnp.concatenate([scales_side] + support, -1))
        return self.cc_scale_transforms[str(k)](ss), self.cc_mean_transforms[str(k)](ms), ms

    def refine(self, k, side, done, mean_support, y_hat_k):
        lrp = self.lrp_transforms[str(k)](jnp.concatenate([mean_support, y_hat_k], -1))
        return y_hat_k + 0.5 * jnp.tanh(lrp)


class TCM(LatentCodecModel):
    """Defaults: the official large model (N = 128; the released small and middle ones are N = 64 and 96)."""

    N: int = 128
    M: int = 320
    z_ch: int = 192
    depths: Sequence[int] = (2, 2, 2, 2, 2, 2)
    head_dims: Sequence[int] = (8, 16, 32, 32, 16, 8)
    hyper_head_dim: int = 32
    atten_dim: int = 128
    atten_head_dim: int = 16
    cc_widths: Sequence[int] = (224, 128)
    num_slices: int = 5
    max_support_slices: int = 5
    precision: Any = None

    downsampling = 256
    window = 8
    hyper_window = 4

    @property
    def z_channels(self) -> int:
        return self.z_ch

    def latent_shapes(self, batch: int, height: int, width: int) -> dict[str, tuple[int, ...]]:
        return {"y": (batch, height // 16, width // 16, self.M), "z": (batch, height // 64, width // 64, self.z_ch)}

    def _stages(self, first, stages, lasts, ws, heads):
        """An official transform: ``first``, then per stage its ConvTransBlocks (W, SW, ...) and its last layer, as
        one ``nn.Sequential`` (index k is the official ``g_a.k``)."""
        layers = [first]
        for depth, h, last in zip(stages, heads, lasts):
            layers += [ConvTransBlock(self.N, h, ws, i % 2 == 1, self.precision) for i in range(depth)] + [last]
        return nn.Sequential(layers)

    def setup(self):
        N, M, Z, p = self.N, self.M, self.z_ch, self.precision
        if M % self.num_slices:
            raise UserError(f"TCM's M={M} must be a multiple of num_slices={self.num_slices}")
        heads = [N // d for d in self.head_dims]
        d, hh = self.depths, N // self.hyper_head_dim
        rbws = lambda c: ResidualBlockWithStride(c, precision=p, act=leaky_relu)
        rbu = lambda c: ResidualBlockUpsample(c, precision=p, act=leaky_relu)
        self.g_a = self._stages(rbws(2 * N), d[:3], [rbws(2 * N), rbws(2 * N), Conv(M, 3, 2, precision=p)],
                                self.window, heads[:3])
        self.g_s = self._stages(rbu(2 * N), d[3:], [rbu(2 * N), rbu(2 * N), SubpelConv(3, 2, precision=p)],
                                self.window, heads[3:])
        self.h_a = self._stages(rbws(2 * N), d[:1], [Conv(Z, 3, 2, precision=p)], self.hyper_window, [hh])
        self.h_mean_s = self._stages(rbu(2 * N), d[3:4], [SubpelConv(M, 2, precision=p)], self.hyper_window, [hh])
        self.h_scale_s = self._stages(rbu(2 * N), d[3:4], [SubpelConv(M, 2, precision=p)], self.hyper_window, [hh])
        s = M // self.num_slices
        widths = [M + s * min(k, self.max_support_slices) for k in range(self.num_slices)]
        atten = lambda w: SWAtten(self.atten_dim, p, out_features=w, heads=self.atten_dim // self.atten_head_dim,
                                  ws=self.window)
        stack = lambda: ConvStack((*self.cc_widths, s), precision=p)
        self.atten_mean = {k: atten(w) for k, w in enumerate(widths)}
        self.atten_scale = {k: atten(w) for k, w in enumerate(widths)}
        self.cc_mean_transforms = {k: stack() for k in range(self.num_slices)}
        self.cc_scale_transforms = {k: stack() for k in range(self.num_slices)}
        self.lrp_transforms = {k: stack() for k in range(self.num_slices)}
        self.entropy_bottleneck = EntropyBottleneck(Z)
        self.gaussian_conditional = GaussianConditional()
        nets = SliceNets(*(str_keys(m) for m in (self.atten_mean, self.atten_scale, self.cc_mean_transforms,
                                                 self.cc_scale_transforms, self.lrp_transforms)),
                         self.max_support_slices)
        self.latent_codec = Hyperprior(
            self.h_a, Branches((self.h_scale_s, self.h_mean_s), concat=True),
            EntropyBottleneckLatent(self.entropy_bottleneck, ste=True),
            ChannelSlicesLatent(self.gaussian_conditional, nets, (s,) * self.num_slices, "whole"))
