"""The transformer LIC of Shen & Liu (SPIE 12522, 2023), in the layout of the official code (GitHub
``stm233/image-compression-with-swin-transformer``, class ``SymmetricalTransFormer5`` in ``stf8.py``; built on STF,
Zou et al. 2022).

Swin analysis and synthesis; a hyperprior with separate mean and scale synthesis; y cut into spatial-channel chunks
(``num_slices`` channel slices x a ``grid`` x ``grid`` grid of contiguous spatial blocks) coded one after another,
each from the whole hyperprior and the last ``max_support`` decoded chunks (a sliding window), with per-chunk
convolution stacks refined by Swin stages for the means, the scales and the latent residual prediction (LRP).

Every width the official code hard-codes is a field here, the official value the default. The official chunk order
(``order="official"``: per grid position all channel slices, positions in L-shaped shells: TL, BL, TR, BR on the
2x2 grid) is the default; ``order="zigzag"`` walks the grid's anti-diagonals alternately (JPEG's zigzag). Unlike
the official code, every chunk sees all hyperprior chunks (the official ``support_num`` = 24 selects exactly that
on its 2x2 grid) and there is a real codec: one plan step per chunk after z.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlic.entropy import EntropyBottleneck, GaussianConditional
from jaxlic.entropy.quantization import ste_round
from jaxlic.layers.blocks import ConvStack
from jaxlic.layers.conv import Conv, pixel_shuffle
from jaxlic.layers.init import torch_conv_kernel_init
from jaxlic.layers.swin import PatchEmbed, SwinStage, gelu
from jaxlic.latent_codecs import (Branches, ChunkScanLatent, EntropyBottleneckLatent, Hyperprior, chunks_of)
from jaxlic.models.base import LatentCodecModel


def chunk_order(num_slices: int, grid: int, order: str = "official") -> tuple[tuple[int, int, int], ...]:
    """(channel slice, block row, block column) of each chunk in coding order; all slices of a block first.
    ``official``: blocks in L-shaped shells max(row, col) = 0, 1, ..., each column by column (the official
    ZigzagSplits loop: TL, BL, TR, BR on a 2x2 grid). ``zigzag``: anti-diagonals row + col = 0, 1, ...,
    alternately up and down (JPEG's scan: TL, TR, BL, BR on a 2x2 grid)."""
    if order == "official":
        blocks = [(r, c) for i in range(grid) for c in range(i + 1) for r in range(i + 1) if max(r, c) == i]
    elif order == "zigzag":
        blocks = []
        for d in range(2 * grid - 1):
            rows = [r for r in range(grid) if 0 <= d - r < grid]
            blocks += [(r, d - r) for r in (rows if d % 2 else rows[::-1])]
    else:
        raise ValueError(f"order must be 'official' or 'zigzag', got {order!r}")
    return tuple((s, r, c) for r, c in blocks for s in range(num_slices))


def support_slots(K: int, W: int, extra: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each chunk's support kernels start in the ragged store and how many slots it has: chunk k sees
    min(k, W) decoded chunks (+ ``extra``: the LRP also sees its own rounded chunk)."""
    counts = np.array([min(k, W) + extra for k in range(K)], np.int32)
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32), counts


class ChunkConvStack(nn.Module):
    """A chunk's context convolution stack (``cc_mean_transforms2.k`` ...). Its first 3x3 conv is split by input:
    the hyperprior part arrives computed (``hyper_out``: every chunk's at once, ``hyper_convs``, as the hyperprior
    is the same for all), the support part's kernel is handed in (the chunks' support kernels live in one ragged
    store, as their widths differ). Then GELU and the remaining convs, named as ``ConvStack`` names them."""

    features: Sequence[int]
    fan_in: int
    precision: Any = None

    @nn.compact
    def __call__(self, hyper_out, support, support_kernel):
        x = jax.lax.conv_general_dilated(support, support_kernel.astype(support.dtype), (1, 1), ((1, 1), (1, 1)),
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=self.precision)
        bias = self.param("bias", torch_conv_kernel_init(self.fan_in), (self.features[0],))
        x = x + hyper_out + bias.astype(x.dtype)
        for i, f in enumerate(self.features[1:], 1):
            x = Conv(f, 3, precision=self.precision, name=f"layers_{2 * i}")(gelu(x))
        return x


def hyper_convs(hyper, kernels, precision=None):
    """Every chunk's first-conv hyperprior part at once: (B, h, w, C) with kernels (K, out, 3, 3, C) -> (K, B, h, w,
    out). One matrix product over the 3x3 patches: XLA:CPU runs it at about 1.6x the speed of a convolution with
    K * out outputs, or of K convolutions in the scan. The kernels are stored (K, out, 3, 3, C) because that is the
    (output, input) layout XLA:CPU's product wants: stored (3, 3, C, out) it copied all three stacks (0.9 GB at the
    official size) into it at every call."""
    b, h, w, c = hyper.shape
    k, out = kernels.shape[:2]
    padded = jnp.pad(hyper, ((0, 0), (1, 1), (1, 1), (0, 0)))
    patches = jnp.concatenate([padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], -1)
    res = jnp.einsum("bhwp,np->bhwn", patches, kernels.reshape(k * out, 9 * c).astype(hyper.dtype),
                     precision=precision)
    return jnp.moveaxis(res.reshape(b, h, w, k, out), 3, 0)


class ChunkNets(nn.Module):
    """One chunk's context networks, the body of the scan over chunks: the mean, scale and LRP convolution
    stacks, each refined by its Swin stages (t + Swin(t)). Parameters are stacked over chunks (``chunks`` in
    ``STFZigzag``), so every chunk runs one compiled body.

    The carry is the support: the last min(k, W) decoded chunks on channels, oldest first, zeros after (the
    support kernels of chunks with fewer are masked to zero there)."""

    chunk_ch: int
    num_chunks: int
    widths: Sequence[int]
    window_slots: int       # W: the sliding window
    hyper_ch: int
    heads: int
    ws: int
    mlp_ratio: float
    depths: Sequence[Sequence[int]]        # mu, sigma, LRP stages
    drop_paths: Sequence[Sequence[float]]
    precision: Any = None

    def setup(self):
        cw, W, p = self.chunk_ch, self.window_slots, self.precision
        feats = (*self.widths, cw)
        self.cc_mean = ChunkConvStack(feats, 9 * (self.hyper_ch + W * cw), p)
        self.cc_scale = ChunkConvStack(feats, 9 * (self.hyper_ch + W * cw), p)
        self.lrp = ChunkConvStack(feats, 9 * (self.hyper_ch + (W + 1) * cw), p)

        def stages(depths):
            return [SwinStage(d, self.heads, self.ws, self.mlp_ratio, self.drop_paths[j], None, p)
                    for j, d in enumerate(depths)]

        self.mu_Swin2, self.sigma_Swin2, self.LRP_Swin2 = (stages(d) for d in self.depths)

    @staticmethod
    def _refine(stages, t, rng):
        r = t
        for j, stage in enumerate(stages):
            r = stage(r, None if rng is None else jax.random.fold_in(rng, j))
        return t + r

    def params_of(self, hyper_outs, support, kernels, rng=None):
        """(means, scales) of the chunk; ``hyper_outs``: its mean and scale stacks' first-conv hyperprior parts."""
        r = (None,) * 3 if rng is None else jax.random.split(rng, 3)
        mu = self._refine(self.mu_Swin2, self.cc_mean(hyper_outs[0], support, kernels[0]), r[0])
        scale = self._refine(self.sigma_Swin2, self.cc_scale(hyper_outs[1], support, kernels[1]), r[1])
        return mu, scale

    def residual(self, hyper_out, support_and_bar, kernel, rng=None):
        """0.5 tanh of the refined latent residual prediction."""
        r = None if rng is None else jax.random.split(rng, 3)[2]
        return 0.5 * jnp.tanh(self._refine(self.LRP_Swin2, self.lrp(hyper_out, support_and_bar, kernel), r))

    def __call__(self, support, xs, stores):
        k, y_k, hyper_outs, rng = xs
        kernels, m = support_kernels(stores, k, self.window_slots, self.num_chunks)
        mu, scale = self.params_of(hyper_outs[:2], support, kernels[:2], rng)
        y_bar = ste_round(y_k - mu) + mu
        y_hat = y_bar + self.residual(hyper_outs[2], with_bar(support, y_bar, m), kernels[2], rng)
        return push(support, y_hat, k, self.window_slots), (mu, scale, y_hat)


