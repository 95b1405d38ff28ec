"""The generic codec driver (docs/DESIGN.md, decision 3): runs a model's plan (``jaxlic.plan``).

A plan is a sequence of step groups; each step codes a set of elements with pure functions of the decoded state:
``predict`` gives the means and table indexes of its elements, ``update`` folds the decoded values into the state
(for MLIC++ also the latent residual prediction). ``compress`` and ``decompress`` run the very same jitted step
functions in the same order through one loop (``_Compiled.run``); they differ only in whether the range coder
writes or reads. The decoder therefore sees exactly the inputs the encoder saw, by construction. Groups that
share a table family share one range-coded stream, written in plan order (range coding is a queue).
"""
from __future__ import annotations

import copy
import functools
import hashlib
import json
import time
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxlic.cache import CompileCache
from jaxlic.coding.checks import IndexChecks
from jaxlic.coding.coders import CodingError, get_coder
from jaxlic.coding.repair import DECODER_MARGIN, ENCODER_MARGIN, Repair
from jaxlic.coding.repair import key as repair_key
from jaxlic.coding.container import DEFAULT_MAX_PIXELS, Container, check_pixels, read_container, write_container
from jaxlic.entropy.quantization import symbols_of
from jaxlic.entropy.tables import CodingTable
from jaxlic.errors import UserError
from jaxlic.heap import trim_after_compiles
from jaxlic.plan import Plan, gather


class DecodeError(UserError):
    """A file cannot be decoded by this codec (wrong model or checkpoint, corrupt data)."""


class IndexMismatch(DecodeError):
    """The decoder's coding-table indexes differ from the encoder's: its machine computed the entropy
    parameters differently. Raised before the step's symbols are decoded; nothing is reconstructed."""

    def __init__(self, where: str, margin: float = 0.0):
        super().__init__(
            f"{where}: this machine's coding-table indexes differ from the encoder's (checked before decoding "
            "it; nothing was reconstructed). The entropy parameters came out differently here (another CPU "
            "instruction set, thread count, XLA version, or GPU / TPU kernels) and lie too close to a table "
            "boundary for this file" + (f", by more than its robust margin {margin:.3g}" if margin else
                                        ", which was written without a robust margin (--robust-margin 0)")
            + "; or the file was damaged or altered in a way its checksum did not catch (a rewritten header "
            "with a valid CRC). If the file is intact and came from another machine, compress it again there "
            "with a larger --robust-margin")


def _frozen(shapes: Mapping[str, tuple]) -> tuple:
    return tuple(sorted((k, tuple(int(d) for d in v)) for k, v in shapes.items()))


def fingerprint(tree: Any) -> str:
    """A short hash of a pytree of arrays (names, shapes, dtypes and bytes)."""
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        a = np.asarray(leaf)
        h.update(jax.tree_util.keystr(path).encode())
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(memoryview(np.ascontiguousarray(a)).cast("B"))  # no copy of a large leaf
    return h.hexdigest()[:16]


def pad_to_multiple(x: np.ndarray, multiple: int) -> np.ndarray:
    """Pads (B, H, W, C) at the bottom/right by edge replication (cheaper to code than zeros)."""
    h, w = x.shape[1:3]
    ph, pw = -h % multiple, -w % multiple
    return np.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else x


DEFAULT_ROBUST_MARGIN = 1e-5
_DRIFT_SEED = 20261203


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


def simulate_drift(scales: jax.Array, rel: float, group: int, t) -> jax.Array:
    """A simulated platform: every scale times ``1 + rel * u``, u uniform in [-1, 1] from a fixed seed per step,
    before its table index (``decode_latents(..., drift=REL)``; the CLI's ``JAXLIC_SIMULATE_DRIFT``). Indexes
    pass through unchanged."""
    if jnp.issubdtype(scales.dtype, jnp.integer):
        return scales
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(_DRIFT_SEED), group), t)
    u = jax.random.uniform(key, scales.shape, scales.dtype, -1.0, 1.0)
    return scales * (1 + jnp.asarray(rel, scales.dtype) * u)


def check_drift(rel) -> float:
    """A simulated platform's relative scale error, checked: a number in [0, 1)."""
    try:
        rel = float(rel)
    except (TypeError, ValueError):
        raise UserError(f"simulated drift {rel!r} is not a number (a relative drift such as 1e-5)") from None
    if not 0 <= rel < 1:
        raise UserError(f"simulated drift {rel!r}: the relative drift must be in [0, 1)")
    return rel


