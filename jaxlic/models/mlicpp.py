"""MLIC++ (Jiang & Wang, arXiv 2307.15421; official code ``JiangWeibeta/MLIC``, ``MLIC++/``).

The transforms g_a, g_s (current and ``Old``), h_a, h_s, and MEM++: per channel slice, checkerboard anchors then
non-anchors, with a local context (checkerboard attention), global intra- and inter-slice contexts (linear
attention), a channel context and latent residual prediction (current and ``Old``). Submodule names follow the
official state_dict. The training forward uses the official mixed quantization; the codec plan is z, then each
slice's anchors and non-anchors (2 x slice_num + 1 jitted steps, shared by encoder and decoder), coding symbols
in the official order.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlic import plan as P
from jaxlic.errors import UserError
from jaxlic.entropy import EntropyBottleneck, GaussianConditional
from jaxlic.layers.blocks import ResidualBlock, ResidualBlockUpsample, ResidualBlockWithStride, gelu
from jaxlic.layers.conv import Conv, DepthwiseConv, SubpelConv
from jaxlic.latent_codecs import ChannelSlicesLatent, EntropyBottleneckLatent, Hyperprior, str_keys
from jaxlic.models.base import LatentCodecModel


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


class ChannelContext(nn.Module):
    """cat(yhat_<i) -> conv3x3 192, GELU, conv3x3 128, GELU, conv3x3 128 (keys ``fushion.{0,2,4}``, sic)."""

    precision: Any = None

    @nn.compact
    def __call__(self, x):
        p = self.precision
        x = gelu(Conv(192, 3, precision=p, name="fushion_0")(x))
        x = gelu(Conv(128, 3, precision=p, name="fushion_2")(x))
        return Conv(128, 3, precision=p, name="fushion_4")(x)


class EntropyParameters(nn.Module):
    """1x1 convs -> 320, GELU, -> 256, GELU, -> 128, GELU, -> 2 * slice_ch (scales, then means)."""

    out: int = 64
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        for k, f in zip((0, 2, 4), (320, 256, 128)):
            x = gelu(Conv(f, 1, precision=self.precision, name=f"fusion_{k}")(x))
        return Conv(self.out, 1, precision=self.precision, name="fusion_6")(x)


class LatentResidualPrediction(nn.Module):
    """[hyper_means, yhat_<i, current] -> conv3x3 224, GELU, 128, GELU, slice_ch, then 0.5 tanh. ``old``: four
    3x3 convs in -> in-d/4 -> in-d/2 -> in-3d/4 -> slice_ch with d = in - slice_ch (LatentResidualPredictionOld)."""

    out: int = 32
    old: bool = False
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        p, cin = self.precision, x.shape[-1]
        d = cin - self.out
        widths = (cin - d // 4, cin - d // 2, cin - 3 * d // 4) if self.old else (224, 128)
        for k, f in enumerate(widths):
            x = gelu(Conv(f, 3, precision=p, name=f"lrp_transform_{2 * k}")(x))
        x = Conv(self.out, 3, precision=p, name=f"lrp_transform_{2 * len(widths)}")(x)
        return 0.5 * jnp.tanh(x)


def _qkv(x, which: str, precision):
    """Queries, keys or values: 1x1 conv then depthwise 3x3 (``{which}.{0,1}``), created in the caller's scope."""
    x = Conv(x.shape[-1], 1, precision=precision, name=f"{which}_0")(x)
    return DepthwiseConv(3, precision=precision, name=f"{which}_1")(x)


def _mlp(x, hidden: int, out: int, precision):
    """1x1 -> hidden, GELU, depthwise 3x3, GELU, 1x1 -> out (``mlp.{0,2,4}``), in the caller's scope."""
    x = gelu(Conv(hidden, 1, precision=precision, name="mlp_0")(x))
    x = gelu(DepthwiseConv(3, precision=precision, name="mlp_2")(x))
    return Conv(out, 1, precision=precision, name="mlp_4")(x)


