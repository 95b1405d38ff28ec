"""Latent codecs: a model's entropy model as a tree of small parts, each of which says both what it does in
training (quantization, likelihoods) and how it is coded (the step groups of its plan, ``jaxlic.plan``).

A model is its transforms plus one such tree (``jaxlic.models.interface``): the trainer calls the tree, the codec
runs the tree's plan. Where the fast coding step must be another form of the forward (the wavefront's feature-
major step), the part holds both, side by side, and ``tests/test_latent_codecs.py`` proves, per part, that they
agree.

The parts own no parameters: they are handed the networks and entropy models the model defines in its own
``setup`` (Flax shares a module passed to another), so the variables keep the model's names, which are what the
official checkpoints convert to and what model files store.

Interfaces (``side``: the hyper synthesis' output, channels last; ``at(root)``: this part in the bound model):

    part(y, side, training, rng) -> dict(y_hat, likelihood, scales, means)   a conditional part (the y branch)
    part.keys                                       how many rng keys the part takes in training
    part.start(side) -> state                       the plan state once the side information is known
    part.steps(latent, shape, at) -> [StepGroup]    its coding steps over ``latent`` (NHWC ``shape``)
    part.decoded(state) -> y_hat                    the decoded latent from the final state (a static function)
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlic import plan as P
from jaxlic.entropy.bounds import lower_bound
from jaxlic.entropy.quantization import quantize, ste_round

Locate = Callable[[nn.Module], nn.Module]


def _mode(training: bool) -> str:
    return "noise" if training else "dequantize"


def channel_bounds(sizes) -> list[tuple[int, int]]:
    """(first, end) channel of each group of the given sizes, in order."""
    acc = np.cumsum((0,) + tuple(sizes))
    return [(int(a), int(b)) for a, b in zip(acc[:-1], acc[1:])]


def on_part(at: Locate, fn: Callable) -> Callable:
    """A plan step function ``(m, v, *args)`` that runs ``fn(part, *args)`` on the part ``at`` finds in the
    model bound to ``v``."""
    return lambda m, v, *args: m.apply(v, *args, method=lambda root, *a: fn(at(root), *a))


class EntropyBottleneckLatent(nn.Module):
    """A latent under a per-channel factorized prior (``EntropyBottleneck``): noisy in training, rounded around
    the channel medians for coding; the table index of an element is its channel. ``ste``: training passes on
    the latent rounded around the medians with straight-through gradients (the likelihood still of the noisy
    one), as CompressAI's checkerboard and ELIC models do with z."""

    entropy_bottleneck: nn.Module
    layout: str = "nhwc"   # coding order: C order of NHWC, or CompressAI's NCHW
    ste: bool = False
    table: str = "entropy_bottleneck"

    def __call__(self, x, training: bool = False, rng=None):
        x_hat, lik = self.entropy_bottleneck(x, _mode(training), rng)
        if training and self.ste:
            x_hat = quantize(x, "ste", self.entropy_bottleneck.medians())
        return x_hat, lik

    def steps(self, latent: str, shape, at: Locate, update=None) -> list[P.StepGroup]:
        """One step coding the whole latent; ``update(m, v, state, x_hat) -> state`` (default: stored under
        ``latent``)."""
        return [P.factorized(latent, self.table, latent, shape,
                             on_part(at, lambda part: part.entropy_bottleneck.medians()), update, self.layout)]


class GaussianLatent(nn.Module):
    """y under a Gaussian whose parameters come from the side information alone (all of y in one step):
    ``means`` False: side = the scales (Balle et al.'s scale hyperprior); True: side = (scales, means) split in
    two along the channels, scales first (CompressAI's ``chunk(2, 1)``)."""

    gaussian_conditional: nn.Module
    means: bool = True
    table: str = "gaussian_conditional"
    keys = 1

    def params(self, side):
        return _scales_means(side, self.means)

    def __call__(self, y, side, training: bool = False, rng=None):
        scales, means = self.params(side)
        y_hat, lik = self.gaussian_conditional(y, scales, means, _mode(training), rng)
        return _without_none(y_hat=y_hat, likelihood=lik, scales=scales, means=means)

    def start(self, side):
        return {"side": side}

    def steps(self, latent: str, shape, at: Locate) -> list[P.StepGroup]:
        def predict(part, state):
            scales, means = part.params(state["side"])
            return (jnp.zeros_like(scales) if means is None else means), scales

        return [P.whole(latent, self.table, latent, shape, on_part(at, predict), entropy=_gaussian(at))]

    @staticmethod
    def decoded(state):
        return state["y"]


