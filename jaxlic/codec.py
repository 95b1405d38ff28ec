"""The generic codec driver (docs/DESIGN.md, decision 3).

A model lists its coding steps. Each step codes a set of elements (a whole latent, or part of one: a slice's
checkerboard anchors) with pure functions of the decoded state: ``predict`` gives the means and table indexes of
its elements, ``update`` folds the decoded values into the state (for MLIC++ also the latent residual
prediction). ``compress`` and ``decompress`` run the very same jitted step functions in the same order; they
differ only in whether the range coder writes or reads. The decoder therefore sees exactly the inputs the
encoder saw, by construction. Steps that share a table family share one range-coded stream, written in plan
order (range coding is a queue).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxlic.coding.coders import CodingError, get_coder
from jaxlic.coding.container import Container, read_container, write_container
from jaxlic.entropy.quantization import symbols_of
from jaxlic.entropy.tables import CodingTable
from jaxlic.errors import UserError


@dataclasses.dataclass(frozen=True)
class Step:
    """``predict(module, variables, state, shapes) -> (means, indexes, state)`` for the elements this step codes,
    in coding layout (flattened C-order is the order the coder sees); ``update(module, variables, state, values,
    shapes) -> state`` with the decoded values (default ``state[name] = values``); ``select(module, latents) ->
    values to code`` on the encoder side (default ``latents[name]``)."""

    name: str     # the step's name (and, by default, the latent it codes)
    table: str    # which coding table family codes it; also the stream it goes into
    predict: Callable[..., tuple]
    update: Callable[..., dict] | None = None
    select: Callable[..., jax.Array] | None = None


def _default_update(name):
    return lambda m, v, state, values, shapes: {**state, name: values}


def _default_select(name):
    return lambda m, latents: latents[name]


class DecodeError(UserError):
    """A file cannot be decoded by this codec (wrong model or checkpoint, corrupt data)."""


def _frozen(shapes: Mapping[str, tuple]) -> tuple:
    return tuple(sorted((k, tuple(int(d) for d in v)) for k, v in shapes.items()))


def fingerprint(tree: Any) -> str:
    """A short hash of a pytree of arrays (names, shapes, dtypes and bytes)."""
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        a = np.asarray(leaf)
        h.update(jax.tree_util.keystr(path).encode())
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def pad_to_multiple(x: np.ndarray, multiple: int) -> np.ndarray:
    """Pads (B, H, W, C) at the bottom/right by edge replication (cheaper to code than zeros)."""
    h, w = x.shape[1:3]
    ph, pw = -h % multiple, -w % multiple
    return np.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else x


class Codec:
    """Compresses 8-bit RGB images to ``.jlc`` bytes and back with one model, its variables and frozen tables."""

    def __init__(self, name: str, model, variables, tables: Mapping[str, CodingTable], config: Mapping | None = None):
        self.name, self.model, self.variables, self.tables = name, model, variables, dict(tables)
        self.config_hash = hashlib.sha256(
            json.dumps({"model": name, "config": dict(config or {})}, sort_keys=True).encode()).hexdigest()[:16]
        self.weights_hash = fingerprint({"variables": variables,
                                         "tables": {k: t.as_variables() for k, t in self.tables.items()}})
        self.steps = model.coding_steps()
        self.streams = list(dict.fromkeys(s.table for s in self.steps))  # one stream per table family
        model_, steps, n = model, self.steps, len(self.steps)

        def predict(k):
            return lambda v, state, shapes: steps[k].predict(model_, v, state, dict(shapes))

        def update(k):  # dequantization is part of the update: both directions turn symbols into values here
            u = steps[k].update or _default_update(steps[k].name)
            return lambda v, state, sym, means, shapes: u(model_, v, state, sym.astype(means.dtype) + means,
                                                         dict(shapes))

        # Step k's update is fused with step k+1's prediction, and the last update with the synthesis (the
        # decoder's only): half as many functions to trace, lower and load from the compilation cache.
        self._analysis = jax.jit(lambda v, x: model_.apply(v, x, method="analysis"))
        self._first = jax.jit(predict(0), static_argnums=2)
        self._advance = [jax.jit(lambda v, state, sym, means, shapes, u=update(k), p=predict(k + 1):
                                 p(v, u(v, state, sym, means, shapes), shapes), static_argnums=4)
                         for k in range(n - 1)]
        self._finish = jax.jit(lambda v, state, sym, means, shapes, u=update(n - 1):
                               model_.decode_image(v, u(v, state, sym, means, shapes)), static_argnums=4)
        # encoder only: every step's elements from the latents (data movement), then symbols = round(x - mean)
        self._targets = jax.jit(lambda latents: [(s.select or _default_select(s.name))(model_, latents)
                                                 for s in steps])
        self._symbols = jax.jit(symbols_of)

    def _shapes(self, height: int, width: int):
        m = self.model.downsampling
        ph, pw = height + (-height % m), width + (-width % m)
        return _frozen(self.model.latent_shapes(1, ph, pw))

    def encode_latents(self, image: np.ndarray, coder: str = "constriction", timings: list | None = None,
                       indexes_out: dict | None = None):
        """Returns (container, symbols per step); ``image`` is (H, W, 3) uint8. ``timings``, if given, receives
        per step (name, network seconds, coder seconds), the network time of a step being its prediction and the
        previous step's update; measuring synchronises every step. ``indexes_out``, if given, receives each
        step's table indexes."""
        image = _check_image(image)
        backend = get_coder(coder)
        h, w = image.shape[:2]
        x = pad_to_multiple(image[None].astype(np.float32) / 255.0, self.model.downsampling)
        clock = _Clock(timings)
        latents = clock.net(self._analysis(self.variables, jnp.asarray(x)))
        clock.record("analysis")
        shapes = self._shapes(h, w)
        encoders = {t: backend.encoder() for t in self.streams}
        targets = self._targets(latents)
        symbols = {}
        means, indexes, state = self._first(self.variables, {}, shapes)
        for k, step in enumerate(self.steps):
            sym = self._symbols(targets[k], means)
            sym_np, idx_np = np.asarray(sym), np.asarray(indexes)
            clock.net(None)
            encoders[step.table].encode(sym_np.reshape(-1), idx_np.reshape(-1), self.tables[step.table])
            clock.coder()
            clock.record(step.name)
            symbols[step.name] = sym_np
            if indexes_out is not None:
                indexes_out[step.name] = idx_np
            if k + 1 < len(self.steps):  # the encoder never needs the last update
                means, indexes, state = self._advance[k](self.variables, state, sym, means, shapes)
        streams = [encoders[t].finish() for t in self.streams]
        c = Container(self.name, self.config_hash, backend.name, (h, w), {k: list(v) for k, v in shapes}, streams,
                      self.weights_hash)
        return c, symbols

    def compress(self, image: np.ndarray, coder: str = "constriction") -> bytes:
        c, _ = self.encode_latents(image, coder)
        return write_container(c)

    def decode_latents(self, data: bytes, timings: list | None = None):
        """Returns (reconstruction as float (H, W, 3) in the model's range, symbols per step); ``timings`` as
        in ``encode_latents``."""
        c = read_container(data)
        if c.model != self.name:
            raise DecodeError(f"file was written by model {c.model!r}; this codec is {self.name!r}")
        if c.config_hash != self.config_hash:
            raise DecodeError(f"file was written by a {c.model} with another configuration "
                              f"(config hash {c.config_hash}, this model {self.config_hash}); pass --checkpoint "
                              "with the model file that compressed it ('jaxlic info FILE' shows its header)")
        if c.weights_hash != self.weights_hash:
            raise DecodeError(f"file was written with other weights (hash {c.weights_hash}, "
                              f"this checkpoint {self.weights_hash}); use the checkpoint that wrote it")
        shapes = self._shapes(*c.image_size)
        if _frozen(c.shapes) != shapes or len(c.streams) != len(self.streams):
            raise DecodeError("file header does not match the model's latent layout (corrupt file)")
        try:
            backend = get_coder(c.coder)
        except (ImportError, ValueError) as e:
            raise DecodeError(f"file was written with the {c.coder!r} coder, which is not available here: {e}") from None
        clock = _Clock(timings)
        symbols, where = {}, self.streams[0]
        try:
            decoders = {t: backend.decoder(data) for t, data in zip(self.streams, c.streams)}
            means, indexes, state = self._first(self.variables, {}, shapes)
            for k, step in enumerate(self.steps):
                where = step.table
                idx_np = np.asarray(indexes)
                clock.net(None)
                sym = decoders[step.table].decode(idx_np.reshape(-1), self.tables[step.table]).reshape(idx_np.shape)
                clock.coder()
                clock.record(step.name)
                symbols[step.name] = sym
                if k + 1 < len(self.steps):
                    means, indexes, state = self._advance[k](self.variables, state, jnp.asarray(sym), means, shapes)
            for where in self.streams:
                decoders[where].finish()
        except CodingError as e:
            raise DecodeError(f"stream {where!r}: {e}") from None
        x_hat = np.asarray(clock.net(self._finish(self.variables, state, jnp.asarray(sym), means, shapes)))
        clock.record("synthesis")
        return x_hat[0, :c.image_size[0], :c.image_size[1]], symbols

    def decompress(self, data: bytes) -> np.ndarray:
        """The decoded image, (H, W, 3) uint8."""
        return to_uint8(self.decode_latents(data)[0])


class _Clock:
    """Per-step network and coder wall time, only when asked for (blocking on results costs overlap)."""

    def __init__(self, out: list | None):
        self.out, self.t, self.net_s, self.coder_s = out, time.perf_counter(), 0.0, 0.0

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

    def record(self, name: str):
        if self.out is not None:
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