def _linear_attention(q, k, v, heads: int, key_mask=None):
    """Per head on contiguous channel blocks: K softmax over positions, Q softmax over the head's channels,
    out = (K~ V^T)^T Q~ (no 1/sqrt(d), no positions). (B, H, W, C) maps; ``key_mask`` (H, W) limits the
    positions keys and values come from."""
    b, h, w, c = q.shape
    dh = c // heads
    q, k, v = (t.reshape(b, h * w, heads, dh) for t in (q, k, v))
    if key_mask is not None:
        m = jnp.asarray(key_mask.reshape(1, h * w, 1, 1) > 0)
        k = jnp.where(m, k, -jnp.inf)
        v = jnp.where(m, v, 0.0)
    k = jax.nn.softmax(k, axis=1)
    q = jax.nn.softmax(q, axis=-1)
    context = jnp.einsum("bnhk,bnhv->bhkv", k, v, precision=jax.lax.Precision.HIGHEST)
    out = jnp.einsum("bhkv,bnhk->bnhv", context, q, precision=jax.lax.Precision.HIGHEST)
    return out.reshape(b, h, w, c)


def _softmax_attention(q, k, v, heads: int, key_mask=None):
    """Ordinary attention over all positions, softmax(QK^T / sqrt(d)) V per head: what MLIC+ used and MLIC++
    replaced; quadratic in the number of positions. Only for comparison (``attention="softmax"``)."""
    b, h, w, c = q.shape
    dh = c // heads
    q, k, v = (t.reshape(b, h * w, heads, dh) for t in (q, k, v))
    scores = jnp.einsum("bnhd,bmhd->bhnm", q * dh ** -0.5, k, precision=jax.lax.Precision.HIGHEST)
    if key_mask is not None:
        scores = jnp.where(jnp.asarray(key_mask.reshape(1, 1, 1, h * w) > 0), scores, -jnp.inf)
    out = jnp.einsum("bhnm,bmhd->bnhd", jax.nn.softmax(scores, axis=-1), v, precision=jax.lax.Precision.HIGHEST)
    return out.reshape(b, h, w, c)


_ATTENTION = {"linear": _linear_attention, "softmax": _softmax_attention}


class LinearGlobalInterContext(nn.Module):
    """cat(yhat_<i) (32i channels, i heads of 32) over all positions -> reprojection 5x5 -> 96 = a;
    skip(a) + mlp(a), 64 channels."""

    heads: int = 1
    precision: Any = None
    attention: str = "linear"

    @nn.compact
    def __call__(self, x):
        p = self.precision
        q, k, v = (_qkv(x, n, p) for n in ("queries", "keys", "values"))
        att = _ATTENTION[self.attention](q, k, v, self.heads)
        a = Conv(96, 5, precision=p, name="reprojection")(att)
        return Conv(64, 1, precision=p, name="skip")(a) + _mlp(a, 128, 64, p)


class LinearGlobalIntraContext(nn.Module):
    """Queries from the previous slice at non-anchors, keys from it at anchors, values from the current slice's
    anchors (2 heads of 16); output at non-anchors -> reprojection 5x5 -> 64 = a; a + mlp(a)."""

    heads: int = 2
    precision: Any = None
    attention: str = "linear"

    @nn.compact
    def __call__(self, prev, anchors):
        p = self.precision
        m = P.checkerboard_mask(*prev.shape[1:3], True, 1).astype(np.float32)  # anchors: (row + col) odd
        mm = jnp.asarray(m)[None, :, :, None]
        q = _qkv(prev * (1 - mm), "queries", p)
        k = _qkv(prev * mm, "keys", p)
        v = _qkv(anchors, "values", p)
        att = _ATTENTION[self.attention](q, k, v, self.heads, key_mask=m) * (1 - mm)
        a = Conv(64, 5, precision=p, name="reprojection")(att)
        return a + _mlp(a, 128, 64, p)


def _local_bias_index(window: int = 5) -> np.ndarray:
    """(window^2, window^2) index into the (2w-1)^2 relative-position table: (dr + w-1) * (2w-1) + (dc + w-1)."""
    r, c = np.divmod(np.arange(window * window), window)
    return (r[:, None] - r[None, :] + window - 1) * (2 * window - 1) + (c[:, None] - c[None, :] + window - 1)


def _local_mask(h: int, w: int, window: int = 5) -> np.ndarray:
    """(h, w, window^2, window^2): 0 where both window elements are anchors inside the image, else -100."""
    half = window // 2
    a = np.pad(P.checkerboard_mask(h, w, True, 1), half)  # the anchors; zero outside the image
    dy, dx = np.divmod(np.arange(window * window), window)
    inside = np.stack([a[y:y + h, x:x + w] for y, x in zip(dy, dx)], axis=-1) > 0  # (h, w, window^2)
    return np.where(inside[..., :, None] & inside[..., None, :], 0.0, -100.0).astype(np.float32)


