"""Model-independent parts of checkpoint conversion."""
from __future__ import annotations

import re
from typing import Callable, Mapping

import jax
import numpy as np
from flax import traverse_util

from jaxlic.errors import UserError

_PREFIXES = ("module.", "_orig_mod.")


class ConversionError(UserError):
    pass


def strip_prefixes(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Drops DataParallel (``module.``) and torch.compile (``_orig_mod.``) prefixes."""
    out = {}
    for k, v in state_dict.items():
        while k.startswith(_PREFIXES):
            k = k.split(".", 1)[1]
        out[k] = np.asarray(v)
    return out


class UnsafeCheckpoint(ConversionError):
    """A checkpoint whose pickle needs more than tensors, numbers and containers to load (it could run code)."""


def _numpy_globals() -> list:
    """numpy scalars and arrays inside a checkpoint (a ``best_loss`` saved as ``np.float64``): data, not code.
    Pickles name them by the numpy that wrote them (``numpy.core`` before 2.0, ``numpy._core`` since)."""
    import importlib
    multiarray = importlib.import_module("numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray")
    out = [np.dtype, np.ndarray]
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out += [(multiarray.scalar, f"{mod}.scalar"), (multiarray._reconstruct, f"{mod}._reconstruct")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        out += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return out


def load_torch_state_dict(path: str, trust: bool = False) -> dict[str, np.ndarray]:
    """Reads a ``.pth``/``.pth.tar`` (a state_dict, or a dict holding one under ``state_dict``, as CompressAI's
    training checkpoints with their optimizer and scheduler states) into numpy.

    Through torch's weights-only unpickler: a checkpoint is data, and a pickle that would call anything but the
    constructors of tensors, numbers, containers and numpy scalars is refused (``UnsafeCheckpoint``, naming
    what it asks for) without running it. ``trust=True`` loads it with the full unpickler, which runs whatever
    code the file holds: only for files you made yourself or whose source you trust."""
    if str(path).endswith(".npz"):
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    try:
        import torch
    except ImportError:
        raise ImportError(f"{path}: reading PyTorch checkpoints needs PyTorch: pip install 'jaxlic[torch]' "
                          "(or convert it where torch is installed: jaxlic convert IN.pth OUT.npz)") from None
    import pickle
    try:
        if trust:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        else:
            with torch.serialization.safe_globals(_numpy_globals()):
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if trust:
            raise ConversionError(f"{path} is not a readable PyTorch checkpoint ({e})") from None
        found = re.findall(r"GLOBAL ([\w.]+)", str(e))
        try:  # everything the file would import, without running it (zip-format checkpoints)
            found = torch.serialization.get_unsafe_globals_in_checkpoint(path) or found
        except Exception:  # an older torch, a legacy-format file: the unpickler's message named the first
            pass
        allowed = {o[1] if isinstance(o, tuple) else f"{o.__module__}.{o.__qualname__}" for o in _numpy_globals()}
        found = [g for g in found if g not in allowed]
        raise UnsafeCheckpoint(
            f"{path}: refused to load: its pickle calls {', '.join(found) or 'something'}, which a checkpoint of "
            "weights does not need and which could run code; nothing was run. Load it with trust=True "
            "(--trust-pickle) only if you made it yourself or trust its source") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise ConversionError(f"{path} is not a readable PyTorch checkpoint ({str(e).splitlines()[0]})") from None
    if isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ConversionError(f"{path} holds a {type(obj).__name__}, not a state_dict")
    return {k: v.detach().cpu().numpy() for k, v in obj.items() if hasattr(v, "detach")}


LAYOUTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "copy": lambda w: w,
    "conv": lambda w: w.transpose(2, 3, 1, 0),    # (O, I, kH, kW) -> (kH, kW, I, O)
    "deconv": lambda w: w.transpose(2, 3, 0, 1),  # ConvTranspose2d (I, O, kH, kW) -> (kH, kW, I, O)
    "linear": lambda w: w.T,
    # TCM's relative-position table (heads, 2w - 1, 2w - 1) -> Swin's ((2w - 1)^2, heads)
    "relative_bias": lambda w: w.reshape(w.shape[0], -1).T,
}


def convert_state_dict(state_dict: Mapping[str, np.ndarray], key_map: Callable[[str], tuple | None],
                       template, ignore: tuple[str, ...] = ()) -> dict:
    """Fills the variables ``template`` (a pytree of shapes, e.g. from ``jax.eval_shape``) from ``state_dict``.

    ``key_map(key)`` returns ``(flax path tuple, layout)`` or ``None`` for keys that are not parameters;
    ``(path, layout, where)`` writes the value into part ``where`` (an index) of a larger leaf, e.g. one chunk
    of parameters stacked over chunks. Keys matching a regex in ``ignore`` are known buffers. Every template
    leaf must be filled (every element of it) with the right shape and every key used, else a
    ``ConversionError`` lists what is missing, left over or mismatched.
    """
    flat_t = traverse_util.flatten_dict(jax.tree_util.tree_map(lambda s: tuple(s.shape), template,
                                                               is_leaf=lambda x: hasattr(x, "shape")))
    out, filled, unused, mismatched = {}, {}, [], []
    for key, value in strip_prefixes(state_dict).items():
        if any(re.fullmatch(p, key) for p in ignore):
            continue
        m = key_map(key)
        if m is None or tuple(m[0]) not in flat_t:
            unused.append(key)
            continue
        path, layout = tuple(m[0]), m[1]
        where = m[2] if len(m) > 2 else None
        w = LAYOUTS[layout](np.asarray(value, np.float32))
        if where is None:
            target = flat_t[path]
        else:
            if path not in out:
                out[path] = np.zeros(flat_t[path], np.float32)
                filled[path] = np.zeros(flat_t[path], bool)
            target = out[path][where].shape
        if w.shape != target:
            w = w.reshape(target) if w.size == int(np.prod(target)) and layout == "copy" else w
        if w.shape != target:
            mismatched.append(f"{key} {tuple(value.shape)} -> {'/'.join(path)} expects {target}")
            continue
        if where is None:
            out[path] = w
        else:
            out[path][where] = w
            filled[path][where] = True
    missing = ["/".join(p) for p in flat_t if p not in out]
    missing += [f"{'/'.join(p)} (index {np.flatnonzero(~f.reshape(f.shape[0], -1).all(1)).tolist()} of {f.shape[0]})"
                for p, f in filled.items() if not f.all()]
    if unused or missing or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} parameters missing from the checkpoint: {missing}")
        if unused:
            parts.append(f"{len(unused)} checkpoint keys not used: {unused}")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatches: {mismatched}")
        raise ConversionError("checkpoint does not match the model (wrong model or configuration?)\n  "
                              + "\n  ".join(parts))
    return traverse_util.unflatten_dict(out)