def _window(store, start, count, n: int):
    """n support kernels of the ragged store from ``start``, those from ``count`` on zeroed, as one kernel over
    the channels of n stacked chunks: (3, 3, n * chunk_ch, out)."""
    _, kh, kw, cw, out = store.shape
    w = jax.lax.dynamic_slice_in_dim(store, start, n, 0)
    w = jnp.where((jnp.arange(n) < count)[:, None, None, None, None], w, 0)
    return w.transpose(1, 2, 0, 3, 4).reshape(kh, kw, n * cw, out)


def support_kernels(stores, k, W: int, K: int):
    """Chunk k's support kernels (mean, scale: W slots; LRP: W + 1 with its own rounded chunk at slot
    min(k, W)) and min(k, W)."""
    starts, counts = support_slots(K, W, 0)
    starts_l, counts_l = support_slots(K, W, 1)
    m = jnp.asarray(counts)[k]
    return (_window(stores[0], jnp.asarray(starts)[k], m, W), _window(stores[1], jnp.asarray(starts)[k], m, W),
            _window(stores[2], jnp.asarray(starts_l)[k], jnp.asarray(counts_l)[k], W + 1)), m


def with_bar(support, y_bar, m):
    """The LRP's input after the hyperprior: the support with the rounded chunk at slot m (zeros after)."""
    cw = y_bar.shape[-1]
    ext = jnp.concatenate([support, jnp.zeros_like(y_bar)], -1)
    return jax.lax.dynamic_update_slice_in_dim(ext, y_bar, m * cw, -1)


