"""CWAM, Mudgal & Liu 2024 ("Enhancing learned image compression via cross window-based attention"), in the
layout of the official code (GitHub ``prmudgal/CWAM_IC_ISVC``, class ``InvCompress``).

Cheng et al. 2020's entropy model (hyperprior, 5x5 masked context decoded along its wavefront) with other
transforms: a feature encoding module (``EnhBlock``) on the image, STF's WACNN analysis / synthesis with GDN whose
window attention is replaced by cross window-based attention (``CWAMBlock``), and Cheng's attention block on the
latent. M = N. See docs/models/cwam.md in the shared notes for the official details this follows.
"""
from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlic.layers.blocks import AttentionBlock, ResidualUnit, gelu
from jaxlic.layers.conv import Conv, ConvTranspose, conv2d
from jaxlic.layers.gdn import GDN
from jaxlic.layers.init import torch_conv_bias_init, torch_conv_kernel_init
from jaxlic.layers.swin import region_labels, relative_position_index, window_partition, window_reverse
from jaxlic.models.cheng2020 import Cheng2020Anchor, _anchor_transforms


def _lrelu02(x):
    return nn.leaky_relu(x, 0.2)


class _ConvWeights(nn.Module):
    """A 3x3 ``Conv``'s parameters (its names and initialisation), for a block that applies them itself."""

    features: int
    in_features: int

    @nn.compact
    def __call__(self):
        fan_in = self.in_features * 9
        return (self.param("kernel", torch_conv_kernel_init(fan_in), (3, 3, self.in_features, self.features)),
                self.param("bias", torch_conv_bias_init(fan_in), (self.features,)))


def _dense_by_layer(x, kernels, biases, precision):
    outs = [x]
    for k, (w, b) in enumerate(zip(kernels, biases)):
        y = conv2d(jnp.concatenate(outs, -1), w, 1, 1, precision) + b
        outs.append(_lrelu02(y) if k < 4 else y)
    return outs[-1]


def _dense_by_piece(x, kernels, biases, precision):
    """The same sums grouped by input piece: each piece (x, then each new output) goes through one convolution
    into every later layer at once, wide instead of five narrow 32-channel convolutions over growing
    concatenations. XLA:CPU, 768x512: 3 -> 64 block 961 -> 886 ms, 64 -> 3 block 1254 -> 856 ms."""
    starts = np.cumsum([0] + [x.shape[-1]] + [w.shape[-1] for w in kernels[:4]])
    acc, piece = list(biases), x
    for j in range(5):
        w = jnp.concatenate([kernels[k][:, :, starts[j]:starts[j + 1]] for k in range(j, 5)], -1)
        parts = jnp.split(conv2d(piece, w, 1, 1, precision), np.cumsum([kernels[k].shape[-1] for k in range(j, 4)]), -1)
        acc[j:] = [a + c for a, c in zip(acc[j:], parts)]
        if j < 4:
            piece = _lrelu02(acc[j])
    return acc[4]


class DenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the input and every earlier output (``gc`` channels each); LeakyReLU(0.2)
    after the first four. On CPU computed piece by piece (``_dense_by_piece``), elsewhere layer by layer."""

    features: int
    gc: int = 32
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        widths = [self.gc] * 4 + [self.features]
        weights = [_ConvWeights(o, x.shape[-1] + self.gc * k, name=f"conv{k + 1}")() for k, o in enumerate(widths)]
        kernels = [w.astype(x.dtype) for w, _ in weights]
        biases = [b.astype(x.dtype) for _, b in weights]
        by_piece = functools.partial(_dense_by_piece, precision=self.precision)
        by_layer = functools.partial(_dense_by_layer, precision=self.precision)
        return jax.lax.platform_dependent(x, kernels, biases, cpu=by_piece, default=by_layer)


class EnhBlock(nn.Module):
    """The feature encoding module: x + 0.2 F(x), F = DenseBlock(3 -> nf), 1x1, 3x3, 1x1 (no activations
    between), DenseBlock(nf -> 3). One on the image before the analysis, another after the synthesis."""

    nf: int = 64
    precision: Any = None

    def setup(self):
        nf, p = self.nf, self.precision
        self.layers = nn.Sequential([DenseBlock(nf, precision=p), Conv(nf, 1, padding=0, precision=p),
                                     Conv(nf, 3, precision=p), Conv(nf, 1, padding=0, precision=p),
                                     DenseBlock(3, precision=p)])

    def __call__(self, x):
        return x + self.layers(x) * 0.2


# --- cross window-based attention ------------------------------------------------------------------------------
def context_windows(x, ws: int, xp=jnp):
    """The cross-scale context of each query window: x 2x2-average-pooled (what the official bilinear x0.5
    resize computes), reflect-padded by ws / 4 and cut into ws x ws windows at stride ws / 2 (``F.unfold``),
    one per query window, each centred on it: (B * windows, ws * ws, C). ``xp=np`` for static maps."""
    b, h, w, c = x.shape
    d = x.reshape(b, h // 2, 2, w // 2, 2, c).mean((2, 4))
    p, s = ws // 4, ws // 2
    d = xp.pad(d, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
    nh, nw = h // ws, w // ws  # the padded map is (nh + 1) x (nw + 1) blocks of s x s; a window is 2 x 2 of them
    blocks = d.reshape(b, nh + 1, s, nw + 1, s, c)
    rows = xp.concatenate([blocks[:, :-1], blocks[:, 1:]], axis=2)            # (b, nh, ws, nw + 1, s, c)
    win = xp.concatenate([rows[:, :, :, :-1], rows[:, :, :, 1:]], axis=4)    # (b, nh, ws, nw, ws, c)
    return win.transpose(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)


def shift_masks(h: int, w: int, ws: int, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """The additive masks (windows, query, key) of the shifted windows, -100 between positions that come from
    different regions of the unshifted map: Swin's for the self branch, and the cross branch's from the region
    labels pooled, padded and unfolded as the context is. Static per (h, w): numpy."""
    labels = region_labels(h, w, ws, shift)
    q = window_partition(labels[None, :, :, None], ws)[..., 0]                       # (windows, T)
    k = context_windows(labels[None, :, :, None], ws, xp=np)[..., 0]
    self_mask = np.where(q[:, None, :] != q[:, :, None], -100.0, 0.0).astype(np.float32)
    cross_mask = np.where(k[:, None, :] != q[:, :, None], -100.0, 0.0).astype(np.float32)
    return self_mask, cross_mask


class WindowCrossAttention(nn.Module):
    """Self attention within each window and cross attention from its queries to the context window, each with
    its own relative-position bias; merged as merge2(LeakyReLU0.2(merge1([self, cross]))) + self, then proj."""

    dim: int
    ws: int
    heads: int = 8
    precision: Any = None

    @nn.compact
    def __call__(self, x, ctx, mask_x, mask_y):
        n, t, c = x.shape
        h, hd, p = self.heads, c // self.heads, self.precision
        tables = [self.param(f"relative_position_bias_table_{s}", nn.initializers.truncated_normal(0.02),
                             ((2 * self.ws - 1) ** 2, h)) for s in "xy"]
        index = relative_position_index(self.ws).reshape(-1)
        bias = [tb[index].reshape(t, t, h).transpose(2, 0, 1) for tb in tables]   # (heads, T, T)
        qkv = nn.Dense(3 * c, precision=p, name="qkv")(x).reshape(n, t, 3, h, hd).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * hd ** -0.5, qkv[1], qkv[2]
        kv = nn.Dense(2 * c, precision=p, name="kv")(ctx).reshape(n, t, 2, h, hd).transpose(2, 0, 3, 1, 4)

        def attend(k, v, bias, mask):
            a = jnp.einsum("nhqd,nhkd->nhqk", q, k, precision=p) + bias
            windows = mask.shape[0]
            a = (a.reshape(n // windows, windows, h, t, t) + mask[None, :, None]).reshape(n, h, t, t)
            o = jnp.einsum("nhqk,nhkd->nhqd", jax.nn.softmax(a, axis=-1), v, precision=p)
            return o.transpose(0, 2, 1, 3).reshape(n, t, c)

        o_self = attend(k, v, bias[0], mask_x)
        o_cross = attend(kv[0], kv[1], bias[1], mask_y)
        merged = nn.Dense(c, precision=p, name="merge1")(jnp.concatenate([o_self, o_cross], -1))
        o = nn.Dense(c, precision=p, name="merge2")(_lrelu02(merged)) + o_self
        return nn.Dense(c, precision=p, name="proj")(o)


class CrossWindowAttention(nn.Module):
    """x + the cross window-based attention of x rolled by -shift (windows ws x ws), rolled back."""

    dim: int
    ws: int
    shift: int
    heads: int = 8
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        s, ws = self.shift, self.ws
        shifted = jnp.roll(x, (-s, -s), axis=(1, 2))
        mask_x, mask_y = shift_masks(h, w, ws, s)
        out = WindowCrossAttention(self.dim, ws, self.heads, self.precision, name="attn")(
            window_partition(shifted, ws), context_windows(shifted, ws), mask_x, mask_y)
        return x + jnp.roll(window_reverse(out, ws, b, h, w), (s, s), axis=(1, 2))


class CWAMBlock(nn.Module):
    """The official ``Win_noShift_Attention`` (it does shift): x + conv_a(x) * sigmoid(conv_b(x)), conv_a three
    GELU residual units, conv_b the cross window-based attention, three GELU residual units and a 1x1 conv."""

    dim: int
    ws: int
    shift: int
    heads: int = 8
    precision: Any = None

    def setup(self):
        c, p = self.dim, self.precision
        self.conv_a = nn.Sequential([ResidualUnit(c, p, act=gelu) for _ in range(3)])
        self.conv_b = nn.Sequential([CrossWindowAttention(c, self.ws, self.shift, self.heads, p),
                                     *(ResidualUnit(c, p, act=gelu) for _ in range(3)),
                                     Conv(c, 1, padding=0, precision=p)])

    def __call__(self, x):
        return x + self.conv_a(x) * jax.nn.sigmoid(self.conv_b(x))


class CWAMAnalysis(nn.Module):
    """forw_att(cnn(forw_enh(x))); cnn: conv5x5 s2, GDN, conv, GDN, CWAM (window 8, shift 4) at 1/4, conv, GDN,
    conv, CWAM (window 4, shift 2) at 1/16."""

    N: int
    precision: Any = None

    def setup(self):
        N, p = self.N, self.precision
        self.forw_enh = EnhBlock(64, p)
        self.cnn = nn.Sequential([Conv(N, 5, 2, precision=p), GDN(precision=p), Conv(N, 5, 2, precision=p),
                                  GDN(precision=p), CWAMBlock(N, 8, 4, precision=p), Conv(N, 5, 2, precision=p),
                                  GDN(precision=p), Conv(N, 5, 2, precision=p), CWAMBlock(N, 4, 2, precision=p)])
        self.forw_att = AttentionBlock(N, p)

    def __call__(self, x):
        return self.forw_att(self.cnn(self.forw_enh(x)))


class CWAMSynthesis(nn.Module):
    """back_enh(cnn(back_att(y))); cnn: CWAM (4, 2), deconv, IGDN, deconv, IGDN, CWAM (8, 4), deconv, IGDN,
    deconv to 3 channels (5x5, stride 2, output padding 1)."""

    N: int
    precision: Any = None

    def setup(self):
        N, p = self.N, self.precision
        self.back_att = AttentionBlock(N, p)
        self.cnn = nn.Sequential([
            CWAMBlock(N, 4, 2, precision=p), ConvTranspose(N, 5, precision=p), GDN(inverse=True, precision=p),
            ConvTranspose(N, 5, precision=p), GDN(inverse=True, precision=p), CWAMBlock(N, 8, 4, precision=p),
            ConvTranspose(N, 5, precision=p), GDN(inverse=True, precision=p), ConvTranspose(3, 5, precision=p)])
        self.back_enh = EnhBlock(64, p)

    def __call__(self, y):
        return self.back_enh(self.cnn(self.back_att(y)))


class CWAM(Cheng2020Anchor):
    """``cwam``: Cheng et al. 2020's entropy model (mbt2018's masked context, wavefront codec; M = N) with the
    CWAM transforms. The official evaluation forward rounds y without its means (as CompressAI's mbt2018 does,
    ``__call__``); the codec codes round(y - mu) and decodes symbols + mu."""

    def _transforms(self):
        _, _, h_a, h_s = _anchor_transforms(self.N, self.precision, attention=False)
        return CWAMAnalysis(self.N, self.precision), CWAMSynthesis(self.N, self.precision), h_a, h_s