class MaskedContextLatent(nn.Module):
    """Minnen et al.'s joint autoregressive prior: a 5x5 type-A masked convolution over the quantized y, its
    output beside the side information into 1x1 entropy-parameter layers (``entropy_parameters``, an
    ``nn.Sequential`` of 1x1 convs and activations) giving (scales, means). In training the context sees y
    noisy (rounded in evaluation), without means, as CompressAI's forward.

    Coding runs along the wavefront (``plan.wavefront``): positions (i, j) with one t = j + 3 i together, each
    step the same function as the forward at its positions (``wave_params``, the feature-major form: the
    context's kept taps gathered, the first 1x1 layer split into its side and context parts)."""

    gaussian_conditional: nn.Module
    context_prediction: nn.Module   # MaskedConv(M, 2M, 5, "A")
    entropy_parameters: nn.Module   # nn.Sequential([Conv 1x1, act, Conv 1x1, act, Conv 1x1])
    precision: Any = None
    table: str = "gaussian_conditional"
    keys = 2                        # the context's noise and the likelihood's

    def params(self, side, y_hat):
        x = self.entropy_parameters(jnp.concatenate([side, self.context_prediction(y_hat)], -1))
        return tuple(jnp.split(x, 2, axis=-1))

    def __call__(self, y, side, training: bool = False, rng=None):
        ry, rl = rng if training else (None, None)
        y_hat = quantize(y, _mode(training), None, ry)
        scales, means = self.params(side, y_hat)
        _, lik = self.gaussian_conditional(y, scales, means, _mode(training), rl)
        return {"y_hat": y_hat, "likelihood": lik, "scales": scales, "means": means}

    # --- the fast step form ---------------------------------------------------------------------------------
    def start(self, side):
        """The wavefront's state: the decoded y zero-padded for the 5x5 context (2 rows above, 2 columns each
        side), and what does not depend on it, computed once: the side information's part of the first layer
        at every position, and the weights a step multiplies by, sliced and laid out (out, in) once (slicing
        inside a step would copy them at every step)."""
        b, h, w, c_side = side.shape
        layers = self.entropy_parameters.layers
        first = layers[0].variables["params"]
        k = first["kernel"][0, 0].astype(side.dtype)
        hyper = jnp.einsum("...c,co->...o", side, k[:c_side], precision=self.precision) + first["bias"]
        later = [layer.variables["params"]["kernel"][0, 0].T.astype(side.dtype) for layer in layers[2::2]]
        m = self.context_prediction.in_features
        return {"hyper": hyper, "weights": [k[c_side:].T, *later], "taps": self.context_prediction.taps(),
                "y_pad": jnp.zeros((b, h + 2, w + 4, m), side.dtype)}

    def wave_params(self, state, rows, cols):
        """(means, scales) at the positions (rows, cols), (B, P, M): the forward's ``params`` computed feature-
        major (features, B * P), as ``MaskedConv.at`` gives the context."""
        layers = self.entropy_parameters.layers
        b = state["y_pad"].shape[0]
        ctx = self.context_prediction.at(state["y_pad"], rows, cols, state["taps"])
        if "ctx_offset" in state:  # a variable-rate context's offset for the rate (``OffsetContextLatent``)
            ctx = ctx + state["ctx_offset"][:, None]
        mul = lambda w, x: jnp.einsum("oc,cq->oq", w, x, precision=self.precision)
        first, *later = state["weights"]
        x = state["hyper"][:, rows, cols].reshape(b * rows.shape[0], -1).T + mul(first, ctx)
        for w, act, layer in zip(later, layers[1::2], layers[2::2]):
            x = mul(w, act(x)) + layer.variables["params"]["bias"].astype(x.dtype)[:, None]
        # the barrier keeps XLA from folding the transpose into the last product (a transposed operand takes
        # XLA:CPU's slower generic dot)
        x = jax.lax.optimization_barrier(x).T.reshape(b, rows.shape[0], -1)
        scales, means = jnp.split(x, 2, axis=-1)
        return means, scales

    @staticmethod
    def write(state, rows, cols, valid, values):
        """The state with ``values`` (B, P, M) decoded at (rows, cols) (the ones not ``valid`` dropped)."""
        r = jnp.where(valid, rows + 2, state["y_pad"].shape[1])  # out of range: dropped
        return {**state, "y_pad": state["y_pad"].at[:, r, cols + 2].set(values, mode="drop")}

    def steps(self, latent: str, shape, at: Locate) -> list[P.StepGroup]:
        update = lambda m, v, state, rows, cols, valid, values: self.write(state, rows, cols, valid, values)
        predict = on_part(at, lambda part, state, rows, cols, valid: part.wave_params(state, rows, cols))
        return [P.wavefront(latent, self.table, latent, shape, predict, update, entropy=_gaussian(at))]

    @staticmethod
    def decoded(state):
        return state["y_pad"][:, 2:, 2:-2]


class CheckerboardLatent(nn.Module):
    """He et al.'s two-pass checkerboard: the anchors ((row + col) even) from the side information alone (a
    zero context), then the rest with a checkerboard-masked convolution of the anchors; entropy parameters
    from concat(context, side). Both passes round around their means with straight-through gradients in
    training (the likelihood, of the noisy y, is taken once over the whole latent), as CompressAI's forward."""

    gaussian_conditional: nn.Module
    context_prediction: nn.Module   # MaskedConv(C, 2C, 5, "checkerboard")
    entropy_parameters: nn.Module
    means_first: bool = False       # the entropy parameters give (means, scales) rather than (scales, means)
    table: str = "gaussian_conditional"
    keys = 1

    def pass_params(self, side, anchors_hat=None):
        """(scales, means) everywhere; ``anchors_hat``: the decoded anchors, zero elsewhere (None: the anchor
        pass)."""
        if anchors_hat is None:
            shape = side.shape[:3] + (self.context_prediction.features,)
            ctx = jnp.zeros(shape, side.dtype)
        else:
            ctx = self.context_prediction(anchors_hat)
        a, b = jnp.split(self.entropy_parameters(jnp.concatenate([ctx, side], -1)), 2, axis=-1)
        return (b, a) if self.means_first else (a, b)

    def two_pass(self, y, side):
        """(y_hat, scales, means) of the two passes (rounding with straight-through gradients)."""
        anchor = jnp.asarray(P.checkerboard_mask(*y.shape[1:3], True, 0))[None, :, :, None]
        s_a, m_a = self.pass_params(side)
        y_a = anchor * quantize(y, "ste", m_a)
        s_n, m_n = self.pass_params(side, y_a)
        y_hat = y_a + (1 - anchor) * quantize(y, "ste", m_n)
        return y_hat, jnp.where(anchor, s_a, s_n), jnp.where(anchor, m_a, m_n)

    def __call__(self, y, side, training: bool = False, rng=None):
        y_hat, scales, means = self.two_pass(y, side)
        _, lik = self.gaussian_conditional(y, scales, means, _mode(training), rng)
        return {"y_hat": y_hat, "likelihood": lik, "scales": scales, "means": means}

    def start(self, side):
        return {"side": side, "y": jnp.zeros(side.shape[:3] + (self.context_prediction.in_features,), side.dtype)}

    def steps(self, latent: str, shape, at: Locate) -> list[P.StepGroup]:
        return _checkerboard_steps(latent, latent, shape, at, lambda part, state: state["side"],
                                   lambda root: at(root), (0, shape[-1]), self.table)

    @staticmethod
    def decoded(state):
        return state["y"]


