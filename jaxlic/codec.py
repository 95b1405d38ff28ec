"""The generic codec driver (DESIGN decision 3).

A model lists its coding steps; each step is a pure function ``(variables, decoded so far, latent shapes) ->
(means, table indexes)`` for the elements it codes. ``compress`` and ``decompress`` run the very same jitted step
functions in the same order; they differ only in whether the range coder writes or reads. The decoder
therefore sees exactly the inputs the encoder saw, by construction.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxlic.coding.coders import CodingError, get_coder
from jaxlic.coding.container import Container, ContainerError, read_container, write_container
from jaxlic.entropy.tables import CodingTable


@dataclasses.dataclass(frozen=True)
class Step:
    name: str     # the latent this step codes (key in the encoder's latents and in ``decoded``)
    table: str    # which coding table family codes it
    predict: Callable[..., tuple[jax.Array, jax.Array]]  # (module, variables, decoded, shapes) -> (means, indexes)


class DecodeError(ValueError):
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
        model_ = model
        self._analysis = jax.jit(lambda v, x: model_.apply(v, x, method="analysis"))
        self._synthesis = jax.jit(lambda v, dec: model_.decode_image(v, dec))
        self._predict = [jax.jit(lambda v, dec, shapes, s=s: s.predict(model_, v, dec, dict(shapes)),
                                 static_argnums=2) for s in self.steps]

    # Both directions turn symbols back into values with this one function.
    @staticmethod
    @jax.jit
    def _dequantize(symbols, means):
        return symbols.astype(means.dtype) + means

    @staticmethod
    @jax.jit
    def _symbols(values, means):
        return jnp.round(values - means).astype(jnp.int32)

    def _shapes(self, height: int, width: int):
        m = self.model.downsampling
        ph, pw = height + (-height % m), width + (-width % m)
        return _frozen(self.model.latent_shapes(1, ph, pw))

    def encode_latents(self, image: np.ndarray, coder: str = "constriction"):
        """Returns (container, symbols per step); ``image`` is (H, W, 3) uint8."""
        image = _check_image(image)
        backend = get_coder(coder)
        h, w = image.shape[:2]
        x = pad_to_multiple(image[None].astype(np.float32) / 255.0, self.model.downsampling)
        latents = self._analysis(self.variables, jnp.asarray(x))
        shapes = self._shapes(h, w)
        decoded, streams, symbols = {}, [], {}
        for step, predict in zip(self.steps, self._predict):
            means, indexes = predict(self.variables, decoded, shapes)
            sym = self._symbols(latents[step.name], means)
            sym_np, idx_np = np.asarray(sym), np.asarray(indexes)
            streams.append(backend.encode(sym_np.reshape(-1), idx_np.reshape(-1), self.tables[step.table]))
            symbols[step.name] = sym_np
            decoded[step.name] = self._dequantize(sym, means)
        c = Container(self.name, self.config_hash, backend.name, (h, w), {k: list(v) for k, v in shapes}, streams,
                      self.weights_hash)
        return c, symbols

    def compress(self, image: np.ndarray, coder: str = "constriction") -> bytes:
        c, _ = self.encode_latents(image, coder)
        return write_container(c)

    def decode_latents(self, data: bytes):
        """Returns (reconstruction as float (H, W, 3) in the model's range, symbols per step)."""
        c = read_container(data)
        if c.model != self.name:
            raise DecodeError(f"file was written by model {c.model!r}; this codec is {self.name!r}")
        if c.config_hash != self.config_hash:
            raise DecodeError(f"file was written by a {c.model} with another configuration "
                              f"(config hash {c.config_hash}, this model {self.config_hash})")
        if c.weights_hash != self.weights_hash:
            raise DecodeError(f"file was written with other weights (hash {c.weights_hash}, "
                              f"this checkpoint {self.weights_hash}); use the checkpoint that wrote it")
        shapes = self._shapes(*c.image_size)
        if _frozen(c.shapes) != shapes or len(c.streams) != len(self.steps):
            raise DecodeError("file header does not match the model's latent layout (corrupt file)")
        try:
            backend = get_coder(c.coder)
        except (ImportError, ValueError) as e:
            raise DecodeError(f"file was written with the {c.coder!r} coder, which is not available here: {e}") from None
        decoded, symbols = {}, {}
        for step, predict, stream in zip(self.steps, self._predict, c.streams):
            means, indexes = predict(self.variables, decoded, shapes)
            idx_np = np.asarray(indexes)
            try:
                sym = backend.decode(stream, idx_np.reshape(-1), self.tables[step.table]).reshape(idx_np.shape)
            except CodingError as e:
                raise DecodeError(f"stream {step.name!r}: {e}") from None
            symbols[step.name] = sym
            decoded[step.name] = self._dequantize(jnp.asarray(sym), means)
        x_hat = np.asarray(self._synthesis(self.variables, decoded))[0, :c.image_size[0], :c.image_size[1]]
        return x_hat, symbols

    def decompress(self, data: bytes) -> np.ndarray:
        """The decoded image, (H, W, 3) uint8."""
        return to_uint8(self.decode_latents(data)[0])


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(x, np.float32) * 255.0), 0, 255).astype(np.uint8)


def _check_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    if min(image.shape[:2]) < 1:
        raise ValueError("image is empty")
    return image