def _float32_highest(method):
    """Inside the codec every product without a precision of its own runs in full float32 (``HIGHEST``): GPUs
    and TPUs would otherwise use TF32 or bfloat16 passes for float32 matrix products by default, and the
    entropy parameters, hence the table indexes, would depend on the backend."""
    @functools.wraps(method)
    def run(*args, **kwargs):
        with jax.default_matmul_precision("highest"):
            return method(*args, **kwargs)
    return run


class _Compiled:
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
            first = jax.jit(lambda v, drift, margin: predict(groups[0], v, {}, jnp.int32(0), drift, margin,
                                                             simulate))
            # the state is donated: its buffers (a padded latent, the hyper params) are updated in place
            repeat = [jax.jit(lambda v, state, t, sym, means, drift, margin, g=g: predict(
                g, v, update(g, v, state, t, sym, means), t + 1, drift, margin, simulate), donate_argnums=1)
                      if g.count > 1 else None for g in groups]
            nxt = [jax.jit(lambda v, state, sym, means, drift, margin, g=g, h=h: predict(
                h, v, update(g, v, state, jnp.int32(g.count - 1), sym, means), jnp.int32(0), drift, margin,
                simulate)) for g, h in zip(groups[:-1], groups[1:])]
            return first, repeat, nxt

        self.first, self.repeat, self.next = steps(False)
        self._simulated = functools.partial(steps, True)  # built on first use
        last = groups[-1]
        self.final_state = jax.jit(lambda v, state, sym, means: update(last, v, state, jnp.int32(last.count - 1),
                                                                       sym, means))
        self.finish = jax.jit(lambda v, state, sym, means: model.apply(
            v, plan.latents(update(last, v, state, jnp.int32(last.count - 1), sym, means))["y"],
            method="synthesis"))
        self.latents = jax.jit(plan.latents)
        # encoder only: symbols = round(x - mean) at the step's positions (zero at padding)
        self.symbols = [jax.jit(lambda latents, t, means, g=g: jnp.where(
            g.elements(t).reshape(-1) >= 0,
            symbols_of(gather(latents[g.latent], g.elements(t)), means.reshape(-1)), 0)) for g in groups]
        self.elements = [jax.jit(g.elements) for g in groups]

    def run(self, v, code, clock, drift: float = 0.0, margin: float = 0.0):
        """Runs the plan; ``code(k, t, step, p)`` (numpy symbols) writes or reads the coder, ``step`` counting
        all steps in plan order and ``p`` holding the prediction: means, table indexes, valid (not padding),
        near (the table boundary each scale lies within relative ``margin`` of, or -1) and params (the scales,
        or indexes of a factorized prior). ``drift``: a simulated platform's relative error on the scales
        (``simulate_drift``; 0: none). Returns the final prediction's (symbols, means) and the state before
        the last update."""
        groups = self.plan.groups
        first, repeat, nxt = self.first, self.repeat, self.next
        if drift:
            if not isinstance(self._simulated, tuple):
                self._simulated = self._simulated()
            first, repeat, nxt = self._simulated
        drift, margin = np.float32(drift), np.float32(margin)
        p, state = first(v, drift, margin)
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


