"""The generic codec driver (docs/DESIGN.md, decision 3): images to ``.jlc`` files and back with one model.

Three parts: ``Codec``, what a user calls (``compress`` / ``decompress``, or ``encode`` / ``decode`` for the
symbols, indexes, scales and timings of a run as an ``EncodeResult`` / ``DecodeResult``); the per-shape compiled
plans (``jaxlic.compiled.CompiledPlan``, in a bounded ``CompileCache``); and the cross-platform protection
(``jaxlic.coding.protection``: repair, index checks, simulated drift). Groups that share a table family share
one range-coded stream, written in plan order (range coding is a queue).
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxlic.cache import CompileCache
from jaxlic.coding.coders import CodingError, get_coder
from jaxlic.coding.container import (DEFAULT_MAX_PIXELS, FIXED_RATE_VERSION, FORMAT_VERSION, Container, check_pixels,
                                     read_container, write_container)
from jaxlic.coding.protection import DEFAULT_ROBUST_MARGIN, Protection, check_drift
from jaxlic.compiled import Clock, CompiledPlan, float32_highest
from jaxlic.entropy.tables import CodingTable
from jaxlic.errors import DecodeError, IndexMismatch, UserError
from jaxlic.heap import trim_after_compiles
from jaxlic import xla_cpu
from jaxlic.plan import Plan

__all__ = ["Codec", "EncodeResult", "DecodeResult", "DecodeError", "IndexMismatch", "DEFAULT_ROBUST_MARGIN",
           "fingerprint", "pad_to_multiple", "to_uint8"]


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


@dataclasses.dataclass
class EncodeResult:
    """One image encoded. Per step group, the ``symbols`` it coded and their table ``indexes``: a one-step
    group's keep the layout of its prediction, a repeated group's are its real elements in coding order.
    ``side``: the sizes of the cross-platform side information (``repair_keys``, ``repair_bytes``,
    ``checks_bytes``). With ``details``: ``latents``, per latent its symbols, table indexes and code lengths
    in bits at their positions (NHWC: ``y_symbols``, ``y_indexes``, ``y_bits``) and the latents the encoder
    reconstructed (``y_hat``); ``scales``, each step's scales (its real elements). With ``timings``: per entry
    (name, network seconds, coder seconds), see ``Codec.encode``."""
    container: Container
    symbols: dict[str, np.ndarray]
    indexes: dict[str, np.ndarray]
    side: dict[str, int]
    latents: dict[str, np.ndarray] | None = None
    scales: list[np.ndarray] | None = None
    timings: list[tuple[str, float, float]] | None = None

    @functools.cached_property
    def data(self) -> bytes:
        """The file's bytes."""
        return write_container(self.container)


@dataclasses.dataclass
class DecodeResult:
    """One file decoded: ``x_hat``, the reconstruction as float (H, W, 3) in the model's range, cropped to the
    image; ``container``, the file's header and streams; ``symbols`` and ``indexes`` as in ``EncodeResult``.
    With ``details``: ``latents`` (the decoded symbols and indexes at their positions and the decoded latents)
    and ``scales`` (this machine's, a step's before its repair and check); with ``timings`` the timings."""
    x_hat: np.ndarray
    container: Container
    symbols: dict[str, np.ndarray]
    indexes: dict[str, np.ndarray]
    latents: dict[str, np.ndarray] | None = None
    scales: list[np.ndarray] | None = None
    timings: list[tuple[str, float, float]] | None = None

    @property
    def image(self) -> np.ndarray:
        """The decoded image, (H, W, 3) uint8."""
        return to_uint8(self.x_hat)