class LocalContext(nn.Module):
    """Checkerboard attention in 5x5 windows around every position, over the current slice's anchors."""

    dim: int = 32
    heads: int = 2
    window: int = 5
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        p, wn, nh = self.precision, self.window, self.heads
        b, h, w, c = x.shape
        dh = c // nh
        t = nn.LayerNorm(epsilon=1e-5, name="norm1")(x)
        qkv = nn.Dense(3 * c, precision=p, name="qkv_proj")(t)
        half = wn // 2
        qkv = jnp.pad(qkv, ((0, 0), (half, half), (half, half), (0, 0)))  # zero padding after the projection
        win = jnp.stack([qkv[:, y:y + h, x_:x_ + w] for y in range(wn) for x_ in range(wn)], axis=3)
        # (b, h, w, n, 3c); within q, k, v channel d * heads + head (heads interleaved)
        q, k, v = (win[..., i * c:(i + 1) * c].reshape(b, h, w, wn * wn, dh, nh) for i in range(3))
        table = self.param("relative_position_table", nn.initializers.truncated_normal(0.02),
                           ((2 * wn - 1) ** 2, nh))
        bias = table[_local_bias_index(wn)]                      # (n, n, heads)
        mask = jnp.asarray(_local_mask(h, w, wn))                # (h, w, n, n)
        attn = jnp.einsum("bhwidn,bhwjdn->bhwnij", q * dh ** -0.5, k, precision=p)
        attn = attn + jnp.moveaxis(bias, -1, 0) + mask[None, :, :, None]
        attn = jax.nn.softmax(attn, axis=-1)
        out = jnp.einsum("bhwnij,bhwjdn->bhwind", attn, v, precision=p)  # heads contiguous: channel n * dh + d
        # ``fusion``: Conv2d(c, 2c, window, no padding) over each position's window = one dense layer
        x = Conv(2 * c, wn, padding=0, precision=p, name="fusion")(out.reshape(b * h * w, wn, wn, c))
        x = nn.Dense(2 * c, precision=p, name="proj")(x.reshape(b, h, w, 2 * c))
        y = nn.LayerNorm(epsilon=1e-5, name="norm2")(x)
        return x + _LocalMlp(4 * c, precision=p, name="mlp")(y)


class _LocalMlp(nn.Module):
    hidden: int
    precision: Any = None

    @nn.compact
    def __call__(self, x):
        y = gelu(nn.Dense(self.hidden, precision=self.precision, name="fc1")(x))
        return nn.Dense(x.shape[-1], precision=self.precision, name="fc2")(y)


# --- the model --------------------------------------------------------------------------------------------------
class MultiReferenceContexts(nn.Module):
    """MEM++'s per-slice networks, for ``ChannelSlicesLatent`` in checkerboard mode (no parameters of its own:
    the model's modules, shared, keep the official names). ``side`` is h_s's output: all 2M channels feed every
    parameter network, channels M..2M-1 (the hyper means) the latent residual predictions."""

    M: int
    local_context: Sequence[nn.Module]
    channel_context: Any            # {str(i): network} for i >= 1, as the next two
    global_inter_context: Any
    global_intra_context: Any
    entropy_parameters_anchor: Sequence[nn.Module]
    entropy_parameters_nonanchor: Sequence[nn.Module]
    lrp_anchor: Sequence[nn.Module]
    lrp_nonanchor: Sequence[nn.Module]

    def anchor_params(self, i, side, done):
        """Inter-slice and channel contexts (``refs``, reused by the non-anchors) and the anchors' parameters."""
        refs = []
        if i:
            prev = jnp.concatenate(done, -1)
            refs = [self.global_inter_context[str(i)](prev), self.channel_context[str(i)](prev)]
        scales, means = jnp.split(self.entropy_parameters_anchor[i](jnp.concatenate(refs + [side], -1)), 2, -1)
        return scales, means, refs

    def refine_anchor(self, i, side, done, refs, a_hat):
        anchors = jnp.asarray(P.checkerboard_mask(*a_hat.shape[1:3], True, 1))[None, :, :, None]
        return a_hat + anchors * self.lrp_anchor[i](jnp.concatenate([side[..., self.M:], *done, a_hat], -1))

    def nonanchor_params(self, i, side, done, refs, a_hat):
        """Local (checkerboard attention) and intra-slice contexts from the decoded anchors, plus ``refs``."""
        intra = [self.global_intra_context[str(i)](done[-1], a_hat)] if i else []
        p = self.entropy_parameters_nonanchor[i](jnp.concatenate([self.local_context[i](a_hat)] + intra + refs
                                                                 + [side], -1))
        return tuple(jnp.split(p, 2, -1))

    def refine(self, i, side, done, refs, y_hat_i):
        rest = jnp.asarray(P.checkerboard_mask(*y_hat_i.shape[1:3], False, 1))[None, :, :, None]
        return y_hat_i + rest * self.lrp_nonanchor[i](jnp.concatenate([side[..., self.M:], *done, y_hat_i], -1))


