"""The compiled form of a plan (``jaxlic.plan``) for one latent layout, and the loop that runs it.

A plan is a sequence of step groups; each step codes a set of elements with pure functions of the decoded state:
``predict`` gives the means and table indexes of its elements, ``update`` folds the decoded values into the state
(for MLIC++ also the latent residual prediction). The encoder and the decoder run the very same jitted step
functions in the same order through one loop (``CompiledPlan.run``); they differ only in the ``code`` callback,
which writes or reads the range coder. The decoder therefore sees exactly the inputs the encoder saw, by
construction.
"""
from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxlic.coding.protection import simulate_drift
from jaxlic.entropy.quantization import symbols_of
from jaxlic.plan import Plan, gather
from jaxlic import xla_cpu


def table_indexes(model, variables, group, params: jax.Array) -> jax.Array:
    """The one place the codec turns a step's prediction into coding-table indexes, for encoder and decoder alike.
    Integer ``params`` are indexes already (a factorized prior's channels); floating ones are scales, looked up
    by the ``build_indexes`` of the group's entropy model (``StepGroup.entropy``)."""
    if jnp.issubdtype(params.dtype, jnp.integer):
        return params
    return model.apply(variables, params, method=lambda m, s: _entropy_model(group, m).build_indexes(s))


def near_boundaries(model, variables, group, params: jax.Array, margin) -> jax.Array:
    """For each element, the table boundary its scale lies within relative distance ``margin`` of, or -1
    (``GaussianConditional.nearest_boundary``; the repair, ``jaxlic.coding.repair``). Indexes given directly
    (integer ``params``) are exact on every machine: -1."""
    if jnp.issubdtype(params.dtype, jnp.integer):
        return jnp.full(params.shape, -1, jnp.int32).reshape(-1)
    return model.apply(variables, params, margin,
                       method=lambda m, s, d: _entropy_model(group, m).nearest_boundary(s, d)).reshape(-1)


def _entropy_model(group, root):
    if group.entropy is None:
        raise TypeError(f"step group {group.name!r} predicts scales but names no entropy model (StepGroup.entropy)")
    return group.entropy(root)


def float32_highest(method):
    """Inside the codec every product without a precision of its own runs in full float32 (``HIGHEST``): GPUs
    and TPUs would otherwise use TF32 or bfloat16 passes for float32 matrix products by default, and the
    entropy parameters, hence the table indexes, would depend on the backend."""
    @functools.wraps(method)
    def run(*args, **kwargs):
        with jax.default_matmul_precision("highest"):
            return method(*args, **kwargs)
    return run


