"""The front door: ``jaxlic.load(spec) -> Codec``, numpy in and numpy out.

    import jaxlic
    codec = jaxlic.load("mbt2018-mean-cpu-0.0067")        # a shipped model, a model file or an official checkpoint
    data = codec.compress(image)                            # (H, W, 3) uint8 -> bytes (a .jlc file)
    decoded = codec.decompress(data)                        # bytes -> (H, W, 3) uint8
    enc = codec.encode(image)                               # the bytes with bpp, stream sizes and bits per element

A ``Codec`` carries its model's name and configuration with the weights, so every file it writes decodes with the
``jaxlic`` command and with any other ``Codec`` loaded from the same weights. The command line, ``eval.py`` and the
examples are written on these calls.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import zipfile
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxlic import assets, xla_cpu
from jaxlic.codec import Codec as _Engine
from jaxlic.codec import pad_to_multiple
from jaxlic.coding.container import DEFAULT_MAX_PIXELS
from jaxlic.entropy.tables import CodingTable
from jaxlic.errors import UserError
from jaxlic.registry import REGISTRY, get_spec

__all__ = ["Codec", "Encoded", "Forward", "load", "init", "model", "models", "DEFAULT_MAX_PIXELS"]


class LoadError(UserError):
    """A spec that ``jaxlic.load`` cannot turn into a codec (a missing, unreadable or foreign file)."""


@dataclasses.dataclass(frozen=True)
class Encoded:
    """One compressed image: the file's bytes and where its bits went.

    ``bits[latent]`` is the code length of every element of that latent in bits, with the latent's shape
    (H', W', C) (the coding tables' cost of the coded symbol, escapes included): the file's streams hold these
    bits plus a few bytes of range-coder termination each. ``stream_bytes`` gives each stream's length, named by
    its coding-table family (``gaussian_conditional`` carries y, ``entropy_bottleneck`` z)."""
    data: bytes
    image_size: tuple[int, int]
    stream_bytes: dict[str, int]
    bits: dict[str, np.ndarray]
    downsampling: dict[str, int]  # latent -> pixels per latent element along each side (y: 16, z: 64)

    @property
    def bpp(self) -> float:
        """Bits per pixel of the whole file (header and checks included)."""
        return 8 * len(self.data) / (self.image_size[0] * self.image_size[1])

    def channel_bits(self, latent: str = "y") -> np.ndarray:
        """Bits per channel of a latent, (C,): which channels carry the information."""
        return self.bits[latent].sum(axis=(0, 1))

    def bit_map(self, latent: str = "y") -> np.ndarray:
        """Where the bits go, at image resolution: (H, W) bits per pixel whose sum is the latent's total.

        Each latent position's bits (summed over channels) are spread evenly over the image pixels it covers;
        positions that cover only the padding the codec added are folded into the last row / column that
        covers real pixels, so nothing is lost."""
        b = self.bits[latent].sum(axis=-1)
        s = self.downsampling[latent]
        h, w = self.image_size
        rows, cols = -(-h // s), -(-w // s)
        b = np.concatenate([b[:rows - 1], b[rows - 1:].sum(0, keepdims=True)], 0)
        b = np.concatenate([b[:, :cols - 1], b[:, cols - 1:].sum(1, keepdims=True)], 1)
        # pixels each position covers inside the image
        ph = np.minimum(s, h - s * np.arange(rows))
        pw = np.minimum(s, w - s * np.arange(cols))
        per_pixel = b / (ph[:, None] * pw[None, :])
        return np.repeat(np.repeat(per_pixel, s, 0), s, 1)[:h, :w]


@dataclasses.dataclass(frozen=True)
class Forward:
    """The model's evaluation forward (no range coder): ``x_hat`` floats in [0, 1]-ish, cropped to the input's
    size, with the input's layout; ``likelihoods`` per latent at the padded size; ``bpp`` the estimated rate of
    each image (the likelihoods' code length over its real pixels)."""
    x_hat: np.ndarray
    likelihoods: dict[str, np.ndarray]
    bpp: np.ndarray | float


def models() -> list[str]:
    """The registered model names (what ``model``, ``init`` and ``load(name, variables)`` take)."""
    return sorted(REGISTRY)


def describe(name: str) -> str:
    """One line on a registered model: its paper and the official code it matches."""
    return get_spec(name).description


def model(name: str, **config):
    """The Flax module of a registered model, ``config`` over its defaults (e.g. ``N=64, M=96``)."""
    spec = get_spec(name)
    return spec.build(**{**spec.defaults, **config})


def init(name: str, seed: int = 0, **config) -> "Codec":
    """A codec with freshly initialised (random) weights: the module's ``init`` on an input of its multiple."""
    spec = get_spec(name)
    cfg = {**spec.defaults, **config}
    module = spec.build(**cfg)
    m = module.downsampling
    variables = jax.jit(module.init)(jax.random.key(seed), jnp.zeros((1, m, m, 3), jnp.float32))
    return Codec(name, jax.device_get(variables), cfg)


class Codec:
    """A model with its weights, configuration and frozen coding tables: images to ``.jlc`` bytes and back.

    Build one with ``jaxlic.load`` (files) or directly from a model name and variables (your own training):
    ``Codec("mbt2018-mean", variables, {"N": 64, "M": 96})``; ``tables`` are frozen from the variables when not
    given. ``coder``: "constriction" (any environment) or "tfc" (tensorflow-compression's ops). ``robust_margin``:
    the cross-platform repair's relative margin (``None``: the default, 1e-5; 0: off). ``max_pixels``: the
    largest image a file may declare before decoding refuses it (``None``: no limit). ``level`` / ``gain``: the
    rate of a variable-rate model (``jaxlic.models.vbr``; one of its learned levels, or any gain = 1 / the
    quantization step; default level 1); files carry it, so decoding needs neither. ``with_rate`` gives the
    same codec at another rate."""

    def __init__(self, name: str, variables, config: Mapping[str, Any] | None = None,
                 tables: Mapping[str, CodingTable] | None = None, *, coder: str = "constriction",
                 robust_margin: float | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 precision: Any = None, source: str | None = None, level: int | None = None,
                 gain: float | None = None):
        spec = get_spec(name)
        self.name = name
        self.config = {**spec.defaults, **dict(config or {})}
        self.module = spec.build(**self.config) if precision is None else spec.build(**self.config,
                                                                                      precision=precision)
        if tables is None:
            tables = self.module.build_tables(jax.device_get(variables))
        self.coder, self.robust_margin, self.source = coder, robust_margin, source
        self._engine = _Engine(name, self.module, variables, tables, self.config, max_pixels=max_pixels)
        self._engine.gain(level, gain)  # a rate this model cannot take is refused here, by name
        self.level, self.gain = level, gain
        if self._engine.rated:
            self._forward = xla_cpu.jit(lambda v, x, g: self.module.apply(v, x, gain=g))
        else:
            self._forward = xla_cpu.jit(lambda v, x: self.module.apply(v, x))

    # --- what it is ----------------------------------------------------------------------------------------
    @property
    def variables(self):
        return self._engine.variables

    @property
    def tables(self) -> dict[str, CodingTable]:
        return self._engine.tables

    @property
    def downsampling(self) -> int:
        """Inputs are padded to a multiple of this (and the output cropped back)."""
        return self.module.downsampling

    @property
    def max_pixels(self) -> int | None:
        return self._engine.max_pixels

    @max_pixels.setter
    def max_pixels(self, value: int | None) -> None:
        self._engine.max_pixels = value

    @property
    def engine(self) -> _Engine:
        """The codec driver underneath (``jaxlic.codec.Codec``: per-step timings, symbols, scales)."""
        return self._engine

    def __repr__(self) -> str:
        n = sum(int(np.size(v)) for v in jax.tree_util.tree_leaves(self.variables.get("params", {})))
        return (f"jaxlic.Codec({self.name!r}, {self.config}, {n:,} parameters"
                + (f", from {self.source!r}" if self.source else "") + ")")

    def save(self, path: str, half: bool = False) -> None:
        """Writes a model file (``.npz``: weights, configuration, coding tables) that ``load`` and the CLI read."""
        from jaxlic.export import round_to_half, save_model
        variables, tables = self.variables, self.tables
        if half:
            variables = round_to_half(variables)
            tables = self.module.build_tables(jax.device_get(variables))
        save_model(path, self.name, self.config, variables, tables, half=half)

    def with_rate(self, level: int | None = None, gain: float | None = None) -> "Codec":
        """The same variable-rate codec at another rate (a learned ``level`` or a ``gain``), sharing what was
        compiled: one model, a whole rate-distortion curve."""
        self._engine.gain(level, gain)
        other = copy.copy(self)
        other.level, other.gain = level, gain
        return other

    def _rate(self) -> dict:
        return {"level": self.level, "gain": self.gain} if self._engine.rated else {}

    def with_weights(self, variables, tables: Mapping[str, CodingTable] | None = None) -> "Codec":
        """The same model and configuration with other weights, reusing what was compiled."""
        other = copy.copy(self)
        if tables is None:
            tables = self.module.build_tables(jax.device_get(variables))
        other._engine = self._engine.with_weights(variables, tables)
        return other

    # --- coding --------------------------------------------------------------------------------------------
    def compress(self, images) -> bytes | list[bytes]:
        """One image (H, W, 3) uint8 -> bytes; a batch (B, H, W, 3) or a list of images -> a list of bytes."""
        batch = _as_batch(images)
        out = [self.encode(img, bits=False).data for img in batch.images]
        return out if batch.many else out[0]

    def decompress(self, data, *, drift: float = 0.0) -> np.ndarray | list[np.ndarray]:
        """bytes -> (H, W, 3) uint8; a list of bytes -> a list of images. ``drift``: decode as a simulated
        platform whose scales are off by up to this relative error (testing files for other machines)."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            return self._engine.decompress(bytes(data), drift)
        if isinstance(data, (list, tuple)):
            return [self.decompress(d, drift=drift) for d in data]
        raise TypeError(f"decompress takes bytes (or a list of bytes), got {type(data).__name__}")

    def encode(self, image, bits: bool = True) -> Encoded:
        """Compresses one image and reports where its bits went (``Encoded``); ``bits=False`` skips the
        per-element code lengths (what ``compress`` does)."""
        batch = _as_batch(image)
        if batch.many:
            raise ValueError("encode takes one image (H, W, 3); use compress for a batch")
        img = batch.images[0]
        r = self._engine.encode(img, self.coder, self.robust_margin, details=bits, **self._rate())
        container, data = r.container, r.data
        per = {k[:-5]: v[0] for k, v in (r.latents or {}).items() if k.endswith("_bits")}
        ph = img.shape[0] + (-img.shape[0] % self.downsampling)
        down = {k: ph // s[1] for k, s in container.shapes.items()}
        return Encoded(data, tuple(img.shape[:2]), dict(zip(self._engine.streams, map(len, container.streams))),
                       per, down)

    # --- the differentiable model ----------------------------------------------------------------------------
    def forward(self, x) -> Forward:
        """The evaluation forward on an image or a batch, padded to the model's multiple as the codec pads
        (edge replication) and cropped back: the reconstruction, the likelihoods and the estimated bpp.
        ``x``: uint8 (0..255) or floats in [0, 1], (H, W, 3) or (B, H, W, 3)."""
        x = np.asarray(x)
        single = x.ndim == 3
        xb = x[None] if single else x
        if xb.ndim != 4 or xb.shape[-1] != 3:
            raise ValueError(f"expected (H, W, 3) or (B, H, W, 3) RGB, got shape {x.shape}")
        xb = xb.astype(np.float32) / 255.0 if xb.dtype == np.uint8 else xb.astype(np.float32)
        h, w = xb.shape[1:3]
        with jax.default_matmul_precision("highest"):
            rate = (np.float32(self._engine.gain(self.level, self.gain)),) if self._engine.rated else ()
            out = self._forward(self.variables, jnp.asarray(pad_to_multiple(xb, self.downsampling)), *rate)
        lik = {k: np.asarray(v) for k, v in out["likelihoods"].items()}
        bits = sum(-np.log2(np.asarray(v, np.float64)).sum(axis=tuple(range(1, v.ndim))) for v in lik.values())
        x_hat = np.asarray(out["x_hat"])[:, :h, :w]
        bpp = bits / (h * w)
        return Forward(x_hat[0] if single else x_hat, lik, float(bpp[0]) if single else bpp)

    # --- measurement -----------------------------------------------------------------------------------------
    def evaluate(self, images, progress: bool = False, desc: str = "images") -> dict:
        """Real files for each image: {"results": means of bpp (from the bytes), estimated bpp, PSNR-RGB and
        MS-SSIM of the decoded 8-bit image, encode / decode seconds; "images": the same per image}.
        ``images``: a folder, a list of paths, a list of (H, W, 3) uint8 arrays or (name, array) pairs."""
        from jaxlic.evaluation.rd import KEYS, evaluate as _evaluate, named_images
        rows = _evaluate(self, named_images(images), progress=progress, desc=desc)
        means = {}
        for k in KEYS:
            v = [r[k] for r in rows if not np.isnan(r[k])]
            means[k] = float(np.mean(v)) if v else None
        return {"results": means, "images": rows}


@dataclasses.dataclass
class _Batch:
    images: list
    many: bool


def _as_batch(images) -> _Batch:
    """(H, W, 3) -> one; (B, H, W, 3) or a sequence of (H, W, 3) -> many; uint8 RGB only, with a message that
    says how to get there."""
    if isinstance(images, (list, tuple)):
        return _Batch([_check_uint8(np.asarray(i), f"image {k}") for k, i in enumerate(images)], True)
    a = np.asarray(images)
    if a.ndim == 4:
        return _Batch([_check_uint8(a[k], f"image {k}") for k in range(a.shape[0])], True)
    return _Batch([_check_uint8(a, "image")], False)


def _check_uint8(a: np.ndarray, what: str) -> np.ndarray:
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"{what}: expected (H, W, 3) RGB, got shape {a.shape} (grayscale: np.repeat(x[..., None], "
                         "3, -1); RGBA: x[..., :3])")
    if a.dtype != np.uint8:
        raise ValueError(f"{what}: expected uint8 pixels (0..255), got {a.dtype}; from floats in [0, 1]: "
                         "np.round(x * 255).clip(0, 255).astype(np.uint8)")
    if min(a.shape[:2]) < 1:
        raise ValueError(f"{what} is empty ({a.shape})")
    return a


# --- loading -----------------------------------------------------------------------------------------------------
def load(spec: str | os.PathLike | None = None, variables=None, *, config: Mapping[str, Any] | None = None,
         model: str | None = None, trust: bool = False, tables: str = "rebuild", **codec_options) -> Codec:
    """A ``Codec`` from any of:

    - ``None``: the default shipped model; a shipped model's name (``jaxlic.assets.SHIPPED``);
    - a jaxlic model file (``.npz`` written by ``jaxlic convert`` / ``export`` / ``Codec.save``);
    - an official PyTorch checkpoint (``.pth``, ``.pth.tar``: CompressAI's zoo files and training checkpoints,
      MLIC++, CWAM, Shen & Liu), or an ``.npz`` of its state_dict: converted on the fly (model and
      configuration detected from the keys, or ``model`` / ``config``; ``tables`` "rebuild" or "checkpoint");
      needs PyTorch for ``.pth`` files;
    - a registered model's name with your own ``variables`` (and ``config``).

    ``model``: refuse a file that holds another model. ``trust``: a PyTorch checkpoint whose pickle needs more than
    tensors and numbers is refused unless this is True (it would run the code it holds). ``codec_options``:
    ``coder``, ``robust_margin``, ``max_pixels``, ``precision``, ``level``, ``gain`` (see ``Codec``). Errors are ``UserError``
    subclasses with one line naming the path."""
    if variables is not None:
        name = os.fspath(spec) if spec is not None else model
        if name not in REGISTRY:
            raise LoadError(f"load(name, variables): {name!r} is not a registered model; models: {models()}")
        return Codec(name, variables, config, **codec_options)
    if spec is None:
        path = assets.resolve(None)
        if path is None:
            raise LoadError(f"the default model ({assets.path(assets.DEFAULT)}) is not installed; pass a model file")
    else:
        path = assets.resolve(os.fspath(spec))
        if not os.path.exists(path):
            if path == assets.path(os.fspath(spec)):
                raise LoadError(f"shipped model {spec!r} is not installed ({path} missing)")
            if path in REGISTRY:
                raise LoadError(f"{path!r} is a model name, not a file: pass your trained variables "
                                f"(jaxlic.load({path!r}, variables, config=...)) or use jaxlic.init({path!r}) for "
                                "random weights")
            raise LoadError(f"checkpoint not found: {path} (shipped models: {', '.join(assets.SHIPPED)})")
    kind = _kind(path)
    try:
        if kind == "jaxlic":
            from jaxlic.export import load_model
            name, cfg, _, v, t = load_model(path)
            if config:
                raise LoadError(f"{path} is a jaxlic model file: its configuration is stored in it ({cfg}); "
                                "drop config=")
        else:
            from jaxlic.export import convert_checkpoint
            name, cfg, _, v, t = convert_checkpoint(path, None, model, dict(config or {}), tables, trust=trust)
    except (UserError, ImportError) as e:
        raise _with_path(e, path) from None
    if model is not None and model != name:
        raise LoadError(f"{path} holds a {name} checkpoint, not {model}")
    return Codec(name, v, cfg, t, source=path, **codec_options)


def _kind(path: str) -> str:
    """What a file is, from its first bytes: a jaxlic model file, an official checkpoint, or neither."""
    if os.path.isdir(path):
        hint = (f"; make a model file from it with: jaxlic export {path} model.npz [--best]"
                if os.path.isdir(os.path.join(path, "checkpoints")) else "")
        raise LoadError(f"{path} is a folder, not a model file" + (" (a training workdir)" if hint else "") + hint)
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise LoadError(f"cannot read {path}: {e.strerror or e}") from None
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise LoadError(f"{path} is a damaged archive ({e})") from None
        if "__jaxlic__.npy" in names:
            return "jaxlic"
        if any(n.endswith("data.pkl") for n in names):
            return "torch"
        if names and all(n.endswith(".npy") for n in names):
            return "state_dict"
        raise LoadError(f"{path} is a zip archive but neither a jaxlic model file nor a PyTorch checkpoint")
    if head[:1] == b"\x80":  # a pickle: PyTorch's legacy (pre-1.6) checkpoint format
        return "torch"
    raise LoadError(f"{path} is not a jaxlic model checkpoint (.npz) or a PyTorch checkpoint (.pth, .pth.tar)")


def _with_path(e: Exception, path: str) -> Exception:
    """The same error, its message starting with the user's path where it does not name it already."""
    msg = str(e)
    if path in msg:
        return e
    try:
        return type(e)(f"{path}: {msg}")
    except TypeError:
        return LoadError(f"{path}: {msg}")