def push(support, y_hat, k, W: int):
    """The support after chunk k: y_hat appended at slot k while there is room, else the oldest dropped."""
    if W == 0:
        return support
    cw = y_hat.shape[-1]
    support = jnp.where(k >= W, jnp.roll(support, -cw, axis=-1), support)
    # in the support's dtype: a scan carry keeps its dtype (bfloat16 training rounds y_hat in float32)
    return jax.lax.dynamic_update_slice_in_dim(support, y_hat.astype(support.dtype), jnp.minimum(k, W - 1) * cw, -1)


class ChunkContexts(nn.Module):
    """The chunk networks as ``ChunkScanLatent`` uses them (no parameters of its own: the model's, shared). The
    side information is (h_mean_s(z_hat), h_scale_s(z_hat)); the state holds every chunk's first-conv hyperprior
    parts and the support, the last min(k, W) decoded chunks on channels (``push``)."""

    chunks: nn.Module                # the scanned ``ChunkNets``, parameters stacked over chunks
    chunk_fields: Any                # its fields, to bind one chunk's slice of them (``chunk_nets``)
    stores: Any                      # support kernels (mean, scale, LRP), ragged, chunk after chunk
    hyper_kernels: Any               # every chunk's first-conv kernel over the hyperprior (mean, scale, LRP)
    chunk_keys: tuple
    grid: int
    precision: Any = None

    @property
    def chunk_ch(self) -> int:
        return self.chunk_fields["chunk_ch"]

    @property
    def support_window(self) -> int:
        return self.chunk_fields["window_slots"]

    def split(self, t):
        """(B, H, W, M) -> the chunks in coding order, (B, H/grid, W/grid, M/num_slices) each."""
        return chunks_of(t, self.chunk_keys, self.grid, self.chunk_ch)

    def hyper(self, side):
        """The hyperprior every chunk sees: (means, scales), each all chunks of h_*_s(z_hat) on channels in
        coding order (channel k * chunk_ch + c, as the official view of the stacked chunks)."""
        return tuple(jnp.concatenate(self.split(h), -1) for h in side)

    def hyper_outs(self, hyper):
        """Every chunk's first-conv hyperprior parts (mean, scale, LRP), (K, B, h, w, width) each."""
        (km, ks, kl), p = self.hyper_kernels, self.precision
        return hyper_convs(hyper[0], km, p), hyper_convs(hyper[1], ks, p), hyper_convs(hyper[0], kl, p)

    def chunk_nets(self, k):
        """Chunk k's networks: the scan's body bound to the k-th slice of the stacked parameters (k may be
        traced), and its support kernels (mean, scale, LRP) cut from the ragged stores."""
        params = jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, k, keepdims=False),
                              self.chunks.variables["params"])
        kernels, _ = support_kernels(self.stores, k, self.support_window, len(self.chunk_keys))
        return ChunkNets(**self.chunk_fields, parent=None).bind({"params": params}), kernels

    def chunk_params(self, hyper_outs, support, k):
        """(means, scales) of chunk k, given ``hyper_outs(hyper)`` and the support (``push``-ed decoded chunks)."""
        nets, kernels = self.chunk_nets(k)
        return nets.params_of([h[k] for h in hyper_outs[:2]], support, kernels[:2])

    def chunk_decode(self, hyper_outs, support, y_bar, k):
        """Chunk k decoded from y_bar = round(y - mu) + mu: plus its latent residual prediction."""
        nets, kernels = self.chunk_nets(k)
        m = jnp.minimum(k, self.support_window)
        return y_bar + nets.residual(hyper_outs[2][k], with_bar(support, y_bar, m), kernels[2])

    def push(self, support, y_hat, k):
        return push(support, y_hat, k, self.support_window)

    # --- what ChunkScanLatent calls ---------------------------------------------------------------------------
    def start(self, side):
        b, h, w, _ = side[0].shape
        g = self.grid
        return {"hyper_outs": self.hyper_outs(self.hyper(side)),
                "support": jnp.zeros((b, h // g, w // g, self.support_window * self.chunk_ch), side[0].dtype)}

    def scan(self, state, ys, training, rng):
        K = ys.shape[0]
        keys = jax.random.split(jax.random.fold_in(rng, 2), K) if training else None
        support = jnp.zeros(ys.shape[1:4] + (self.support_window * self.chunk_ch,), ys.dtype)
        _, out = self.chunks(support, (jnp.arange(K), ys, state["hyper_outs"], keys), self.stores)
        return out

    def params(self, state, k):
        return self.chunk_params(state["hyper_outs"], state["support"], k)

    def decode(self, state, y_bar, k):
        y_hat = self.chunk_decode(state["hyper_outs"], state["support"], y_bar, k)
        return {**state, "support": self.push(state["support"], y_hat, k)}, y_hat


class STFZigzag(LatentCodecModel):
    """``stf-zigzag``: its transforms, and a ``Hyperprior`` over z (rounded with straight-through gradients in
    training) and y in chunks (``ChunkScanLatent`` of the ``ChunkContexts``). Defaults are the official model:
    417,843,543 parameters."""

    embed_dim: int = 48
    depths: tuple = (2, 2, 6, 2)
    heads: tuple = (3, 6, 12, 24)
    window: int = 4
    patch: int = 2
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.2
    hyper_widths: tuple = (336, 288, 240)   # h_a's hidden widths after its first conv (h_*_s mirror them)
    z_ch: int = 192
    num_slices: int = 6
    grid: int = 2
    order: str = "official"
    max_support: int = 12                    # the sliding window: decoded chunks a chunk sees
    context_widths: tuple = (224, 176, 128, 64)
    context_heads: int = 4
    context_window: int = 8
    mu_depths: tuple = (2, 6)
    sigma_depths: tuple = (2, 2)
    lrp_depths: tuple = (2, 6)
    precision: Any = None

    @property
    def M(self) -> int:
        return self.embed_dim * 2 ** (len(self.depths) - 1)

    @property
    def z_channels(self) -> int:
        return self.z_ch

    @property
    def downsampling(self) -> int:
        # y is 1/16 of the input (patch 2, three merges) and z 1/64; the chunk grid must divide y
        return math.lcm(64, 16 * self.grid)

    @property
    def chunk_ch(self) -> int:
        return self.M // self.num_slices

    @property
    def chunk_keys(self) -> tuple:
        return chunk_order(self.num_slices, self.grid, self.order)

    @property
    def support_window(self) -> int:
        return min(self.max_support, len(self.chunk_keys) - 1)

    def _drop_paths(self, depths):
        rates = np.linspace(0, self.drop_path_rate, sum(self.depths)).tolist()
        return [tuple(rates[sum(depths[:i]):sum(depths[:i + 1])]) for i in range(len(depths))]

    def setup(self):
        p, n = self.precision, len(self.depths)
        if self.M % self.num_slices:
            raise ValueError(f"{self.num_slices} slices do not divide the {self.M} latent channels")
        self.patch_embed = PatchEmbed(self.embed_dim, self.patch, p)
        enc = self._drop_paths(self.depths)
        self.layers = [SwinStage(self.depths[i], self.heads[i], self.window, self.mlp_ratio, enc[i],
                                 "merge" if i < n - 1 else None, p) for i in range(n)]
        rdepths, rheads = self.depths[::-1], self.heads[::-1]
        dec = self._drop_paths(rdepths)
        self.syn_layers = [SwinStage(rdepths[i], rheads[i], self.window, self.mlp_ratio, dec[i],
                                     "split" if i < n - 1 else None, p) for i in range(n)]
        self.end_conv_0 = Conv(self.embed_dim * self.patch ** 2, 5, precision=p)
        self.end_conv_2 = Conv(3, 3, precision=p)
        M, (w1, w2, w3), z = self.M, self.hyper_widths, self.z_ch
        self.h_a = ConvStack((M, w1, w2, w3, z), (1, 1, 2, 1, 2), p)
        self.h_mean_s = ConvStack((w3, w2, w1, M, M), (1, -2, 1, -2, 1), p)
        self.h_scale_s = ConvStack((w3, w2, w1, M, M), (1, -2, 1, -2, 1), p)
        self.entropy_bottleneck = EntropyBottleneck(z)
        self.gaussian_conditional = GaussianConditional()
        K, cw, W, w0 = len(self.chunk_keys), self.chunk_ch, self.support_window, self.context_widths[0]
        hyper_ch = K * cw
        ms, ls = int(support_slots(K, W, 0)[1].sum()), int(support_slots(K, W, 1)[1].sum())
        init, init_l = torch_conv_kernel_init(9 * (hyper_ch + W * cw)), torch_conv_kernel_init(9 * (hyper_ch + (W + 1) * cw))
        param = self.own_param
        # every chunk's support kernels, chunk after chunk (min(k, W) slots each; the LRP's one more)
        self.cc_mean_support = param("cc_mean_support", init, (ms, 3, 3, cw, w0))
        self.cc_scale_support = param("cc_scale_support", init, (ms, 3, 3, cw, w0))
        self.lrp_support = param("lrp_support", init_l, (ls, 3, 3, cw, w0))
        # and every chunk's kernel over the hyperprior, stacked, (output, kernel row, column, input)
        self.cc_mean_hyper = param("cc_mean_hyper", init, (K, w0, 3, 3, hyper_ch))
        self.cc_scale_hyper = param("cc_scale_hyper", init, (K, w0, 3, 3, hyper_ch))
        self.lrp_hyper = param("lrp_hyper", init_l, (K, w0, 3, 3, hyper_ch))
        ctx = self._drop_paths(rdepths)  # the official code slices the synthesis' rates here
        self.chunk_fields = dict(
            chunk_ch=cw, num_chunks=K, widths=self.context_widths, window_slots=W, hyper_ch=hyper_ch, heads=self.context_heads,
            ws=self.context_window, mlp_ratio=self.mlp_ratio, depths=(self.mu_depths, self.sigma_depths,
                                                                     self.lrp_depths),
            drop_paths=tuple(ctx[j] if j < len(ctx) else () for j in range(max(len(self.mu_depths),
                                                                                len(self.sigma_depths),
                                                                                len(self.lrp_depths)))),
            precision=p)
        self.chunks = nn.scan(ChunkNets, variable_axes={"params": 0}, split_rngs={"params": True},
                              in_axes=(0, nn.broadcast), length=K)(**self.chunk_fields)
        self.contexts = ChunkContexts(
            self.chunks, self.chunk_fields, (self.cc_mean_support, self.cc_scale_support, self.lrp_support),
            (self.cc_mean_hyper, self.cc_scale_hyper, self.lrp_hyper), self.chunk_keys, self.grid, p)
        self.latent_codec = Hyperprior(
            self.h_a, Branches((self.h_mean_s, self.h_scale_s)), EntropyBottleneckLatent(self.entropy_bottleneck,
                                                                                         ste=True),
            ChunkScanLatent(self.gaussian_conditional, self.contexts, self.chunk_keys, self.grid, cw))

    # --- transforms ---------------------------------------------------------------------------------------------
    def g_a(self, x, rng=None):
        x = self.patch_embed(x)
        for i, layer in enumerate(self.layers):
            x = layer(x, None if rng is None else jax.random.fold_in(rng, i))
        return x

    def g_s(self, y_hat, rng=None):
        for i, layer in enumerate(self.syn_layers):
            y_hat = layer(y_hat, None if rng is None else jax.random.fold_in(rng, i))
        return self.end_conv_2(pixel_shuffle(self.end_conv_0(y_hat), self.patch))

    def __call__(self, x, training: bool = False, rng=None):
        """Training forward (``training``: noise for the rates, drop-path, STE rounding around the means for the
        decoder and the context, as the official forward) or evaluation forward (rounding). The tree splits
        ``rng`` in three (z's noise, y's, the drop-path key); the transforms fold the last as the chunks do."""
        rd = jax.random.split(rng, 3)[2] if training else None
        fold = (lambda i: jax.random.fold_in(rd, i)) if training else (lambda i: None)
        y = self.g_a(x, fold(0))
        out = self.latent_codec(y, training, rng)
        return {"x_hat": self.g_s(out["y_hat"], fold(1)), **out, "y": y}
