"""Swin transformer parts (Liu et al. 2021) as the learned-compression code uses them (STF, Shen & Liu, CWAM):
window attention with a relative-position bias, shifted windows with Swin's -100 masks, pre-norm blocks, and the
token merging / splitting layers between stages. Feature maps stay NHWC: the official (B, H*W, C) tokens are the
same values in the same (raster) order.

Following the official STF code exactly where it differs from textbook Swin: a block zero-pads its *normalised*
tokens up to a multiple of the window (the padded tokens take part in the attention, unmasked apart from the
shift mask, and are cropped afterwards); the shift mask is built on the padded grid; a shift is never turned off
for small inputs.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlic.layers.blocks import gelu
from jaxlic.layers.conv import Conv, pixel_shuffle
from jaxlic.layers.init import torch_conv_kernel_init

Array = jax.Array


def layer_norm(name: str) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=1e-5, name=name)  # torch's eps (Flax's default is 1e-6)


class Linear(nn.Module):
    """``torch.nn.Linear`` with PyTorch's default initialisation (uniform, bound 1 / sqrt(fan_in))."""

    features: int
    use_bias: bool = True
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        init = torch_conv_kernel_init(x.shape[-1])
        y = jnp.einsum("...i,io->...o", x, self.param("kernel", init, (x.shape[-1], self.features)).astype(x.dtype),
                       precision=self.precision)
        return y + self.param("bias", init, (self.features,)).astype(x.dtype) if self.use_bias else y