def _checkerboard_steps(name, latent, shape, at, side_of, group_at, bounds, table):
    """The two checkerboard steps of the channel group ``bounds`` of ``latent``: ``side_of(part, state)`` gives
    the group's side information, ``group_at(root)`` its ``CheckerboardLatent``; decoded values are added into
    ``state["y"]``."""
    c0, c1 = bounds
    b, h, w, total = shape

    def predict(m, v, state, anchors):
        def fn(root, state):
            side = side_of(at(root), state)
            group = group_at(root)
            scales, means = group.pass_params(side, None if anchors else state["y"][..., c0:c1])
            return means, scales
        means, scales = m.apply(v, state, method=fn)
        return means, scales, state

    def update(m, v, state, values, anchors):
        return {**state, "y": state["y"].at[..., c0:c1].add(values)}

    entropy = lambda root: group_at(root).gaussian_conditional
    return P.checkerboard(name, table, latent, (b, h, w, c1 - c0), predict, update, channels=(c0, total),
                          entropy=entropy)


class ChannelGroupsLatent(nn.Module):
    """ELIC's uneven channel groups, coded one after another, each by its own ``CheckerboardLatent``; group k's
    side information is concat(channel context of earlier decoded groups, the hyperprior's side), the channel
    context a network per group (``channel_context[k]``, k >= 1) over all earlier groups, or (``chandelier``)
    over the first and the latest."""

    groups: Sequence[nn.Module]          # CheckerboardLatent per group
    channel_context: Any                 # {str(k): network} for k >= 1 (``str_keys``)
    sizes: tuple[int, ...]
    chandelier: bool = False
    table: str = "gaussian_conditional"
    keys = 1

    @property
    def bounds(self) -> list[tuple[int, int]]:
        return channel_bounds(self.sizes)

    def group_side(self, side, done, k: int):
        if not k:
            return side
        prev = done if not self.chandelier or k == 1 else [done[0], done[-1]]
        return jnp.concatenate([self.channel_context[str(k)](jnp.concatenate(prev, -1)), side], -1)

    def __call__(self, y, side, training: bool = False, rng=None):
        done, scales, means = [], [], []
        for k, (c0, c1) in enumerate(self.bounds):
            y_hat, s, m = self.groups[k].two_pass(y[..., c0:c1], self.group_side(side, done, k))
            done.append(y_hat)
            scales.append(s)
            means.append(m)
        scales, means, y_hat = (jnp.concatenate(t, -1) for t in (scales, means, done))
        _, lik = self.groups[0].gaussian_conditional(y, scales, means, _mode(training), rng)
        return {"y_hat": y_hat, "likelihood": lik, "scales": scales, "means": means}

    def start(self, side):
        return {"side": side, "y": jnp.zeros(side.shape[:3] + (sum(self.sizes),), side.dtype)}

    def steps(self, latent: str, shape, at: Locate) -> list[P.StepGroup]:
        out = []
        bounds = self.bounds
        for k, (c0, c1) in enumerate(bounds):
            def side_of(part, state, k=k):
                done = [state["y"][..., a:b] for a, b in bounds[:k]]
                return part.group_side(state["side"], done, k)
            out += _checkerboard_steps(f"{latent}{k}", latent, shape, at, side_of,
                                       lambda root, k=k: at(root).groups[k], (c0, c1), self.table)
        return out

    @staticmethod
    def decoded(state):
        return state["y"]


