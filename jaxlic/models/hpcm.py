"""HPCM (Li et al., ICCV 2025, "Learned Image Compression with Hierarchical Progressive Context Modeling"), Base, in
the layout of the official code (GitHub ``lyq133/LIC-HPCM``, class ``HPCM`` in ``src/models/HPCM_Base.py`` on
``src/models/base.py``).

Transforms of partial-convolution residual blocks; a hyperprior whose z has a learned per-channel generalized
Gaussian (``ChannelGGMPrior``); y coded in 11 steps over three scales (``ProgressiveLatent``): 2 on y subsampled by
4 (s1), 3 more at half resolution (s2), 6 at full resolution (s3), each step's elements a spatial pattern that
rotates over channel groups. Every step after the first takes its parameters from a spatial prior on the context
carried from step to step and everything decoded so far; the carried context is updated by cross-attention
between the step's parameters and itself. y's entropy model is a generalized Gaussian (beta 1.5, ``GGMConditional``).

The official function, quirks included (tests/test_hpcm.py checks it against the official outputs):

- the s2 and s3 loops take their adaptors as ``list[i - 1]``: s2 uses adaptors 2, 0, 1 and s3 5, 0, 1, 2, 3, 4;
  the adaptive parameters are entries 0 (s1), 1-3 (s2), 4-9 (s3); s1 and s2 share one spatial prior;
- step 0 uses the hyper parameters gathered to s1; the context is lifted between scales with zeros at the new
  positions, the hyper parameters of the new positions added, then a 1x1 conv;
- scale-table indexes count the table entries strictly below a scale, without a lower bound (the same indexes as
  with the bound 0.12 = table[0]);
- sizes: H and W must be multiples of 256 (the s1 grid is cut into 4x4 windows, s2 / s3 into 8x8); the codec pads
  images to that multiple (the official test.py pads with zeros, centred; jaxlic's codec pads at the bottom and
  right by edge replication, as for every model).
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlic.entropy.ggm import BETA, ChannelGGMPrior, GGMConditional, ggm_table
from jaxlic.errors import UserError
from jaxlic.layers.blocks import DWConvRB, PConvRB
from jaxlic.layers.conv import Conv, ConvTranspose
from jaxlic.latent_codecs import EntropyBottleneckLatent, Hyperprior, ProgressiveLatent, hwc_index, take_map
from jaxlic.models.base import LatentCodecModel

# --- the official masks, as static index maps (numpy; per batch element, (C, H, W) terms) -------------------------
_FOUR = (((1, 0), (0, 0)), ((0, 1), (0, 0)), ((0, 0), (1, 0)), ((0, 0), (0, 1)))
_EIGHT = (((1, 0, 0, 0), (0, 0, 0, 0), (0, 0, 1, 0), (0, 0, 0, 0)), ((0, 0, 1, 0), (0, 0, 0, 0), (1, 0, 0, 0), (0, 0, 0, 0)),
          ((0, 0, 0, 0), (0, 1, 0, 0), (0, 0, 0, 0), (0, 0, 0, 1)), ((0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 0, 0), (0, 1, 0, 0)),
          ((0, 1, 0, 0), (0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 0, 0)), ((0, 0, 0, 1), (0, 0, 0, 0), (0, 1, 0, 0), (0, 0, 0, 0)),
          ((0, 0, 0, 0), (1, 0, 0, 0), (0, 0, 0, 0), (0, 0, 1, 0)), ((0, 0, 0, 0), (0, 0, 1, 0), (0, 0, 0, 0), (1, 0, 0, 0)))
_EIGHT_S1 = tuple(np.where(np.arange(16).reshape(4, 4) == int(np.argmax(np.asarray(p))), 1, 0) for p in _EIGHT)
_CAT8 = ((0, 2, 4, 6, 1, 3, 5, 7), (1, 3, 5, 7, 0, 2, 4, 6), (2, 4, 6, 0, 3, 5, 7, 1), (3, 5, 7, 1, 2, 4, 6, 0),
         (4, 6, 0, 2, 5, 7, 1, 3), (5, 7, 1, 3, 4, 6, 0, 2), (6, 0, 2, 4, 7, 1, 3, 5), (7, 1, 3, 5, 6, 0, 2, 4))
_ODD_EVEN = (0, 2, 4, 6, 1, 3, 5, 7)


def _tile(pattern, period: int, h: int, w: int) -> np.ndarray:
    p = np.asarray(pattern, bool)
    return np.tile(p, ((h + 1) // period, (w + 1) // period))[:h, :w]


def _expand(groups, c: int) -> np.ndarray:
    """Per-channel-group spatial patterns -> a (C, h, w) mask (the groups split C evenly, in order)."""
    return np.concatenate([np.broadcast_to(g, (c // len(groups),) + g.shape) for g in groups])


def _select(src: np.ndarray, groups, h: int, w: int) -> np.ndarray:
    """``get_s1_s2_with_mask``: channel group i keeps the positions of pattern i, in raster order, as (., h, w)."""
    n = src.shape[0] // len(groups)
    return np.concatenate([src[i * n:(i + 1) * n][:, g].reshape(n, h, w) for i, g in enumerate(groups)])


def _scatter(src: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``recon[mask] = src.reshape(-1)`` on index arrays (-1: zero)."""
    out = np.full(mask.shape, -1, np.int64)
    out[mask] = src.reshape(-1)
    return out


