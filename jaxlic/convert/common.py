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


def load_torch_state_dict(path: str) -> dict[str, np.ndarray]:
    """Reads a ``.pth``/``.pth.tar`` (a state_dict, or a dict holding one under ``state_dict``) into numpy."""
    if str(path).endswith(".npz"):
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    try:
        import torch
    except ImportError as e:
        raise ImportError("reading .pth checkpoints needs PyTorch: pip install 'jaxlic[torch]'") from e
    obj = torch.load(path, map_location="cpu", weights_only=False)
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