class ChannelSlicesLatent(nn.Module):
    """y in channel slices coded one after another (Minnen & Singh's channel-wise autoregression and what grew
    from it: TCM's slices, MLIC++'s multi-reference slices): slice k's Gaussian parameters from the side
    information and the slices decoded before it, by the model's networks (``nets``); each slice coded whole
    (``spatial="whole"``) or as checkerboard anchors, then the rest (``"checkerboard"``), and its decoded values
    optionally refined (latent residual prediction). In training each slice is rounded around its means with
    straight-through gradients (what the next slices and the synthesis see); the likelihood, of the noisy y, is
    taken once over the whole latent.

    ``nets``: a module without parameters of its own holding the model's per-slice networks (shared), with
    ``done`` the decoded slices before k (channels last) and ``ctx`` whatever its first call hands the next:

        whole:        params(k, side, done) -> (scales, means, ctx)
        checkerboard: anchor_params(k, side, done) -> (scales, means, ctx)
                      refine_anchor(k, side, done, ctx, anchors_hat) -> anchors_hat     (zero off the anchors)
                      nonanchor_params(k, side, done, ctx, anchors_hat) -> (scales, means)
        both:         refine(k, side, done, ctx, y_hat_k) -> y_hat_k

    Coding: per slice one step (whole; the slice's elements in ``layout`` order) or two (checkerboard; per
    channel, row by row, as ``plan.checkerboard_positions``)."""

    gaussian_conditional: nn.Module
    nets: nn.Module
    sizes: tuple[int, ...]
    spatial: str = "whole"
    anchor_parity: int = 0          # the anchors: (row + col) % 2 == anchor_parity
    layout: str = "nchw"            # element order of a whole slice's step
    table: str = "gaussian_conditional"
    keys = 1

    @property
    def bounds(self) -> list[tuple[int, int]]:
        return channel_bounds(self.sizes)

    def _anchors(self, shape):
        return jnp.asarray(P.checkerboard_mask(shape[1], shape[2], True, self.anchor_parity))[None, :, :, None]

    def slice_forward(self, k, y_k, side, done):
        """(y_hat_k, scales, means) of slice k (rounding with straight-through gradients)."""
        if self.spatial == "whole":
            scales, means, ctx = self.nets.params(k, side, done)
            return self.nets.refine(k, side, done, ctx, quantize(y_k, "ste", means)), scales, means
        anchor = self._anchors(y_k.shape)
        s_a, m_a, ctx = self.nets.anchor_params(k, side, done)
        a_hat = self.nets.refine_anchor(k, side, done, ctx, anchor * quantize(y_k, "ste", m_a))
        s_n, m_n = self.nets.nonanchor_params(k, side, done, ctx, a_hat)
        y_hat = self.nets.refine(k, side, done, ctx, a_hat + (1 - anchor) * quantize(y_k, "ste", m_n))
        return y_hat, jnp.where(anchor, s_a, s_n), jnp.where(anchor, m_a, m_n)

    def __call__(self, y, side, training: bool = False, rng=None):
        if self.spatial not in ("whole", "checkerboard"):
            raise ValueError(f"spatial must be 'whole' or 'checkerboard', got {self.spatial!r}")
        done, scales, means = [], [], []
        for k, (c0, c1) in enumerate(self.bounds):
            y_hat, s, m = self.slice_forward(k, y[..., c0:c1], side, done)
            done.append(y_hat)
            scales.append(s)
            means.append(m)
        scales, means, y_hat = (jnp.concatenate(t, -1) for t in (scales, means, done))
        _, lik = self.gaussian_conditional(y, scales, means, _mode(training), rng)
        return {"y_hat": y_hat, "likelihood": lik, "scales": scales, "means": means}

    def start(self, side):
        return {"side": side, "y": jnp.zeros(side.shape[:3] + (sum(self.sizes),), side.dtype)}

    def _done(self, state, k):
        return [state["y"][..., a:b] for a, b in self.bounds[:k]]

    def _write(self, state, k, ctx, y_hat_k):
        c0, c1 = self.bounds[k]
        y_hat_k = self.nets.refine(k, state["side"], self._done(state, k), ctx, y_hat_k)
        return {"side": state["side"], "y": state["y"].at[..., c0:c1].set(y_hat_k)}

    def steps(self, latent: str, shape, at: Locate) -> list[P.StepGroup]:
        b, h, w, total = shape
        out = []
        for k, (c0, c1) in enumerate(self.bounds):
            sub = (b, h, w, c1 - c0)
            if self.spatial == "whole":
                out.append(self._whole_step(f"{latent}{k}", latent, sub, k, (c0, total), at))
            else:
                out += self._checkerboard_steps(f"{latent}{k}", latent, sub, k, (c0, total), at)
        return out

    def _whole_step(self, name, latent, shape, k, channels, at):
        to_layout = (lambda x: jnp.transpose(x, (0, 3, 1, 2))) if self.layout == "nchw" else (lambda x: x)

        def predict(part, state):
            scales, means, ctx = part.nets.params(k, state["side"], part._done(state, k))
            return to_layout(means), to_layout(scales), ctx

        def pred(m, v, state, t):
            means, scales, ctx = m.apply(v, state, method=lambda root, st: predict(at(root), st))
            return means, scales, {**state, "ctx": ctx}

        def update(m, v, state, t, values):
            values = P.from_layout(shape, self.layout)(values)
            return m.apply(v, state, values, method=lambda root, st, y_k: at(root)._write(st, k, st["ctx"], y_k))

        pos = P.flat_positions(shape, self.layout, channels)
        return P.StepGroup(name, self.table, latent, 1, lambda t: pos, pred, update, _gaussian(at))

    def _checkerboard_steps(self, name, latent, shape, k, channels, at):
        def predict(m, v, state, anchors):
            def fn(root, state):
                part = at(root)
                side, done = state["side"], part._done(state, k)
                if anchors:
                    scales, means, ctx = part.nets.anchor_params(k, side, done)
                    return means, scales, {**state, "ctx": ctx}
                scales, means = part.nets.nonanchor_params(k, side, done, state["ctx"], state["anchors"])
                return means, scales, state
            return m.apply(v, state, method=fn)

        def update(m, v, state, values, anchors):
            def fn(root, state, values):
                part = at(root)
                if anchors:
                    a_hat = part.nets.refine_anchor(k, state["side"], part._done(state, k), state["ctx"], values)
                    return {**state, "anchors": a_hat}
                return part._write(state, k, state["ctx"], state["anchors"] + values)
            return m.apply(v, state, values, method=fn)

        return P.checkerboard(name, self.table, latent, shape, predict, update, self.anchor_parity, channels,
                              _gaussian(at))

    @staticmethod
    def decoded(state):
        return state["y"]


def chunks_of(t, keys, grid: int, chunk_ch: int) -> list:
    """(B, H, W, C) -> its chunks in coding order: chunk (s, r, c) is channel slice s of spatial block (r, c) of
    a ``grid`` x ``grid`` grid, (B, H/grid, W/grid, chunk_ch) each."""
    h, w = t.shape[1] // grid, t.shape[2] // grid
    return [t[:, r * h:(r + 1) * h, c * w:(c + 1) * w, s * chunk_ch:(s + 1) * chunk_ch] for s, r, c in keys]


def merge_chunks(chunks, keys, grid: int):
    """Inverse of ``chunks_of``."""
    at = dict(zip(keys, chunks))
    slices = sorted({s for s, _, _ in keys})
    return jnp.concatenate([jnp.concatenate([jnp.concatenate([at[(s, r, c)] for s in slices], -1)
                                             for c in range(grid)], 2) for r in range(grid)], 1)