@functools.lru_cache(maxsize=16)
def hpcm_maps(c: int, hh: int, ww: int) -> dict:
    """Every index map of HPCM's schedule for y of (C, H, W): the three grids' elements in y, the hyper
    parameters of each scale, the lifts between scales and, per step, its grid and packed symbols."""
    if c % 8 or hh % 16 or ww % 16:
        raise UserError(f"HPCM needs y of a multiple of 8 channels and 16 x 16 positions (images a multiple of 256),"
                        f" got {c} x {hh} x {ww}")
    h2, w2, h1, w1 = hh // 2, ww // 2, hh // 4, ww // 4
    y = np.arange(c * hh * ww).reshape(c, hh, ww)
    s2_groups = [_tile(_EIGHT[a], 4, hh, ww) | _tile(_EIGHT[b], 4, hh, ww)
                 for a, b in zip(_ODD_EVEN, _ODD_EVEN[4:] + _ODD_EVEN[:4])]
    s1_groups = [_tile(_EIGHT_S1[i], 4, hh, ww) for i in _ODD_EVEN]
    rec_groups = [_tile(p, 2, h2, w2) for p in _FOUR]
    grid2 = _select(y, s2_groups, h2, w2)                       # y at s2: (C, H/2, W/2) indices into y
    grid1 = _select(grid2, rec_groups, h1, w1)                  # y at s1
    mask2, rec = _expand(s2_groups, c), _expand(rec_groups, c)
    hyper2 = np.full((c, h2, w2), -1, np.int64)
    hyper2[~rec] = y[_expand([a & ~b for a, b in zip(s2_groups, s1_groups)], c)]
    two = [_tile(((1, 0), (0, 1)), 2, h1, w1)]
    two.append(~two[0])
    four = [_tile(p, 2, h2, w2) for p in _FOUR]
    eight = [np.tile(np.tile(np.asarray(p, bool), (2, 2)), ((hh + 1) // 8, (ww + 1) // 8))[:hh, :ww] for p in _EIGHT]
    step_groups = ([[two[0], two[1]], [two[1], two[0]]]
                   + [[four[j] for j in order] for order in ((3, 2, 1, 0), (2, 3, 0, 1), (1, 0, 3, 2))]
                   + [[eight[j] for j in _CAT8[i]] for i in range(2, 8)])
    grids = [(c, h1, w1)] * 2 + [(c, h2, w2)] * 3 + [(c, hh, ww)] * 6
    levels = [grid1, grid1, grid2, grid2, grid2] + [y] * 6
    steps = []
    for groups, shape, level in zip(step_groups, grids, levels):
        idx = np.where(_expand(groups, c), np.arange(int(np.prod(shape))).reshape(shape), -1)
        k = len(groups)
        chunks = idx.reshape(k, c // k, *shape[1:])
        assert ((chunks >= 0).sum(0) == 1).all()
        pack = chunks.max(0).reshape(-1)                          # combine_for_writing: the chunks summed
        steps.append(((shape[1], shape[2], c), hwc_index(pack, shape), hwc_index(level.reshape(-1)[pack], y.shape)))
    tensor = lambda m, src: hwc_index(m, src).transpose(1, 2, 0)
    full = (c, hh, ww)
    return {"steps": steps, "grid1": tensor(grid1, full), "grid2": tensor(grid2, full),
            "hyper1": tensor(grid1, full), "hyper2": tensor(hyper2, full),
            "hyper3": tensor(np.where(mask2, -1, y), full),
            "lift2": tensor(_scatter(np.arange(c * h1 * w1), rec), (c, h1, w1)),
            "lift3": tensor(_scatter(np.arange(c * h2 * w2), mask2), (c, h2, w2))}


# --- networks ------------------------------------------------------------------------------------------------------
class Transform(nn.Module):
    """An official ``branch`` Sequential (submodule ``branch_k`` = ``branch.k``), from a list of layer specs:
    ("down", out, kernel), ("up", out, kernel), ("pconv", count)."""

    specs: Sequence[tuple]
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        k, p = 0, self.precision
        for spec in self.specs:
            if spec[0] == "pconv":
                for _ in range(spec[1]):
                    x = PConvRB(precision=p, name=f"branch_{k}")(x)
                    k += 1
                continue
            _, out, size = spec
            cls = Conv if spec[0] == "down" else ConvTranspose
            kw = {} if spec[0] == "down" else {"output_padding": 0}
            x = cls(out, size, 2, padding=(size - 2) // 2, precision=p, name=f"branch_{k}", **kw)(x)
            k += 1
        return x


class SpatialPrior(nn.Module):
    """branch_2(branch_1(x) * q): DWConvRB stacks, the second ending in a 1x1 conv to 2M (scales, means)."""

    M: int
    depth_1: int
    depth_2: int
    precision: Any = None

    def setup(self):
        p = self.precision
        self.branch_1 = nn.Sequential([DWConvRB(precision=p) for _ in range(self.depth_1)])
        self.branch_2 = nn.Sequential([DWConvRB(precision=p) for _ in range(self.depth_2)]
                                      + [Conv(2 * self.M, 1, padding=0, precision=p)])

    def __call__(self, x, q):
        return self.branch_2(self.branch_1(x) * q)


class CrossAttentionCell(nn.Module):
    """Window cross-attention from the step's parameters to the carried context: q from ``x``, k and v from
    ``h`` (1x1 convs), ``heads`` contiguous channel groups, softmax(q k^T / sqrt(d)) v in non-overlapping windows
    (no position bias, no mask), plus conv_out(x)."""

    window: int
    heads: int = 32
    precision: Any = None

    @nn.compact
    def __call__(self, x, h):
        b, hh, ww, c = x.shape
        p, w, d = self.precision, self.window, c // self.heads
        conv = lambda name: Conv(c, 1, padding=0, precision=p, name=name)

        def windows(t):
            t = t.reshape(b, hh // w, w, ww // w, w, self.heads, d).transpose(0, 1, 3, 5, 2, 4, 6)
            return t.reshape(-1, self.heads, w * w, d)

        q, k, v = windows(conv("conv_q")(x)), windows(conv("conv_k")(h)), windows(conv("conv_v")(h))
        a = jax.nn.softmax(jnp.einsum("nhqd,nhkd->nhqk", q, k, precision=p) / np.sqrt(d), axis=-1)
        o = jnp.einsum("nhqk,nhkd->nhqd", a, v, precision=p).reshape(b, hh // w, ww // w, self.heads, w, w, d)
        o = o.transpose(0, 1, 4, 2, 5, 3, 6).reshape(b, hh, ww, c)
        return o + conv("conv_out")(x)


class AdaptiveScales(nn.Module):
    """The official ``adaptive_params_list``: ``count`` learned per-channel factors (``p{i}``)."""

    count: int
    width: int

    def setup(self):
        self.values = [self.param(f"p{i}", nn.initializers.ones, (self.width,)) for i in range(self.count)]

    def __call__(self, i: int):
        return self.values[i]


# (scale, adaptor list, adaptor, adaptive parameter) of steps 1..10: the official loops' list[i - 1] indexing
_STEPS = ([("s1", 0, 0)] + [("s2", (i - 1) % 3, i + 1) for i in range(3)] + [("s3", (i - 1) % 6, i + 4) for i in range(6)])


class ProgressiveContext(nn.Module):
    """HPCM's networks for ``ProgressiveLatent`` (no parameters of its own): the state carries the hyper
    parameters (``side``), the context (``ctx``) and the decoded y (``y``) on the current scale's grid."""

    M: int
    adaptors: Any          # {"s1": [...], "s2": [...], "s3": [...]}
    priors: Any            # {"s1": prior, "s2": prior (the same), "s3": prior}
    attention: Any         # {"s1": ..., "s2": ..., "s3": ...}
    context_net: Sequence[nn.Module]
    adaptive: nn.Module

    def schedule(self, y_shape):
        b, hh, ww, c = y_shape
        return hpcm_maps(c, hh, ww)["steps"]

    def _maps(self, side):
        return hpcm_maps(self.M, side.shape[1], side.shape[2])

    def start(self, side):
        maps = self._maps(side)
        hyper = jnp.concatenate([take_map(t, maps["hyper1"]) for t in jnp.split(side, 2, -1)], -1)
        return {"side": side, "ctx": hyper, "y": jnp.zeros(hyper.shape[:3] + (self.M,), jnp.float32)}

    def params(self, k, state):
        if k == 0:
            scales, means = jnp.split(state["ctx"], 2, -1)
            return scales, means, state
        scale, a, q = _STEPS[k - 1]
        ctx = state["ctx"]  # the decoded y is kept in float32; the networks run in the context's dtype
        x = self.adaptors[scale][str(a)](jnp.concatenate([ctx, state["y"].astype(ctx.dtype)], -1))
        context = self.priors[scale](x, self.adaptive(q))
        scales, means = jnp.split(context, 2, -1)
        return scales, means, {**state, "ctx": self.attention[scale](context, state["ctx"])}

    def advance(self, k, state, y_hat_k):
        state = {**state, "y": state["y"] + y_hat_k}
        if k not in (1, 4):
            return state
        maps, lift = self._maps(state["side"]), "lift2" if k == 1 else "lift3"
        hyper = "hyper2" if k == 1 else "hyper3"
        ctx = jnp.concatenate([take_map(t, maps[lift]) for t in jnp.split(state["ctx"], 2, -1)], -1)
        ctx = ctx + jnp.concatenate([take_map(t, maps[hyper]) for t in jnp.split(state["side"], 2, -1)], -1)
        return {**state, "ctx": self.context_net[0 if k == 1 else 1](ctx), "y": take_map(state["y"], maps[lift])}


class HPCM(LatentCodecModel):
    """Defaults: the official Base model (M=320, z 256 channels; ``deep=4`` blocks at 1/8 resolution)."""

    M: int = 320
    N: int = 256
    widths: Sequence[int] = (96, 192, 384)   # g_a / g_s at 1/2, 1/4, 1/8
    hyper_width: int = 256
    deep: int = 4                             # PConvRB at 1/8 resolution in g_a and g_s
    prior_depths: Sequence[int] = (2, 1, 3, 2)  # DWConvRB in branch_1 / branch_2 of the s1-s2 prior, of the s3 prior
    heads: int = 32
    beta: float = BETA
    precision: Any = None

    downsampling = 256

    def setup(self):
        M, N, p = self.M, self.N, self.precision
        w1, w2, w3 = self.widths
        hw = self.hyper_width
        self.g_a = Transform((("down", w1, 4), ("pconv", 2), ("down", w2, 2), ("pconv", 2), ("down", w3, 2),
                              ("pconv", self.deep), ("down", M, 2)), p)
        self.g_s = Transform((("up", w3, 2), ("pconv", self.deep), ("up", w2, 2), ("pconv", 2), ("up", w1, 2),
                              ("pconv", 2), ("up", 3, 4)), p)
        self.h_a = Transform((("pconv", 1), ("down", hw, 2), ("pconv", 3), ("down", N, 2)), p)
        self.h_s = Transform((("up", hw, 2), ("pconv", 3), ("up", 2 * M, 2), ("pconv", 1)), p)
        conv1 = lambda c: Conv(c, 1, padding=0, precision=p)
        self.y_spatial_prior_adaptor_list_s1 = [conv1(3 * M)]
        self.y_spatial_prior_adaptor_list_s2 = [conv1(3 * M) for _ in range(3)]
        self.y_spatial_prior_adaptor_list_s3 = [conv1(3 * M) for _ in range(6)]
        d = self.prior_depths
        self.y_spatial_prior_s1_s2 = SpatialPrior(M, d[0], d[1], p)
        self.y_spatial_prior_s3 = SpatialPrior(M, d[2], d[3], p)
        self.adaptive_params_list = AdaptiveScales(10, 3 * M)
        self.attn_s1 = CrossAttentionCell(4, self.heads, p)
        self.attn_s2 = CrossAttentionCell(8, self.heads, p)
        self.attn_s3 = CrossAttentionCell(8, self.heads, p)
        self.context_net = [conv1(2 * M) for _ in range(2)]
        self.hyper_prior = ChannelGGMPrior(N, self.beta)
        self.ggm = GGMConditional(beta=self.beta)
        lists = {"s1": self.y_spatial_prior_adaptor_list_s1, "s2": self.y_spatial_prior_adaptor_list_s2,
                 "s3": self.y_spatial_prior_adaptor_list_s3}
        nets = ProgressiveContext(
            M, {k: {str(i): m for i, m in enumerate(v)} for k, v in lists.items()},
            {"s1": self.y_spatial_prior_s1_s2, "s2": self.y_spatial_prior_s1_s2, "s3": self.y_spatial_prior_s3},
            {"s1": self.attn_s1, "s2": self.attn_s2, "s3": self.attn_s3}, self.context_net,
            self.adaptive_params_list)
        self.latent_codec = Hyperprior(self.h_a, self.h_s,
                                       EntropyBottleneckLatent(self.hyper_prior, ste=True, table="hyper_prior"),
                                       ProgressiveLatent(self.ggm, nets))

    def __call__(self, x, training: bool = False, rng=None):
        if x.shape[1] % 256 or x.shape[2] % 256:
            raise UserError(f"HPCM needs inputs of a multiple of 256 a side (got {x.shape[1]}x{x.shape[2]}); the "
                            "codec pads images to that")
        return super().__call__(x, training, rng)

    def aux_loss(self):
        return jnp.zeros((), jnp.float32)

    @staticmethod
    def build_tables(variables) -> dict:
        beta = BETA
        return {"hyper_prior": ggm_table(variables["params"]["hyper_prior"]["scales"], beta),
                "ggm": ggm_table(variables["constants"]["ggm"]["scale_table"], beta)}