class CompiledPlan:
    """The jitted functions of one plan (one latent layout). Step t's update is fused with the next step's
    prediction, and the last update with the synthesis (the decoder's only): a group of steps costs two
    compiled functions however many steps it has, so compile time does not grow with the image size."""

    def __init__(self, model, plan: Plan):
        self.plan, groups = plan, plan.groups
        self.steps = sum(g.count for g in groups)
        kth = {g.name: k for k, g in enumerate(groups)}

        def predict(g, v, state, t, drift, margin, simulate):
            means, params, state = g.predict(model, v, state, t)
            if simulate and jnp.issubdtype(params.dtype, jnp.floating):
                params = simulate_drift(params, drift, kth[g.name], t)
            pos = g.elements(t).reshape(-1)
            return dict(means=means, idx=table_indexes(model, v, g, params), valid=pos >= 0,
                        near=near_boundaries(model, v, g, params, margin), params=params), state

        def update(g, v, state, t, sym, means):  # dequantization is part of the update, in both directions
            return g.update(model, v, state, t, sym.reshape(means.shape).astype(means.dtype) + means)

        def steps(simulate: bool):
            """(first, repeat, next): a simulated platform's drift gets functions of its own, so the real
            decoder's steps carry nothing for it; the drift's value is traced (one compilation for all)."""
            first = xla_cpu.jit(lambda v, init, drift, margin: predict(groups[0], v, init, jnp.int32(0), drift, margin,
                                                                   simulate))
            # the state is donated: its buffers (a padded latent, the hyper params) are updated in place
            repeat = [xla_cpu.jit(lambda v, state, t, sym, means, drift, margin, g=g: predict(
                g, v, update(g, v, state, t, sym, means), t + 1, drift, margin, simulate), donate_argnums=1)
                      if g.count > 1 else None for g in groups]
            nxt = [xla_cpu.jit(lambda v, state, sym, means, drift, margin, g=g, h=h: predict(
                h, v, update(g, v, state, jnp.int32(g.count - 1), sym, means), jnp.int32(0), drift, margin,
                simulate)) for g, h in zip(groups[:-1], groups[1:])]
            return first, repeat, nxt

        self.first, self.repeat, self.next = steps(False)
        self._simulated = functools.partial(steps, True)  # built on first use
        last = groups[-1]
        self.final_state = xla_cpu.jit(lambda v, state, sym, means: update(last, v, state, jnp.int32(last.count - 1),
                                                                       sym, means))
        self.finish = xla_cpu.jit(lambda v, state, sym, means: model.apply(
            v, plan.latents(update(last, v, state, jnp.int32(last.count - 1), sym, means))["y"],
            method="synthesis"))
        self.latents = xla_cpu.jit(plan.latents)
        # encoder only: symbols = round(x - mean) at the step's positions (zero at padding)
        self.symbols = [xla_cpu.jit(lambda latents, t, means, g=g: jnp.where(
            g.elements(t).reshape(-1) >= 0,
            symbols_of(gather(latents[g.latent], g.elements(t)), means.reshape(-1)), 0)) for g in groups]
        self.elements = [xla_cpu.jit(g.elements) for g in groups]

    def run(self, v, code, clock, drift: float = 0.0, margin: float = 0.0, init: dict | None = None):
        """Runs the plan; ``code(k, t, step, p)`` (numpy symbols) writes or reads the coder, ``step`` counting
        all steps in plan order and ``p`` holding the prediction: means, table indexes, valid (not padding),
        near (the table boundary each scale lies within relative ``margin`` of, or -1) and params (the scales,
        or indexes of a factorized prior). ``drift``: a simulated platform's relative error on the scales
        (``simulate_drift``; 0: none). ``init``: the plan's state before its first step (a variable-rate model's
        ``{"gain": g}``; traced, so every rate runs the same compiled steps). Returns the final prediction's
        (symbols, means) and the state before the last update."""
        groups = self.plan.groups
        first, repeat, nxt = self.first, self.repeat, self.next
        if drift:
            if not isinstance(self._simulated, tuple):
                self._simulated = self._simulated()
            first, repeat, nxt = self._simulated
        drift, margin = np.float32(drift), np.float32(margin)
        p, state = first(v, {} if init is None else init, drift, margin)
        step = 0
        for k, g in enumerate(groups):
            for t in range(g.count):
                sym, means = code(k, t, step, p), p["means"]
                step += 1
                clock.record(f"{g.name}[{t}]" if clock.per_step and g.count > 1 else
                             g.name if t == g.count - 1 else None)
                if t + 1 < g.count:
                    p, state = repeat[k](v, state, np.int32(t), sym, means, drift, margin)
                elif k + 1 < len(groups):
                    p, state = nxt[k](v, state, sym, means, drift, margin)
                    if groups[k + 1].count > 1:  # timed apart, so a repeated group's entry is its steps alone
                        clock.net(p["idx"])
                        clock.record(f"{groups[k + 1].name} (start)")
        return sym, means, state


class Clock:
    """Per-step network and coder wall time, only when asked for (blocking on results costs overlap)."""

    def __init__(self, out: list | None, per_step: bool = False):
        self.out, self.t, self.net_s, self.coder_s = out, time.perf_counter(), 0.0, 0.0
        self.per_step = per_step

    def net(self, result):
        if self.out is not None:
            jax.block_until_ready(result)
            now = time.perf_counter()
            self.net_s += now - self.t
            self.t = now
        return result

    def coder(self):
        if self.out is not None:
            now = time.perf_counter()
            self.coder_s += now - self.t
            self.t = now

    def record(self, name: str | None):
        """Closes a timing entry; ``None`` keeps accumulating (the steps of a group are one entry)."""
        if self.out is not None and name is not None:
            self.out.append((name, self.net_s, self.coder_s))
            self.net_s = self.coder_s = 0.0