class ChunkScanLatent(nn.Module):
    """y cut into chunks (channel slices x a ``grid`` x ``grid`` grid of spatial blocks) coded one after another
    in the order of ``chunk_keys`` ((slice, block row, block column) each), every chunk by one network body with
    its parameters stacked over the chunks, so one compiled function serves all of them, in training (a scan)
    and in coding (one plan group of K steps): Shen & Liu's channel-first zigzag chunk context. The likelihood,
    of the noisy y, is taken once over the whole latent; a step codes its chunk in (batch, channel, row, column)
    order, as CompressAI flattens a latent.

    ``nets`` (the model's networks, shared; ``state`` is whatever ``start`` makes, a pytree):

        start(side) -> state                       what the chunks need, computed once, and the carry
        scan(state, ys, training, rng) -> (means, scales, y_hats)   all chunks (K, B, h, w, c): the forward,
                                                   each chunk rounded around its means with straight-through
                                                   gradients
        params(state, k) -> (means, scales)        chunk k (k traced)
        decode(state, y_bar, k) -> (state, y_hat)  chunk k from y_bar = round(y - means) + means
    """

    gaussian_conditional: nn.Module
    nets: nn.Module
    chunk_keys: tuple
    grid: int
    chunk_ch: int
    table: str = "gaussian_conditional"
    keys = 2                        # the likelihood's noise, and the nets' (e.g. drop-path)

    def __call__(self, y, side, training: bool = False, rng=None):
        ry, rn = rng if training else (None, None)
        ys = jnp.stack(chunks_of(y, self.chunk_keys, self.grid, self.chunk_ch))
        means, scales, y_hats = self.nets.scan(self.nets.start(side), ys, training, rn)
        means, scales, y_hat = (merge_chunks(list(t), self.chunk_keys, self.grid) for t in (means, scales, y_hats))
        _, lik = self.gaussian_conditional(y, scales, means, _mode(training), ry)
        return {"y_hat": y_hat, "likelihood": lik, "scales": scales, "means": means}

    def start(self, side):
        first = jax.tree_util.tree_leaves(side)[0]
        shape = first.shape[:3] + (len({s for s, _, _ in self.chunk_keys}) * self.chunk_ch,)
        return {"nets": self.nets.start(side), "y": jnp.zeros(shape, first.dtype)}

    def steps(self, latent: str, shape, at: Locate) -> list[P.StepGroup]:
        b, H, W, M = shape
        g, cw = self.grid, self.chunk_ch
        h, w = H // g, W // g
        pos = np.arange(b * H * W * M, dtype=np.int32).reshape(shape)
        elems = np.stack([c.transpose(0, 3, 1, 2).reshape(-1) for c in chunks_of(pos, self.chunk_keys, g, cw)])
        origins = np.asarray([(0, r * h, c * w, s * cw) for s, r, c in self.chunk_keys], np.int32)
        nchw = lambda t: jnp.transpose(t, (0, 3, 1, 2))

        def predict(m, v, state, t):
            means, scales = m.apply(v, state["nets"], t, method=lambda root, st, k: at(root).nets.params(st, k))
            return nchw(means), nchw(scales), state

        def update(m, v, state, t, values):
            y_bar = jnp.transpose(values.reshape(b, cw, h, w), (0, 2, 3, 1))
            nets, y_hat = m.apply(v, state["nets"], y_bar, t,
                                  method=lambda root, st, y_bar, k: at(root).nets.decode(st, y_bar, k))
            origin = tuple(jnp.asarray(origins)[t])
            return {"nets": nets, "y": jax.lax.dynamic_update_slice(state["y"], y_hat.astype(state["y"].dtype),
                                                                      origin)}

        return [P.StepGroup(latent, self.table, latent, len(self.chunk_keys), lambda t: jnp.asarray(elems)[t],
                            predict, update, _gaussian(at))]

    @staticmethod
    def decoded(state):
        return state["y"]


class VariableStepLatent(nn.Module):
    """A hyper-latent under a factorized prior whose quantization step follows the rate (CompressAI's
    ``EntropyBottleneckVbr`` with ``vr_entbttlnck``): step = max(``step_net``(1 / gain), ``step_bound``)."""

    entropy_bottleneck: nn.Module
    step_net: nn.Module
    step_bound: float = 0.5
    table: str = "entropy_bottleneck"
    rated = True   # takes the rate (``gain``) as an argument

    def step(self, gain):
        return lower_bound(self.step_net(jnp.reshape(1.0 / gain, (1,))), self.step_bound)[0]

    def __call__(self, x, training: bool = False, rng=None, gain=None):
        return self.entropy_bottleneck.variable(x, self.step(gain), _mode(training), rng)

    def scaled(self, x, gain):
        """What the codec codes: (x - median) / step, whose rounding is the official symbol."""
        return (x - self.entropy_bottleneck.medians()) / self.step(gain)

    def steps(self, latent: str, shape, at: Locate, update) -> list[P.StepGroup]:
        """One step over the scaled latent (means 0, table index the channel, the rate's own tables); the
        decoded z_hat = symbol * step + median goes to ``update(m, v, state, z_hat)``."""
        c = shape[-1]

        def upd(m, v, state, q):
            z_hat = m.apply(v, q, state["gain"], method=lambda root, q, g: at(root).dequantize(q, g))
            return update(m, v, state, z_hat)

        return [P.factorized(latent, self.table, latent, shape, lambda m, v: jnp.zeros((c,), jnp.float32), upd)]

    def dequantize(self, q, gain):
        return q * self.step(gain) + self.entropy_bottleneck.medians()


