"""Codec plans (docs/DESIGN.md, decision 3): which latent elements are coded, in which order, from what.

A model gives its plan for given latent shapes: a sequence of step groups. A group runs one step function
``count`` times over a traced step index ``t``, so it costs one compiled function however often it runs (the
wavefront of an autoregressive context runs W + 3H - 3 times). Every step says which elements it codes: flat
positions into its latent (C order of the latent's NHWC shape), ``-1`` marking padding, so steps of varying size
code only real elements over a fixed-size set, and ``check_coverage`` can prove that a plan codes every element
exactly once. This module knows neither coders nor models; ``jaxlic.compiled`` runs plans, models build them with
the step builders below.

Step functions (``m`` the Flax module, ``v`` its variables, ``t`` a traced int32 scalar):

    predict(m, v, state, t) -> (means, params, state)    arrays of the elements' size, in their order
    update(m, v, state, t, values) -> state               values = decoded symbols + means

``params`` are the scales of the group's Gaussian table family (floats), which the codec alone turns into table
indexes (``jaxlic.compiled.table_indexes``: one function for encoder and decoder, where a simulated platform's drift
and the cross-platform checks apply), or the indexes themselves (integers: a factorized prior's channels).

The state keeps one pytree structure across the steps of a group (fixed-shape buffers updated in place).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class StepGroup:
    name: str         # names the group's symbols in results (``symbols["y"]``)
    table: str        # coding table family; also the stream its symbols go into
    latent: str       # the latent its elements belong to
    count: int        # how many steps; t = 0 .. count - 1
    elements: Callable[[jax.Array], jax.Array]  # t -> int32 flat positions, -1 = padding (fixed size over t)
    predict: Callable[..., tuple]
    update: Callable[..., dict]
    # the entropy model that turns the step's scales into table indexes (``build_indexes``, ``nearest_boundary``,
    # ``boundary_spacing``), found in the bound model: root -> module. None where ``predict`` gives indexes.
    entropy: Callable[[Any], Any] | None = None


@dataclasses.dataclass(frozen=True)
class Plan:
    groups: tuple[StepGroup, ...]
    shapes: Mapping[str, tuple[int, ...]]  # the coded latents, NHWC
    # the decoded latents from the final state, e.g. {"y": y_hat}, and what the synthesis takes
    latents: Callable[[dict], dict] = lambda state: {k: v for k, v in state.items() if k in ("y", "z")}


def check_coverage(plan: Plan) -> dict[str, int]:
    """Asserts that the plan codes every element of every latent exactly once; returns elements per latent."""
    counts = {k: np.zeros(int(np.prod(s)), np.int64) for k, s in plan.shapes.items()}
    for g in plan.groups:
        if g.latent not in counts:
            raise AssertionError(f"group {g.name!r} codes unknown latent {g.latent!r}")
        fn = jax.jit(g.elements)
        for t in range(g.count):
            e = np.asarray(fn(jnp.int32(t))).reshape(-1)
            if (e < -1).any() or (e >= counts[g.latent].size).any():
                raise AssertionError(f"group {g.name!r} step {t}: positions out of range")
            np.add.at(counts[g.latent], e[e >= 0], 1)
    for k, c in counts.items():
        if (c != 1).any():
            raise AssertionError(f"latent {k!r}: {int((c == 0).sum())} elements never coded, "
                                 f"{int((c > 1).sum())} coded more than once")
    return {k: int(c.size) for k, c in counts.items()}


# --- element layouts ------------------------------------------------------------------------------------
def flat_positions(shape: Sequence[int], layout: str = "nhwc", channels=None) -> np.ndarray:
    """All positions of an NHWC latent in coding order: ``nhwc`` (C order) or ``nchw`` (CompressAI's).
    ``channels=(first, total)``: ``shape`` is a channel slice of a latent with ``total`` channels, starting at
    ``first`` (positions into the whole latent)."""
    b, h, w, c = shape
    first, total = channels or (0, c)
    idx = np.arange(b * h * w * total, dtype=np.int32).reshape(b, h, w, total)[..., first:first + c]
    if layout == "nchw":
        idx = idx.transpose(0, 3, 1, 2)
    elif layout != "nhwc":
        raise ValueError(f"layout must be 'nhwc' or 'nchw', got {layout!r}")
    return idx.reshape(-1)


def scatter(buffer: jax.Array, positions: jax.Array, values: jax.Array) -> jax.Array:
    """``buffer`` with ``values`` written at flat ``positions`` (padding, -1, dropped)."""
    flat = buffer.reshape(-1)
    pos = positions.reshape(-1)
    pos = jnp.where(pos < 0, flat.size, pos)  # out of range: dropped
    return flat.at[pos].set(values.reshape(-1).astype(flat.dtype), mode="drop").reshape(buffer.shape)


def gather(latent: jax.Array, positions: jax.Array) -> jax.Array:
    """The latent's values at flat ``positions`` (0 at padding)."""
    pos = positions.reshape(-1)
    return jnp.where(pos >= 0, latent.reshape(-1)[jnp.maximum(pos, 0)], 0).astype(latent.dtype)


# --- step builders ----------------------------------------------------------------------------------------
def whole(name: str, table: str, latent: str, shape, predict, update=None, layout: str = "nhwc",
          entropy=None, channels=None) -> StepGroup:
    """One step coding a whole latent at once (a factorized z; a Gaussian y given a hyperprior, mean-scale or
    scale-only), or a channel slice of it (``channels`` as in ``flat_positions``). ``predict(m, v, state) ->
    (means, params)`` in ``layout``; by default the update writes the values into ``state[latent]``."""
    pos = flat_positions(shape, layout, channels)  # numpy: a device array made here would wait for the device
    nhwc = from_layout(shape, layout)

    def upd(m, v, state, t, values):
        values = nhwc(values)
        return update(m, v, state, values) if update else {**state, latent: values}

    return StepGroup(name, table, latent, 1, lambda t: pos,
                     lambda m, v, state, t: (*predict(m, v, state), state), upd, entropy)


def from_layout(shape, layout):
    b, h, w, c = shape
    if layout == "nchw":
        return lambda x: jnp.transpose(x.reshape(b, c, h, w), (0, 2, 3, 1))
    return lambda x: x.reshape(shape)


def factorized(name: str, table: str, latent: str, shape, medians, update=None, layout: str = "nhwc") -> StepGroup:
    """A latent under a per-channel factorized prior (the hyper-latent z): means are the channel medians
    (``medians(m, v)``, shape (C,)), table index = channel."""
    b, h, w, c = shape

    def predict(m, v, state):
        med = medians(m, v)
        means = jnp.broadcast_to(med, shape)
        idx = jnp.broadcast_to(jnp.arange(c, dtype=jnp.int32), shape)
        if layout == "nchw":
            means, idx = jnp.transpose(means, (0, 3, 1, 2)), jnp.transpose(idx, (0, 3, 1, 2))
        return means, idx

    return whole(name, table, latent, shape, predict, update, layout)


def checkerboard_positions(shape, anchors: bool, anchor_parity: int = 0, channels=None) -> np.ndarray:
    """Flat NHWC positions of one checkerboard half, in (b, c, row, column) order: anchors are the positions
    with (row + column) % 2 == anchor_parity. ``channels=(first, total)``: ``shape`` is a channel group of a
    latent with ``total`` channels, starting at ``first``."""
    b, h, w, c = shape
    first, total = channels or (0, c)
    idx = np.arange(b * h * w * total, dtype=np.int32).reshape(b, h, w, total)[..., first:first + c]
    idx = idx.transpose(0, 3, 1, 2)
    r, col = np.mgrid[:h, :w]
    keep = ((r + col) % 2 == anchor_parity) == anchors
    return idx[:, :, keep].reshape(-1)  # keep is row-major: per row, left to right


def checkerboard(name: str, table: str, latent: str, shape, predict, update, anchor_parity: int = 0,
                 channels=None, entropy=None):
    """Two steps over one latent (or a channel group of it: ``channels`` as in ``checkerboard_positions``): the
    checkerboard anchors, then the rest. ``predict(m, v, state, anchors: bool) -> (means, params, state)`` and
    ``update(m, v, state, values, anchors) -> state`` with NHWC arrays of ``shape``, zero (values) or ignored
    (predictions) off the half; this builder picks and places the half."""
    b, h, w, c = shape
    out = []
    for anchors in (True, False):
        keep = checkerboard_mask(h, w, anchors, anchor_parity)  # numpy constants, as in ``whole``
        pos = checkerboard_positions(shape, anchors, anchor_parity, channels)
        local = checkerboard_positions(shape, anchors, anchor_parity)
        pick = lambda x, keep=keep: jnp.transpose(x, (0, 3, 1, 2))[:, :, keep].reshape(-1)

        def pred(m, v, state, t, anchors=anchors, pick=pick):
            means, idx, state = predict(m, v, state, anchors)
            return pick(means), pick(idx), state

        def upd(m, v, state, t, values, anchors=anchors, local=local):
            full = scatter(jnp.zeros(shape, values.dtype), local, values)
            return update(m, v, state, full, anchors)

        out.append(StepGroup(f"{name}_{'anchor' if anchors else 'nonanchor'}", table, latent, 1,
                             lambda t, pos=pos: pos, pred, upd, entropy))
    return out


def checkerboard_mask(h: int, w: int, anchors: bool = True, anchor_parity: int = 0) -> np.ndarray:
    """(h, w) bool: the anchors ((row + col) % 2 == anchor_parity), or the rest."""
    r, c = np.mgrid[:h, :w]
    return ((r + c) % 2 == anchor_parity) == anchors


def wavefront_count(h: int, w: int) -> int:
    """Steps of the 5x5 type-A masked-context wavefront: all (i, j) with t = j + 3 i decode together."""
    return w + 3 * h - 3


def wavefront_size(h: int, w: int) -> int:
    """Most positions on one wavefront (the padded step size)."""
    return min(h, (w - 1) // 3 + 1)


def wavefront_rows_cols(t: jax.Array, h: int, w: int):
    """Rows and columns of the positions of step ``t`` (fixed size, padded) and which are real."""
    p = wavefront_size(h, w)
    i0 = jnp.maximum(0, (t - w + 3) // 3)  # ceil((t - w + 1) / 3): the first row whose column is < w
    i = i0 + jnp.arange(p, dtype=jnp.int32)
    j = t - 3 * i
    valid = (i < h) & (j >= 0) & (j < w)
    return jnp.where(valid, i, 0), jnp.where(valid, j, 0), valid


def wavefront_buckets(p: int) -> tuple[int, ...]:
    """The step sizes a wavefront computes: its real positions are always a prefix of the P padded ones, and the
    steps on the ramps at both ends hold few (1, 1, 1, 2, 2, 2, ...), so a step runs the smallest of P / 16,
    P / 4, P / 2 and P that holds them: the network is not padded to P where it is cheaper small (XLA:CPU: 0.6,
    1.3, 2.5, 2.9 ms for mbt2018's context and entropy parameters at 1, 4, 8, 16 positions). A fixed number of
    sizes in one switch, so compile time still does not grow with the image."""
    return tuple(sorted({max(1, p // 16), max(1, p // 4), max(1, p // 2), p}))


def wavefront(name: str, table: str, latent: str, shape, predict, update, entropy=None) -> StepGroup:
    """The raster schedule of a 5x5 masked (type A) context as a wavefront: position (i, j) depends only on
    positions with a smaller t = j + 3 i, so each step codes all positions of one t together. ``predict(m, v,
    state, rows, cols, valid) -> (means, indexes)`` and ``update(m, v, state, rows, cols, valid, values)
    -> state`` see (B, P, C) arrays for the P positions of the step (predict: for P the step's bucket).
    ``predict`` may return a third item, arrays (B, P, ...) the update needs too (what the prediction computed
    on the way, not computed twice): they go, padded to the largest bucket, into ``state["wave"]``, which the
    part's start state must hold at that size."""
    b, h, w, c = shape
    buckets = wavefront_buckets(wavefront_size(h, w))

    def rows_cols(t):
        return wavefront_rows_cols(t, h, w)

    def elements(t):
        i, j, valid = rows_cols(t)
        pos = ((jnp.arange(b)[:, None, None] * h + i[None, :, None]) * w + j[None, :, None]) * c \
            + jnp.arange(c)[None, None, :]
        return jnp.where(valid[None, :, None], pos, -1).astype(jnp.int32)

    def bucketed(m, v, state, t):
        rows, cols, valid = rows_cols(t)

        def run(n):
            out = predict(m, v, state, rows[:n], cols[:n], valid[:n])
            pad = lambda a: jnp.pad(a, [(0, 0), (0, buckets[-1] - n)] + [(0, 0)] * (a.ndim - 2))
            return jax.tree_util.tree_map(pad, out)

        which = jnp.searchsorted(jnp.asarray(buckets), jnp.sum(valid))
        means, idx, *wave = jax.lax.switch(which, [lambda n=n: run(n) for n in buckets])
        return means, idx, {**state, "wave": wave[0]} if wave else state

    return StepGroup(name, table, latent, wavefront_count(h, w), elements, bucketed,
                     lambda m, v, state, t, values: update(m, v, state, *rows_cols(t), values.reshape(b, -1, c)),
                     entropy)