class Codec:
    """Compresses 8-bit RGB images to ``.jlc`` bytes and back with one model, its variables and frozen tables."""

    def __init__(self, name: str, model, variables, tables: Mapping[str, CodingTable], config: Mapping | None = None,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, max_plans: int = 16):
        self.name, self.model, self.max_pixels = name, model, max_pixels
        trim_after_compiles()
        self.config_hash = hashlib.sha256(
            json.dumps({"model": name, "config": dict(config or {})}, sort_keys=True).encode()).hexdigest()[:16]
        self._analysis = jax.jit(lambda v, x: model.apply(v, x, method="analysis"))
        # per padded size: a plan and its compiled steps (the most recently used kept; ``max_plans``)
        self._compiled = CompileCache(maxsize=max_plans)
        # the stream order is the order table families first appear in the plan (the same for every size)
        groups = self.plan(64, 64).groups
        self.streams = list(dict.fromkeys(g.table for g in groups))
        self._families = list({g.table: g for g in groups if g.entropy is not None}.values())
        self._set_weights(variables, tables)

    def _set_weights(self, variables, tables):
        self.variables, self.tables = variables, dict(tables)
        self.weights_hash = fingerprint({"variables": variables,
                                         "tables": {k: t.as_variables() for k, t in self.tables.items()}})
        # the entropy models the plan looks scales up in: the repair's margins must stay below their spacing
        spacings = [self.model.apply(variables, method=lambda m, g=g: g.entropy(m).boundary_spacing())
                    for g in self._families]
        self._spacing = min([float(s) for s in spacings] + [np.inf])

    def with_weights(self, variables, tables: Mapping[str, CodingTable]) -> "Codec":
        """The same model and configuration with other weights (another checkpoint of a training run): shares
        the compiled plans, which take the weights as arguments, so nothing is compiled again."""
        other = copy.copy(self)
        other._set_weights(variables, tables)
        return other

    def _shapes(self, height: int, width: int):
        m = self.model.downsampling
        ph, pw = height + (-height % m), width + (-width % m)
        return _frozen(self.model.latent_shapes(1, ph, pw))

    def plan(self, height: int, width: int) -> Plan:
        """The model's codec plan for an image of this size."""
        return self._functions(height, width).plan

    def _functions(self, height: int, width: int) -> _Compiled:
        shapes = self._shapes(height, width)
        return self._compiled.get(shapes, lambda: _Compiled(self.model, self.model.plan(dict(shapes))))

    @_float32_highest
    def encode_latents(self, image: np.ndarray, coder: str = "constriction", timings: list | None = None,
                       indexes_out: dict | None = None, latents_out: dict | None = None, per_step: bool = False,
                       robust_margin: float | None = None, scales_out: list | None = None,
                       stats_out: dict | None = None):
        """Returns (container, symbols per step group); ``image`` is (H, W, 3) uint8. Symbols of a one-step
        group keep the layout of its prediction; those of a repeated group are its real elements in coding
        order. ``timings``, if given, receives per group (name, network seconds, coder seconds), the network
        time of a step being its prediction and the previous step's update (before a repeated group, the update
        of the group before and its first prediction are an entry of their own, "NAME (start)"); measuring
        synchronises every step. ``per_step``: an entry for every step of a repeated group ("NAME[t]").
        ``indexes_out`` receives each group's table indexes (same layout as its symbols), ``latents_out`` the
        symbols, table indexes and code lengths in bits of each latent at their positions (NHWC, ``y_symbols``,
        ``y_indexes``, ``y_bits``) and the latents the encoder reconstructed. ``robust_margin``: the repair's
        delta (``DEFAULT_ROBUST_MARGIN`` if None; 0 switches it off): a decoder whose scales differ from these by a relative error below it decodes
        exactly. ``scales_out`` receives each step's scales (valid elements), ``stats_out`` the sizes of the
        side information (repair keys and bytes, index-check bytes)."""
        image = _check_image(image)
        backend = get_coder(coder)
        h, w = image.shape[:2]
        x = pad_to_multiple(image[None].astype(np.float32) / 255.0, self.model.downsampling)
        fn = self._functions(h, w)  # before the analysis is queued: building a plan may read device values
        clock = _Clock(timings, per_step)
        latents = clock.net(self._analysis(self.variables, jnp.asarray(x)))
        clock.record("analysis")
        encoders = {t: backend.encoder() for t in self.streams}
        coded = _Coded(fn, indexes_out is not None or latents_out is not None)
        checks = IndexChecks(fn.steps)
        repair = self._repair(robust_margin)

        def code(k, t, step, p):
            g = fn.plan.groups[k]
            sym = fn.symbols[k](latents, np.int32(t), p["means"])
            sym_np, idx_np, valid_np = np.asarray(sym), np.asarray(p["idx"]).reshape(-1), np.asarray(p["valid"])
            if repair.on:
                near = np.asarray(p["near"])
                flagged = np.flatnonzero((near >= 0) & valid_np)
                repair.store(repair_key(step, flagged), idx_np[flagged] - near[flagged])
            if scales_out is not None:
                scales_out.append(np.asarray(p["params"]).reshape(-1)[valid_np])
            clock.net(None)
            keep = sym_np if valid_np.all() else sym_np[valid_np]
            idx_keep = idx_np if valid_np.all() else idx_np[valid_np]
            checks.add(idx_keep)
            encoders[g.table].encode(keep, idx_keep, self.tables[g.table])
            clock.coder()
            coded.add(k, t, sym_np, idx_np, valid_np, p["means"].shape)
            return sym

        sym, means, state = fn.run(self.variables, code, clock, margin=ENCODER_MARGIN * repair.delta)
        if latents_out is not None:
            latents_out.update(coded.by_latent(self.tables, backend.name))
            latents_out.update({f"{k}_hat": np.asarray(a) for k, a in
                                fn.latents(fn.final_state(self.variables, state, sym, means)).items()})
        if indexes_out is not None:
            indexes_out.update(coded.indexes())
        streams = [encoders[t].finish() for t in self.streams]
        c = Container(self.name, self.config_hash, backend.name, (h, w), {k: list(v) for k, v in fn.plan.shapes.items()},
                      streams, self.weights_hash, checks=checks.pack(), repair=repair.pack())
        if stats_out is not None:
            stats_out.update(repair_keys=repair.keys, repair_bytes=len(c.repair), checks_bytes=len(c.checks))
        return c, coded.symbols()

    def compress(self, image: np.ndarray, coder: str = "constriction", robust_margin: float | None = None) -> bytes:
        c, _ = self.encode_latents(image, coder, robust_margin=robust_margin)
        return write_container(c)

    def _repair(self, delta: float | None) -> Repair:
        repair = Repair(DEFAULT_ROBUST_MARGIN if delta is None else float(delta))  # checks the range
        if repair.on and 2 * ENCODER_MARGIN * repair.delta >= self._spacing:
            raise ValueError(f"robust margin {delta} is too wide for this model's scale table (boundaries "
                             f"{self._spacing:.3g} apart, relatively)")
        return repair

    @_float32_highest
    def decode_latents(self, data: bytes, timings: list | None = None, latents_out: dict | None = None,
                       per_step: bool = False, scales_out: list | None = None, drift: float = 0.0):
        """Returns (reconstruction as float (H, W, 3) in the model's range, symbols per step group);
        ``timings``, ``per_step``, ``latents_out`` and ``scales_out`` as in ``encode_latents`` (here the decoded
        latents and this machine's scales, a step's before its check). ``drift``: decode as a simulated platform
        would, every scale off by a relative error up to this (``simulate_drift``; 0: this machine)."""
        c = read_container(data)
        check_pixels(c, self.max_pixels)  # from the header, before anything is allocated for the image
        if c.model != self.name:
            raise DecodeError(f"file was written by model {c.model!r}; this codec is {self.name!r}")
        if c.config_hash != self.config_hash:
            raise DecodeError(f"file was written by a {c.model} with another configuration "
                              f"(config hash {c.config_hash}, this model {self.config_hash}); pass --checkpoint "
                              "with the model file that compressed it ('jaxlic info FILE' shows its header)")
        if c.weights_hash != self.weights_hash:
            raise DecodeError(f"file was written with other weights (hash {c.weights_hash}, "
                              f"this checkpoint {self.weights_hash}); use the checkpoint that wrote it")
        if _frozen(c.shapes) != self._shapes(*c.image_size) or len(c.streams) != len(self.streams):
            raise DecodeError("file header does not match the model's latent layout (corrupt file)")
        try:
            backend = get_coder(c.coder)
        except (ImportError, ValueError) as e:
            raise DecodeError(f"file was written with the {c.coder!r} coder, which is not available here: {e}") from None
        drift = check_drift(drift)
        fn = self._functions(*c.image_size)
        try:
            checks = IndexChecks.unpack(c.checks, fn.steps) if c.version >= 3 else None
            repair = Repair.unpack(c.repair)
        except ValueError as e:
            raise DecodeError(f"file header does not match the model's coding steps (corrupt file): {e}") from None
        clock = _Clock(timings, per_step)
        coded = _Coded(fn, latents_out is not None)
        where, step_name = self.streams[0], None
        try:
            decoders = {t: backend.decoder(s) for t, s in zip(self.streams, c.streams)}

            def code(k, t, step, p):
                nonlocal where, step_name
                g = fn.plan.groups[k]
                where = g.table
                step_name = f"coding step {g.name}[{t}] of {g.name}'s {g.count}" if g.count > 1 else \
                    f"coding step {g.name}"
                idx_np, valid_np = np.asarray(p["idx"]).reshape(-1), np.asarray(p["valid"])
                if scales_out is not None:
                    scales_out.append(np.asarray(p["params"]).reshape(-1)[valid_np])
                if repair.on:  # near a boundary: the encoder's side of it, not this machine's
                    near = np.asarray(p["near"])
                    flagged = np.flatnonzero((near >= 0) & valid_np)
                    if len(flagged):
                        idx_np = idx_np.copy()
                        idx_np[flagged] = near[flagged] + repair.lookup(repair_key(step, flagged))
                clock.net(None)
                if checks is not None and not checks.verify(idx_np if valid_np.all() else idx_np[valid_np]):
                    raise IndexMismatch(step_name, repair.delta)
                if valid_np.all():
                    sym_np = decoders[g.table].decode(idx_np, self.tables[g.table]).astype(np.int32)
                else:
                    sym_np = np.zeros(idx_np.shape, np.int32)
                    sym_np[valid_np] = decoders[g.table].decode(idx_np[valid_np], self.tables[g.table])
                clock.coder()
                coded.add(k, t, sym_np, idx_np, valid_np, p["means"].shape)
                return sym_np  # numpy: jit takes it without a separate transfer call

            sym, means, state = fn.run(self.variables, code, clock, drift, DECODER_MARGIN * repair.delta)
            for where in self.streams:
                step_name = None
                decoders[where].finish()
        except CodingError as e:
            if checks is not None and step_name is not None:
                # the payload passed the file's CRC-32 and the header matched: a stream that fails to decode
                # means this step's indexes differ from the encoder's and its short check passed by chance
                raise IndexMismatch(f"{step_name} (its short check passed by chance; the range decoder "
                                    f"failed: {e})", repair.delta) from None
            raise DecodeError(f"stream {where!r}: {e}") from None
        if checks is not None and not checks.verify_all():
            raise IndexMismatch("the file's coding steps taken together", repair.delta)
        x_hat = np.asarray(clock.net(fn.finish(self.variables, state, sym, means)))
        clock.record("synthesis")
        if latents_out is not None:
            latents_out.update(coded.by_latent())
            latents_out.update({f"{k}_hat": np.asarray(a) for k, a in
                                fn.latents(fn.final_state(self.variables, state, sym, means)).items()})
        return x_hat[0, :c.image_size[0], :c.image_size[1]], coded.symbols()

    def decompress(self, data: bytes, drift: float = 0.0) -> np.ndarray:
        """The decoded image, (H, W, 3) uint8; ``drift`` as in ``decode_latents``."""
        return to_uint8(self.decode_latents(data, drift=drift)[0])