class OffsetGaussianLatent(nn.Module):
    """y at a variable rate with quantization-reconstruction offsets (Kamisli, Racape and Choi 2024; CompressAI's
    VBR models): with gain g (1 / the quantization step), the coded integer is q = round(v), v = (y - mean) g,
    and y_hat = sign(v) (|q| + offset) / g + mean, the offset (in steps) from ``offsets`` on (max(scale g,
    bound), g) along a last axis of 2, zero where q = 0. The likelihood is the Gaussian's of y g with scale and
    mean times g. ``means`` as in ``GaussianLatent``. The forward also returns ``offsets``, the network's raw
    output (before its sign flip and the zeroing)."""

    gaussian_conditional: nn.Module
    offsets: nn.Module
    means: bool = True
    table: str = "gaussian_conditional"
    keys = 1
    rated = True

    def params(self, side):
        return _scales_means(side, self.means)

    def reconstruct(self, signs, q_abs, scales, means, gain):
        return reconstruct_with_offsets(self.offsets, self.gaussian_conditional.scale_bound, signs, q_abs, scales,
                                        means, gain)

    def __call__(self, y, side, training: bool = False, rng=None, gain=None):
        scales, means = self.params(side)
        v = (y - (0.0 if means is None else means)) * gain
        y_hat, raw = self.reconstruct(jax.lax.stop_gradient(jnp.sign(v)), ste_round(jnp.abs(v)), scales, means, gain)
        _, lik = self.gaussian_conditional(y * gain, scales * gain, None if means is None else means * gain,
                                           _mode(training), rng)
        return _without_none(y_hat=y_hat, likelihood=lik, scales=scales, means=means, offsets=raw)

    def scaled(self, y, gain):
        """What the codec codes: y times the gain (CompressAI's compress codes round(y g - mean g))."""
        return y * gain

    def start(self, side, gain):
        return {"side": side, "gain": gain}

    def steps(self, latent: str, shape, at: Locate) -> list[P.StepGroup]:
        """All of y in one step, in the scaled domain: means mean g, scales scale g (the table indexes the
        official codec looks up); the update reconstructs y_hat with the offsets."""
        def predict(part, state):
            scales, means = part.params(state["side"])
            g = state["gain"]
            return (jnp.zeros_like(scales) if means is None else means * g), scales * g

        def update(part, state, values):
            scales, means = part.params(state["side"])
            g = state["gain"]
            q = jnp.round(values - (0.0 if means is None else means * g))  # the decoded integer, exactly
            return {**state, latent: part.reconstruct(jnp.sign(q), jnp.abs(q), scales, means, g)[0]}

        return [P.whole(latent, self.table, latent, shape, on_part(at, predict), on_part(at, update),
                        entropy=_gaussian(at))]

    @staticmethod
    def decoded(state):
        return state["y"]


def reconstruct_with_offsets(offsets: nn.Module, bound: float, signs, q_abs, scales, means, gain):
    """Kamisli et al.'s reconstruction: y_hat = sign (|q| + offset) / g + mean from the integer's sign and
    magnitude (straight-through in training), the offset -``offsets``(max(scale g, bound), g) (in steps) and
    zero where q = 0; also returns the network's raw output."""
    stdev = lower_bound(scales * gain, bound)
    raw = offsets(jnp.stack([stdev, jnp.broadcast_to(gain, stdev.shape)], axis=-1))[..., 0]
    y_hat = signs * (q_abs + jnp.where(q_abs < 1e-4, 0.0, -raw)) * (1.0 / gain)
    return y_hat + (0.0 if means is None else means), raw


class OffsetContextLatent(MaskedContextLatent):
    """The joint autoregressive prior at a variable rate (CompressAI's ``mbt2018-vbr``, Kamisli et al. 2024):
    ``MaskedContextLatent``'s context and entropy parameters, the rate's ``rate_context``(g) (2M) added to the
    context, y quantized at step 1 / g with ``OffsetGaussianLatent``'s reconstruction offsets (``offsets``).

    The context sees the offset-reconstructed y_hat of earlier positions, in training too (CompressAI's
    ``ste_recursive``), so the forward itself is sequential: here a scan over the wavefront, the codec's steps
    (W + 3H - 3 of them, not H W as the official loop). The likelihood is the Gaussian's of (y - mean) g,
    zero-mean, at scale g; the codec codes round(y g - mean g) (the official compress rounds (y - mean) g:
    the same but for values within float error of a rounding boundary)."""

    offsets: nn.Module = None        # (max(scale g, bound), g) -> raw offset (CompressAI's ``QuantABCD``)
    rate_context: nn.Module = None   # g (1,) -> 2M (``scale_to_context``)
    keys = 1
    rated = True

    def reconstruct(self, signs, q_abs, scales, means, gain):
        return reconstruct_with_offsets(self.offsets, self.gaussian_conditional.scale_bound, signs, q_abs, scales,
                                        means, gain)

    def __call__(self, y, side, training: bool = False, rng=None, gain=None):
        y = jnp.asarray(y)
        b, h, w, m = y.shape
        if self.is_initializing():  # the networks' variables, before the scan reads them
            self.params(side, y)
            self.offsets(jnp.zeros((1, 2), y.dtype))
        rows, cols, valid = jax.vmap(lambda t: P.wavefront_rows_cols(t, h, w))(
            jnp.arange(P.wavefront_count(h, w), dtype=jnp.int32))

        def step(state, rcv):
            r, c, ok = rcv
            means, scales = self.wave_params(state, r, c)
            v = (y[:, r, c] - means) * gain
            y_q, raw = self.reconstruct(jax.lax.stop_gradient(jnp.sign(v)), ste_round(jnp.abs(v)), scales, means,
                                        gain)
            return self.write(state, r, c, ok, y_q), (means, scales, raw)

        state, found = jax.lax.scan(step, self.start(side, gain), (rows, cols, valid))
        # each step's (B, P, M) back at its positions (padding dropped)
        rr = jnp.where(valid, rows, h).reshape(-1)
        means, scales, raw = (jnp.zeros_like(y).at[:, rr, cols.reshape(-1)].set(
            jnp.moveaxis(a, 0, 1).reshape(b, -1, m), mode="drop") for a in found)
        _, lik = self.gaussian_conditional((y - means) * gain, scales * gain, None, _mode(training), rng)
        return {"y_hat": self.decoded(state), "likelihood": lik, "scales": scales, "means": means, "offsets": raw}

    def scaled(self, y, gain):
        return y * gain

    def start(self, side, gain):
        """``MaskedContextLatent``'s state plus the rate: g, its context offset, and the last prediction's
        means and scales (``wave``) for the update."""
        b, h, w, _ = side.shape
        state = super().start(side)
        wave = jnp.zeros((b, P.wavefront_size(h, w), self.context_prediction.in_features), side.dtype)
        return {**state, "gain": gain, "wave": (wave, wave),
                "ctx_offset": self.rate_context(jnp.reshape(gain, (1, 1)).astype(side.dtype))[0]}

    def steps(self, latent: str, shape, at: Locate) -> list[P.StepGroup]:
        """The wavefront in the scaled domain: means mean g, scales scale g (the official table indexes); the
        update reconstructs the decoded integers with the offsets."""
        def predict(part, state, rows, cols, valid):
            means, scales = part.wave_params(state, rows, cols)
            g = state["gain"]
            return means * g, scales * g, (means, scales)

        def update(part, state, rows, cols, valid, values):
            (means, scales), g = state["wave"], state["gain"]
            q = jnp.round(values - means * g)  # the decoded integer, exactly
            return part.write(state, rows, cols, valid, part.reconstruct(jnp.sign(q), jnp.abs(q), scales, means, g)[0])

        return [P.wavefront(latent, self.table, latent, shape, on_part(at, predict), on_part(at, update),
                            entropy=_gaussian(at))]