# --- windows -----------------------------------------------------------------------------------------------------
def window_partition(x, ws: int):
    """(B, H, W, C) -> (B * H/ws * W/ws, ws * ws, C), windows row-major, tokens row-major (Swin's order)."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // ws, ws, w // ws, ws, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows, ws: int, b: int, h: int, w: int):
    x = windows.reshape(b, h // ws, w // ws, ws, ws, -1).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, -1)


def relative_position_index(ws: int) -> np.ndarray:
    """Swin's (ws^2, ws^2) index into the (2 ws - 1)^2 relative-position table: (dh + ws - 1) (2 ws - 1) + dw +
    ws - 1 for query minus key offsets (dh, dw). The official checkpoints store it as a buffer; conversion
    checks that it equals this."""
    coords = np.stack(np.meshgrid(np.arange(ws), np.arange(ws), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (ws - 1)
    return rel[..., 0] * (2 * ws - 1) + rel[..., 1]


def region_labels(h: int, w: int, ws: int, shift: int) -> np.ndarray:
    """The 3 x 3 regions (0..8, row-major) of an (h, w) map that a cyclic shift by ``shift`` brings together."""
    labels = np.zeros((h, w), np.float32)
    cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for i, hs in enumerate(cuts):
        for j, vs in enumerate(cuts):
            labels[hs, vs] = 3 * i + j
    return labels


def shift_mask(h: int, w: int, ws: int, shift: int, fill: float = -100.0) -> np.ndarray:
    """Swin's additive mask (windows, query, key) of a shifted (h, w) grid: ``fill`` between tokens from
    different regions (Swin's -100; TCM's WMSA masks with -inf). Static per shape: numpy."""
    q = window_partition(region_labels(h, w, ws, shift)[None, :, :, None], ws)[..., 0]
    return np.where(q[:, None, :] != q[:, :, None], fill, 0.0).astype(np.float32)


def drop_path(x, rate: float, rng):
    """Stochastic depth: a whole sample's branch dropped with probability ``rate``, kept ones scaled by
    1 / (1 - rate); identity without an rng (evaluation) or at rate 0."""
    if rng is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(rng, 1.0 - rate, (x.shape[0],) + (1,) * (x.ndim - 1))
    return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


# --- attention and blocks -----------------------------------------------------------------------------------------
class WindowAttention(nn.Module):
    """Multi-head self attention inside each ws x ws window, plus a learned bias per relative position and
    head, plus an optional additive mask per window."""

    heads: int
    ws: int
    precision: Any = None

    @nn.compact
    def __call__(self, x, mask=None):
        n, t, c = x.shape
        h, hd, p = self.heads, c // self.heads, self.precision
        table = self.param("relative_position_bias_table", nn.initializers.truncated_normal(0.02),
                           ((2 * self.ws - 1) ** 2, h))
        bias = table[relative_position_index(self.ws).reshape(-1)].reshape(t, t, h).transpose(2, 0, 1)
        qkv = Linear(3 * c, precision=p, name="qkv")(x).reshape(n, t, 3, h, hd).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * hd ** -0.5, qkv[1], qkv[2]
        a = jnp.einsum("nhqd,nhkd->nhqk", q, k, precision=p) + bias
        if mask is not None:
            windows = mask.shape[0]
            a = (a.reshape(n // windows, windows, h, t, t) + mask[None, :, None]).reshape(n, h, t, t)
        o = jnp.einsum("nhqk,nhkd->nhqd", jax.nn.softmax(a, axis=-1), v, precision=p)
        return Linear(c, precision=p, name="proj")(o.transpose(0, 2, 1, 3).reshape(n, t, c))


class SwinBlock(nn.Module):
    """Pre-norm Swin block on (B, H, W, C): x + attention of the windows of norm1(x) (zero-padded to a multiple
    of the window after the norm, rolled by -shift when shifted), then x + MLP(norm2(x)); drop-path on both
    branches in training."""

    heads: int
    ws: int
    shift: int = 0
    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    precision: Any = None
    mask_fill: float = -100.0

    @nn.compact
    def __call__(self, x, rng=None):
        b, h, w, c = x.shape
        ws, s, p = self.ws, self.shift, self.precision
        t = layer_norm("norm1")(x)
        hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
        t = jnp.pad(t, ((0, 0), (0, hp - h), (0, wp - w), (0, 0)))
        if s:
            t = jnp.roll(t, (-s, -s), axis=(1, 2))
        mask = jnp.asarray(shift_mask(hp, wp, ws, s, self.mask_fill)) if s else None
        t = WindowAttention(self.heads, ws, p, name="attn")(window_partition(t, ws), mask)
        t = window_reverse(t, ws, b, hp, wp)
        if s:
            t = jnp.roll(t, (s, s), axis=(1, 2))
        r1, r2 = jax.random.split(rng) if rng is not None else (None, None)
        x = x + drop_path(t[:, :h, :w], self.drop_path, r1)
        y = Mlp(int(c * self.mlp_ratio), precision=p, name="mlp")(layer_norm("norm2")(x))
        return x + drop_path(y, self.drop_path, r2)


class Mlp(nn.Module):
    """fc2(GELU(fc1(x))), hidden ``hidden``, back to the input width."""

    hidden: int
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        y = gelu(Linear(self.hidden, precision=self.precision, name="fc1")(x))
        return Linear(x.shape[-1], precision=self.precision, name="fc2")(y)


class SwinStage(nn.Module):
    """The official ``BasicLayer``: ``depth`` blocks, the odd ones shifted by ws // 2, then an optional
    ``resample`` ("merge": PatchMerging, "split": PatchSplit) named ``downsample`` as there. ``drop_paths``
    gives each block's rate (the official linspace slice)."""

    depth: int
    heads: int
    ws: int
    mlp_ratio: float = 4.0
    drop_paths: Sequence[float] = ()
    resample: str | None = None
    precision: Any = None

    @nn.compact
    def __call__(self, x, rng=None):
        for i in range(self.depth):
            rate = self.drop_paths[i] if i < len(self.drop_paths) else 0.0
            x = SwinBlock(self.heads, self.ws, 0 if i % 2 == 0 else self.ws // 2, self.mlp_ratio, rate,
                          self.precision, name=f"blocks_{i}")(
                x, None if rng is None else jax.random.fold_in(rng, i))
        if self.resample == "merge":
            x = PatchMerging(self.precision, name="downsample")(x)
        elif self.resample == "split":
            x = PatchSplit(self.precision, name="downsample")(x)
        elif self.resample is not None:
            raise ValueError(f"resample must be 'merge', 'split' or None, got {self.resample!r}")
        return x


class PatchEmbed(nn.Module):
    """Zero-pad to a multiple of ``patch``, conv (kernel = stride = patch) to ``dim``, LayerNorm."""

    dim: int
    patch: int = 2
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        h, w = x.shape[1:3]
        x = jnp.pad(x, ((0, 0), (0, -h % self.patch), (0, -w % self.patch), (0, 0)))
        x = Conv(self.dim, self.patch, self.patch, padding=0, precision=self.precision, name="proj")(x)
        return layer_norm("norm")(x)


class PatchMerging(nn.Module):
    """Halves the resolution, doubles the width: odd sizes zero-padded at the bottom / right, the four phases
    concatenated as (even row, even col), (odd, even), (even, odd), (odd, odd), LayerNorm, Linear (no bias)."""

    precision: Any = None

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        x = jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
        x = jnp.concatenate([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return Linear(2 * c, use_bias=False, precision=self.precision, name="reduction")(layer_norm("norm")(x))


class PatchSplit(nn.Module):
    """Doubles the resolution, halves the width: LayerNorm, Linear to 2C (no bias), PyTorch's PixelShuffle(2)."""

    precision: Any = None

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        x = Linear(2 * c, use_bias=False, precision=self.precision, name="reduction")(layer_norm("norm")(x))
        return pixel_shuffle(x, 2)