class Codec:
    """Compresses 8-bit RGB images to ``.jlc`` bytes and back with one model, its variables and frozen tables."""

    def __init__(self, name: str, model, variables, tables: Mapping[str, CodingTable], config: Mapping | None = None,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, max_plans: int = 16):
        self.name, self.model, self.max_pixels = name, model, max_pixels
        trim_after_compiles()
        self.config_hash = hashlib.sha256(
            json.dumps({"model": name, "config": dict(config or {})}, sort_keys=True).encode()).hexdigest()[:16]
        # a variable-rate model takes its rate (the gain) in the analysis and in the plan's initial state
        self.rated = bool(getattr(model, "rated", False))
        if self.rated:
            self._analysis = xla_cpu.jit(lambda v, x, g: model.apply(v, x, g, method="analysis"))
        else:
            self._analysis = xla_cpu.jit(lambda v, x: model.apply(v, x, method="analysis"))
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
        self._rate_tables = CompileCache(maxsize=8)  # per gain: the tables that follow the rate

    def gain(self, level: int | None = None, gain: float | None = None) -> float | None:
        """A variable-rate model's gain (1 / y's quantization step) for ``level`` (0 .. levels - 1, the learned
        gains; default 1, as CompressAI's ``s=1``) or ``gain`` itself; None for a fixed-rate model."""
        if not self.rated:
            if level is not None or gain is not None:
                raise UserError(f"{self.name} codes at one rate; a level or gain applies to variable-rate models")
            return None
        if gain is not None:
            if level is not None:
                raise UserError("give a level or a gain, not both")
            g = float(np.float32(gain)) if isinstance(gain, (int, float, np.floating)) else float("nan")
            if not 0 < g < float("inf"):
                raise UserError(f"gain {gain!r}: a positive number (1 / the quantization step) is needed")
            return g
        n = self.model.levels
        level = 1 if level is None else level
        if not isinstance(level, (int, np.integer)) or not 0 <= level < n:
            raise UserError(f"level {level!r}: {self.name} has levels 0 .. {n - 1}")
        return abs(float(np.asarray(self.variables["params"]["Gain"])[level]))

    def _tables(self, gain: float | None) -> dict:
        """The coding tables at this rate: the model's, with those that follow the rate built for it (a few
        kept)."""
        if gain is None:
            return self.tables
        return self._rate_tables.get(gain, lambda: {**self.tables,
                                                    **self.model.rate_tables(self.variables, np.float32(gain))})

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

    def _functions(self, height: int, width: int) -> CompiledPlan:
        shapes = self._shapes(height, width)
        return self._compiled.get(shapes, lambda: CompiledPlan(self.model, self.model.plan(dict(shapes))))

    @float32_highest
    def encode(self, image: np.ndarray, coder: str = "constriction", robust_margin: float | None = None, *,
               level: int | None = None, gain: float | None = None, details: bool = False, timings: bool = False,
               per_step: bool = False) -> EncodeResult:
        """Encodes one image, (H, W, 3) uint8. ``robust_margin``: the repair's delta (``DEFAULT_ROBUST_MARGIN``
        if None; 0 switches it off): a decoder whose scales differ from these by a relative error below it
        decodes exactly. ``level`` / ``gain``: the rate of a variable-rate model (``gain``), written into the
        file. ``details``: also the latents at their positions, with the bits of each element, and
        the scales of each step. ``timings``: per group (name, network seconds, coder seconds), the network time
        of a step being its prediction and the previous step's update (before a repeated group, the update of
        the group before and its first prediction are an entry of their own, "NAME (start)"); measuring
        synchronises every step. ``per_step``: an entry for every step of a repeated group ("NAME[t]")."""
        image = _check_image(image)
        backend = get_coder(coder)
        g = self.gain(level, gain)
        tables = self._tables(g)
        h, w = image.shape[:2]
        x = pad_to_multiple(image[None].astype(np.float32) / 255.0, self.model.downsampling)
        fn = self._functions(h, w)  # before the analysis is queued: building a plan may read device values
        clock = Clock([] if timings else None, per_step)
        rate = () if g is None else (np.float32(g),)
        latents = clock.net(self._analysis(self.variables, jnp.asarray(x), *rate))
        clock.record("analysis")
        encoders = {t: backend.encoder() for t in self.streams}
        coded = _Coded(fn, details)
        protection = Protection.for_encoder(fn.steps, robust_margin, self._spacing)
        scales = [] if details else None

        def code(k, t, step, p):
            g = fn.plan.groups[k]
            sym = fn.symbols[k](latents, np.int32(t), p["means"])
            sym_np, idx_np, valid_np = np.asarray(sym), np.asarray(p["idx"]).reshape(-1), np.asarray(p["valid"])
            protection.record(step, idx_np, valid_np, p["near"])
            if scales is not None:
                scales.append(np.asarray(p["params"]).reshape(-1)[valid_np])
            clock.net(None)
            everywhere = valid_np.all()
            encoders[g.table].encode(sym_np if everywhere else sym_np[valid_np],
                                     idx_np if everywhere else idx_np[valid_np], tables[g.table])
            clock.coder()
            coded.add(k, t, sym_np, idx_np, valid_np, p["means"].shape)
            return sym

        sym, means, state = fn.run(self.variables, code, clock, margin=protection.margin, init=_init(g))
        streams = [encoders[t].finish() for t in self.streams]
        checks, repair = protection.pack()
        c = Container(self.name, self.config_hash, backend.name, (h, w), {k: list(v) for k, v in fn.plan.shapes.items()},
                      streams, self.weights_hash, FIXED_RATE_VERSION if g is None else FORMAT_VERSION, checks, repair,
                      g)
        return EncodeResult(
            c, coded.symbols(), coded.indexes(),
            dict(repair_keys=protection.repair.keys, repair_bytes=len(repair), checks_bytes=len(checks)),
            latents=self._latents(fn, coded, state, sym, means, tables, backend.name) if details else None,
            scales=scales, timings=clock.out)

    def compress(self, image: np.ndarray, coder: str = "constriction", robust_margin: float | None = None, *,
                 level: int | None = None, gain: float | None = None) -> bytes:
        return self.encode(image, coder, robust_margin, level=level, gain=gain).data

    def _latents(self, fn: CompiledPlan, coded: "_Coded", state, sym, means, tables=None, coder="constriction"):
        out = coded.by_latent(tables, coder)
        out.update({f"{k}_hat": np.asarray(a) for k, a in
                    fn.latents(fn.final_state(self.variables, state, sym, means)).items()})
        return out

    def _header(self, data: bytes) -> Container:
        """The file's container, checked against this codec before anything is decoded."""
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
        if self.rated != (c.gain is not None):
            raise DecodeError(f"file header {'lacks' if self.rated else 'carries'} the rate of a variable-rate "
                              "model (corrupt file)")
        return c

    @float32_highest
    def decode(self, data: bytes, drift: float = 0.0, *, details: bool = False, timings: bool = False,
               per_step: bool = False) -> DecodeResult:
        """Decodes one file. ``drift``: decode as a simulated platform would, every scale off by a relative
        error up to this (``simulate_drift``; 0: this machine). ``details``, ``timings`` and ``per_step`` as in
        ``encode`` (here the decoded latents and this machine's scales)."""
        c = self._header(data)
        try:
            backend = get_coder(c.coder)
        except (ImportError, ValueError) as e:
            raise DecodeError(f"file was written with the {c.coder!r} coder, which is not available here: {e}") from None
        drift = check_drift(drift)
        tables = self._tables(c.gain)
        fn = self._functions(*c.image_size)
        try:
            protection = Protection.for_decoder(c.checks, c.repair, fn.steps, c.version)
        except ValueError as e:
            raise DecodeError(f"file header does not match the model's coding steps (corrupt file): {e}") from None
        clock = Clock([] if timings else None, per_step)
        coded = _Coded(fn, details)
        scales = [] if details else None
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
                if scales is not None:
                    scales.append(np.asarray(p["params"]).reshape(-1)[valid_np])
                idx_np = protection.resolve(step, idx_np, valid_np, p["near"], step_name)
                clock.net(None)
                if valid_np.all():
                    sym_np = decoders[g.table].decode(idx_np, tables[g.table]).astype(np.int32)
                else:
                    sym_np = np.zeros(idx_np.shape, np.int32)
                    sym_np[valid_np] = decoders[g.table].decode(idx_np[valid_np], tables[g.table])
                clock.coder()
                coded.add(k, t, sym_np, idx_np, valid_np, p["means"].shape)
                return sym_np  # numpy: jit takes it without a separate transfer call

            sym, means, state = fn.run(self.variables, code, clock, drift, protection.margin, _init(c.gain))
            for where in self.streams:
                step_name = None
                decoders[where].finish()
        except CodingError as e:
            if protection.checked and step_name is not None:
                # the payload passed the file's CRC-32 and the header matched: a stream that fails to decode
                # means this step's indexes differ from the encoder's and its short check passed by chance
                raise protection.mismatch(f"{step_name} (its short check passed by chance; the range decoder "
                                          f"failed: {e})") from None
            raise DecodeError(f"stream {where!r}: {e}") from None
        protection.finish()
        x_hat = np.asarray(clock.net(fn.finish(self.variables, state, sym, means)))
        clock.record("synthesis")
        return DecodeResult(x_hat[0, :c.image_size[0], :c.image_size[1]], c, coded.symbols(), coded.indexes(),
                            latents=self._latents(fn, coded, state, sym, means) if details else None,
                            scales=scales, timings=clock.out)

    def decompress(self, data: bytes, drift: float = 0.0) -> np.ndarray:
        """The decoded image, (H, W, 3) uint8; ``drift`` as in ``decode``."""
        return self.decode(data, drift).image


class _Coded:
    """The symbols (and indexes) a run coded, per group and, if asked, per latent position."""

    def __init__(self, fn: CompiledPlan, positions: bool):
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


def _init(gain: float | None) -> dict | None:
    return None if gain is None else {"gain": np.float32(gain)}


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(x, np.float32) * 255.0), 0, 255).astype(np.uint8)


def _check_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    if min(image.shape[:2]) < 1:
        raise ValueError("image is empty")
    return image