def hwc_index(m: np.ndarray, src_shape) -> np.ndarray:
    """Flat (C, H, W) indices into a source of ``src_shape`` (-1: a zero, kept) as flat (H, W, C) indices: index
    maps written in the official channels-first terms, for channels-last tensors. The arrangement is kept."""
    c_, h_, w_ = src_shape
    ch, rest = np.divmod(m, h_ * w_)
    i, j = np.divmod(rest, w_)
    return np.where(m < 0, -1, (i * w_ + j) * c_ + ch).astype(np.int32)


def take_map(x, m: np.ndarray):
    """x (B, H, W, C) gathered by a static map of flat HWC indices (any shape; -1 gives 0): (B, *m.shape)."""
    b = x.shape[0]
    flat = jnp.concatenate([x.reshape(b, -1), jnp.zeros((b, 1), x.dtype)], 1)
    idx = np.where(m < 0, flat.shape[1] - 1, m).reshape(-1)
    return flat[:, idx].reshape((b,) + m.shape)


def put_map(shape, m: np.ndarray, values):
    """Zeros of ``shape`` (B, H, W, C) with ``values`` (B, n) written at the flat HWC indices ``m`` (n,)."""
    b = shape[0]
    return jnp.zeros((b, int(np.prod(shape[1:]))), values.dtype).at[:, m].set(values).reshape(shape)


class ProgressiveLatent(nn.Module):
    """y coded in a fixed sequence of steps, each a static set of its elements (HPCM's hierarchical progressive
    context: 2 steps on y subsampled by 4, 3 at half resolution, 6 at full; any such schedule). Step k's
    Gaussian-family parameters come from the model's networks on everything decoded before it; the symbols are
    round(y - mean), the decoded values symbol + mean; the likelihood is taken once over the whole latent, of the
    residuals (noisy in training, where the values passed on are rounded with straight-through gradients).

    ``nets`` (the model's networks, no parameters of its own), at y's shape:

        schedule(y_shape) -> [(level_shape, pack, positions)]   static, per step: the NHWC shape of the grid its
            parameters live on, ``pack`` the flat indices into that grid of its symbols in coding order and
            ``positions`` their flat indices into y (per batch element)
        start(side) -> state
        params(k, state) -> (scales, means, state)      on step k's grid
        advance(k, state, y_hat_k) -> state              y_hat_k: step k's decoded values on its grid, zeros
                                                          elsewhere; the state's "y" ends as the whole y_hat
    """

    entropy: nn.Module
    nets: nn.Module
    table: str = "ggm"
    keys = 1

    def run(self, y, side, training: bool = False):
        """(y_hat, residuals, scales at y's elements, each step's (scales, means) on its grid)."""
        b = y.shape[0]
        flat = y.reshape(b, -1).astype(jnp.float32)  # rounding and the decoded values in float32 (bf16 training)
        res = jnp.zeros_like(flat)
        scales_y = jnp.zeros_like(flat)
        state, trace = self.nets.start(side), []
        for k, (grid, pack, pos) in enumerate(self.nets.schedule(y.shape)):
            scales, means, state = self.nets.params(k, state)
            trace.append((scales, means))
            m_k = take_map(means, pack).astype(jnp.float32)
            r_k = flat[:, pos] - m_k
            q_k = ste_round(r_k) if training else jnp.round(r_k)
            state = self.nets.advance(k, state, put_map(means.shape, pack, q_k + m_k))
            res = res.at[:, pos].set(r_k)
            scales_y = scales_y.at[:, pos].set(take_map(scales, pack).astype(jnp.float32))
        return state["y"], res.reshape(y.shape), scales_y.reshape(y.shape), trace

    def __call__(self, y, side, training: bool = False, rng=None):
        y_hat, res, scales, _ = self.run(y, side, training)
        r = res + jax.random.uniform(rng, res.shape, res.dtype, -0.5, 0.5) if training else jnp.round(res)
        return {"y_hat": y_hat, "likelihood": self.entropy.likelihood(r, scales), "scales": scales,
                "residuals": res}

    def start(self, side):
        return self.nets.start(side)

    def steps(self, latent: str, shape, at: Locate) -> list[P.StepGroup]:
        b, size = shape[0], int(np.prod(shape[1:]))
        out = []
        for k, (grid, pack, pos) in enumerate(self.nets.schedule(shape)):
            positions = (np.arange(b, dtype=np.int32)[:, None] * size + pos[None]).reshape(-1)

            def predict(m, v, state, t, k=k, pack=pack):
                def fn(root, state):
                    scales, means, state = at(root).nets.params(k, state)
                    return take_map(means, pack).reshape(-1), take_map(scales, pack).reshape(-1), state
                return m.apply(v, state, method=fn)

            def update(m, v, state, t, values, k=k, pack=pack, grid=grid):
                fn = lambda root, state, values: at(root).nets.advance(
                    k, state, put_map((b,) + tuple(grid), pack, values.reshape(b, -1)))
                return m.apply(v, state, values, method=fn)

            out.append(P.StepGroup(f"{latent}{k}", self.table, latent, 1, lambda t, p=positions: p, predict, update,
                                   lambda root: at(root).entropy))
        return out

    @staticmethod
    def decoded(state):
        return state["y"]