class _Coded:
    """The symbols (and indexes) a run coded, per group and, if asked, per latent position."""

    def __init__(self, fn: _Compiled, positions: bool):
        self.fn, self.positions = fn, positions
        self.sym, self.idx, self.pos = {}, {}, {}

    def add(self, k, t, sym, idx, valid, shape):
        g = self.fn.plan.groups[k]
        if g.count == 1:
            self.sym[g.name], self.idx[g.name] = sym.reshape(shape), idx.reshape(shape)
        else:
            self.sym.setdefault(g.name, []).append(sym[valid])
            self.idx.setdefault(g.name, []).append(idx[valid])
        if self.positions:
            pos = np.asarray(self.fn.elements[k](np.int32(t))).reshape(-1)
            self.pos.setdefault(g.latent, []).append((pos[valid], sym[valid], idx[valid], g.table))

    def symbols(self):
        return {k: v if isinstance(v, np.ndarray) else np.concatenate(v) for k, v in self.sym.items()}

    def indexes(self):
        return {k: v if isinstance(v, np.ndarray) else np.concatenate(v) for k, v in self.idx.items()}

    def by_latent(self, tables: Mapping[str, CodingTable] | None = None, coder: str = "constriction"):
        """Per latent, its symbols and table indexes at their positions (NHWC) and, given the coding tables, the
        bits each element costs (``CodingTable.code_lengths``, escapes as ``coder`` writes them)."""
        out = {}
        for name, parts in self.pos.items():
            shape = self.fn.plan.shapes[name]
            n = int(np.prod(shape))
            sym, idx, bits = np.zeros(n, np.int32), np.zeros(n, np.int32), np.zeros(n, np.float64)
            for pos, s, i, table in parts:
                sym[pos], idx[pos] = s, i
                if tables is not None:
                    bits[pos] = tables[table].code_lengths(s, i, coder)
            out[f"{name}_symbols"], out[f"{name}_indexes"] = sym.reshape(shape), idx.reshape(shape)
            if tables is not None:
                out[f"{name}_bits"] = bits.reshape(shape)
        return out


class _Clock:
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


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(x, np.float32) * 255.0), 0, 255).astype(np.uint8)


def _check_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    if min(image.shape[:2]) < 1:
        raise ValueError("image is empty")
    return image