class MLICPlusPlus(LatentCodecModel):
    """MLIC++ with MEM++: slice_num channel slices, each coded as checkerboard anchors ((row + col) odd) then
    non-anchors, with local (checkerboard attention), global intra-slice and inter-slice (linear attention) and
    channel contexts, and latent residual prediction (``MultiReferenceContexts`` in a ``ChannelSlicesLatent``
    under a ``Hyperprior``; z rounded with straight-through gradients in training, the official mixed
    quantization). Coding: z, then per slice its anchors and its non-anchors (2 x slice_num + 1 steps), symbols
    in the official order (CompressAI's NCHW z; per channel, row by row, the checkerboard half of y, as the
    official ``ckbd_*_sequeeze``). Submodule names follow the official state_dict (``local_context_{i}`` for
    ``local_context.{i}``). ``old_g_s`` / ``old_lrp``: the ``Old`` modules of the 2023-09 checkpoints."""

    N: int = 192
    M: int = 320
    slice_num: int = 10
    context_window: int = 5  # stored by the official model but unused (LocalContext's window is 5)
    old_g_s: bool = False
    old_lrp: bool = False
    precision: Any = None
    attention: str = "linear"  # "softmax": MLIC+'s quadratic global attention, for comparisons only

    downsampling = 64

    @property
    def slice_ch(self) -> int:
        return self.M // self.slice_num

    def setup(self):
        N, M, p, s, n = self.N, self.M, self.precision, self.M // self.slice_num, self.slice_num
        if M % n or s < 32:
            # the official model's inter-slice attention has slice_ch * i // 32 heads of 32 channels
            raise UserError(f"mlicpp: M={M} with slice_num={n} gives {M / n:g} channels per slice; MLIC++ needs a "
                            "whole number of at least 32 (its global inter-slice attention has heads of 32 channels)")
        if self.attention not in _ATTENTION:
            raise ValueError(f"attention must be one of {sorted(_ATTENTION)}, got {self.attention!r}")
        self.g_a = AnalysisTransform(N, M, p)
        self.g_s = SynthesisTransform(N, M, self.old_g_s, p)
        self.h_a = HyperAnalysis(N, p)
        self.h_s = HyperSynthesis(N, M, p)
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional()
        self.local_context = [LocalContext(s, precision=p) for _ in range(n)]
        self.channel_context = {i: ChannelContext(p) for i in range(1, n)}
        self.global_inter_context = {i: LinearGlobalInterContext(s * i // 32, p, self.attention) for i in range(1, n)}
        self.global_intra_context = {i: LinearGlobalIntraContext(precision=p, attention=self.attention)
                                     for i in range(1, n)}
        self.entropy_parameters_anchor = [EntropyParameters(2 * s, p) for _ in range(n)]
        self.entropy_parameters_nonanchor = [EntropyParameters(2 * s, p) for _ in range(n)]
        self.lrp_anchor = [LatentResidualPrediction(s, self.old_lrp, p) for _ in range(n)]
        self.lrp_nonanchor = [LatentResidualPrediction(s, self.old_lrp, p) for _ in range(n)]
        contexts = MultiReferenceContexts(
            M, self.local_context, str_keys(self.channel_context), str_keys(self.global_inter_context),
            str_keys(self.global_intra_context),
            self.entropy_parameters_anchor, self.entropy_parameters_nonanchor, self.lrp_anchor, self.lrp_nonanchor)
        self.latent_codec = Hyperprior(
            self.h_a, self.h_s, EntropyBottleneckLatent(self.entropy_bottleneck, "nchw", ste=True),
            ChannelSlicesLatent(self.gaussian_conditional, contexts, (s,) * n, "checkerboard", anchor_parity=1),
            side_key="hyper")