class Branches(nn.Module):
    """Several networks on one input (e.g. separate mean and scale hyper syntheses): a tuple of their outputs,
    or (``concat``) one array of them side by side on the channels."""

    modules: Sequence[nn.Module]
    concat: bool = False

    def __call__(self, x):
        out = tuple(m(x) for m in self.modules)
        return jnp.concatenate(out, -1) if self.concat else out


class Hyperprior(nn.Module):
    """Balle et al.'s hyperprior: z = h_a(y) (or of |y|) under ``z`` (an ``EntropyBottleneckLatent``), the side
    information h_s(z_hat) for ``y``, a conditional part. The plan codes z, then y's steps."""

    h_a: nn.Module
    h_s: nn.Module
    z: nn.Module
    y: nn.Module
    abs_input: bool = False   # Balle et al.'s scale hyperprior: h_a sees |y|
    side_key: str | None = None  # where given, the forward returns the side information under this key

    def side_latents(self, y) -> dict:
        return {"z": self.h_a(jnp.abs(y) if self.abs_input else y)}

    def __call__(self, y, training: bool = False, rng=None, gain=None):
        """``gain``: the rate of a variable-rate model, handed to the parts that take one (``rated``)."""
        keys = jax.random.split(rng, 1 + self.y.keys) if training else [None] * (1 + self.y.keys)
        z = self.side_latents(y)["z"]
        z_hat, z_lik = self.z(z, training, keys[0], **_rate(self.z, gain))
        side = self.h_s(z_hat)
        out = self.y(y, side, training, keys[1] if self.y.keys == 1 else tuple(keys[1:]), **_rate(self.y, gain))
        lik = out.pop("likelihood")
        if self.side_key:
            out[self.side_key] = side
        return {**out, "likelihoods": {"y": lik, "z": z_lik}, "z": z, "z_hat": z_hat}

    def start(self, z_hat, state=None):
        """The y part's plan state once z_hat is decoded (a rated part also keeps the rate from ``state``)."""
        side = self.h_s(z_hat)
        return self.y.start(side, state["gain"]) if getattr(self.y, "rated", False) else self.y.start(side)

    def scaled_latents(self, y, gain) -> dict:
        """A variable-rate tree's latents as its codec codes them (each rated part's ``scaled``)."""
        z = self.side_latents(y)["z"]
        return {"y": self.y.scaled(y, gain) if getattr(self.y, "rated", False) else y,
                "z": self.z.scaled(z, gain) if getattr(self.z, "rated", False) else z}

    def plan(self, shapes, at: Locate) -> P.Plan:
        z = self.z.steps("z", shapes["z"], lambda root: at(root).z,
                         on_part(at, lambda part, state, z_hat: part.start(z_hat, state)))
        y = self.y.steps("y", shapes["y"], lambda root: at(root).y)
        decoded = type(self.y).decoded
        return P.Plan(tuple(z + y), shapes, lambda state: {"y": decoded(state)})


class FactorizedLatentCodec(nn.Module):
    """Balle et al.'s factorized prior as the whole tree: y alone under an ``EntropyBottleneckLatent``."""

    y: nn.Module

    def side_latents(self, y) -> dict:
        return {}

    def __call__(self, y, training: bool = False, rng=None):
        y_hat, lik = self.y(y, training, rng)
        return {"y_hat": y_hat, "likelihoods": {"y": lik}}

    def plan(self, shapes, at: Locate) -> P.Plan:
        return P.Plan(tuple(self.y.steps("y", shapes["y"], lambda root: at(root).y)), shapes)


def str_keys(modules: dict) -> dict:
    """A model's dict of networks keyed by int, as a part's field: Flax (0.10) takes only string keys there."""
    return {str(k): v for k, v in modules.items()}


def _scales_means(side, means: bool):
    """(scales, means) from the side information: split in two along the channels, scales first (CompressAI's
    ``chunk(2, 1)``), or all of it the scales (means None)."""
    return tuple(jnp.split(side, 2, axis=-1)) if means else (side, None)


def _rate(part, gain) -> dict:
    if getattr(part, "rated", False):
        if gain is None:
            raise TypeError(f"{type(part).__name__} codes at a variable rate: it needs the gain")
        return {"gain": gain}
    return {}


def _gaussian(at: Locate) -> Callable:
    return lambda root: at(root).gaussian_conditional


def _without_none(**kw) -> dict:
    return {k: v for k, v in kw.items() if v is not None}
