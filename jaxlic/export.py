"""Inference checkpoints: one ``.npz`` with the model name, its config, its variables and frozen coding tables,
and the conversion of official checkpoints into them (``convert_checkpoint``: the key maps of ``jaxlic.convert``
and the registry's model detection, above both).

This is what the CLI, ``eval.py`` and the converter exchange (training checkpoints are orbax directories).
Loading checks the model name, the configuration and every array, and says what is wrong if anything is.
"""
from __future__ import annotations

import json
import os
import re
import zipfile
import zlib
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxlic.convert.common import ConversionError, load_torch_state_dict, strip_prefixes
from jaxlic.convert.compressai import compressai_tables
from jaxlic.entropy.tables import CodingTable
from jaxlic.errors import UserError
from jaxlic.registry import detect_model, get_spec

_META = "__jaxlic__"
FORMAT = 1


class CheckpointError(UserError):
    pass


def save_model(path: str, name: str, config: dict, variables, tables: dict[str, CodingTable],
               half: bool = False) -> None:
    """Writes weights, frozen tables and metadata. ``half`` stores the weights ("params") in float16; they must
    already be float16-representable (see ``round_to_half``) so the tables match what is loaded."""
    flat = {"/".join(("variables",) + k): np.asarray(v) for k, v in traverse_util.flatten_dict(
        jax.device_get(dict(variables))).items()}
    if half:
        for k, v in flat.items():
            if k.startswith("variables/params/") and v.dtype == np.float32:
                h = v.astype(np.float16)
                if not np.array_equal(h.astype(np.float32), v):
                    raise ValueError(f"{k} is not float16-representable; round the weights first (round_to_half)")
                flat[k] = h
    for tname, t in tables.items():
        flat.update({f"tables/{tname}/{k}": np.asarray(v) for k, v in t.as_variables().items()})
    meta = {"format": FORMAT, "model": name, "config": config}
    tmp = f"{path}.tmp{os.getpid()}.npz"
    np.savez_compressed(tmp, **{_META: np.frombuffer(json.dumps(meta).encode(), np.uint8)}, **flat)
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written checkpoint under the real name


def round_to_half(variables):
    """Weights ("params") rounded to float16 and back: what a ``half`` checkpoint computes with."""
    out = dict(variables)
    out["params"] = jax.tree_util.tree_map(lambda v: np.asarray(v, np.float16).astype(np.float32),
                                           jax.device_get(variables["params"]))
    return out


def init_variables(name: str, config: dict, rng=None):
    """Fresh variables for a model (random weights) plus the tables frozen from them."""
    spec = get_spec(name)
    model = spec.build(**config)
    x = jnp.zeros((1, model.downsampling, model.downsampling, 3), jnp.float32)
    variables = jax.jit(model.init)(jax.random.key(0) if rng is None else rng, x)
    return model, variables, model.build_tables(jax.device_get(variables))


# what reading a damaged archive raises (a truncated member: EOFError, BadZipFile or zlib.error)
_UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)


def load_model(path: str, precision: Any = None):
    """Returns (name, config, model, variables, tables)."""
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if os.path.isdir(path):
        hint = (f"; make a model file from it with: jaxlic export {path} model.npz [--best]"
                if os.path.isdir(os.path.join(path, "checkpoints")) else "")
        raise CheckpointError(f"{path} is a folder, not a model checkpoint" + (
            " (a training workdir)" if hint else "") + hint)
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is not a jaxlic model checkpoint (not an .npz archive)")
    try:
        f = np.load(path, allow_pickle=False)
        meta = json.loads(bytes(f[_META]).decode())
        name, config = meta["model"], dict(meta["config"])
    except _UNREADABLE as e:
        raise CheckpointError(f"{path} is not a jaxlic model checkpoint ({e})") from None
    with f:
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{path}: unsupported checkpoint format {meta.get('format')}")
        spec = get_spec(name)
        model = spec.build(**config, precision=precision) if precision is not None else spec.build(**config)
        x = jax.ShapeDtypeStruct((1, model.downsampling, model.downsampling, 3), jnp.float32)
        template = traverse_util.flatten_dict(jax.eval_shape(model.init, jax.random.key(0), x))
        keys = {tuple(k.split("/")[1:]): k for k in f.files if k.startswith("variables/")}
        missing = [("/".join(k)) for k in template if k not in keys]
        extra = [("/".join(k)) for k in keys if k not in template]
        if missing or extra:
            raise CheckpointError(f"{path} does not fit {name} {config}: missing {missing[:10]}, unexpected "
                                  f"{extra[:10]}")
        flat = {}
        for k, t in template.items():  # leaf by leaf, so a large model is in memory once, not twice
            try:
                v = f[keys[k]]
            except _UNREADABLE as e:
                raise CheckpointError(f"{path}: {'/'.join(k)} cannot be read ({e})") from None
            if v.shape != t.shape:
                raise CheckpointError(f"{path} does not fit {name} {config}: {'/'.join(k)} {v.shape} != {t.shape}")
            flat[k] = jnp.asarray(v, t.dtype)  # float16-stored weights compute in the model's dtype
        variables = traverse_util.unflatten_dict(flat)
        tables = {}
        table_keys = [k for k in f.files if k.startswith("tables/")]
        for tname in sorted({k.split("/")[1] for k in table_keys}):
            prefix = f"tables/{tname}/"
            try:
                tables[tname] = CodingTable.from_variables({k[len(prefix):]: f[k] for k in table_keys
                                                            if k.startswith(prefix)})
            except _UNREADABLE as e:
                raise CheckpointError(f"{path}: coding table {tname!r}: {e}") from None
    if not tables:
        raise CheckpointError(f"{path} has no frozen coding tables; run the freeze step (jaxlic.export.save_model)")
    return name, config, model, variables, tables


def convert_checkpoint(source, output: str | None = None, model: str | None = None, config: dict | None = None,
                       tables: str = "rebuild", notes: list | None = None, trust: bool = False):
    """Reads an official checkpoint (``.pth``/``.pth.tar``, a state_dict ``.npz``, or a state_dict mapping),
    detects the model and its configuration from the keys and shapes unless ``model``/``config`` say otherwise,
    maps every key (a ``ConversionError`` lists anything missing, left over or of the wrong shape) and, if
    ``output`` is given, writes a jaxlic checkpoint that the CLI and ``eval.py`` load. ``tables``: "rebuild"
    the coding tables from the weights, or take the "checkpoint"'s CDF buffers. ``notes``, if given, receives a
    line for each official module that was dropped because the official forward never uses it. ``trust``: load a
    ``.pth`` whose pickle needs more than tensors and numbers (it runs the code it holds; see
    ``load_torch_state_dict``).

    Returns (model name, config, model, variables, tables)."""
    if tables not in ("rebuild", "checkpoint"):
        raise ValueError(f"tables must be 'rebuild' or 'checkpoint', got {tables!r}")
    if isinstance(source, (str, os.PathLike)):
        if not os.path.exists(source):
            raise ConversionError(f"checkpoint not found: {source}")
        state_dict = load_torch_state_dict(str(source), trust=trust)
    elif isinstance(source, Mapping):
        state_dict = source
    else:
        raise TypeError(f"source must be a path or a state_dict, got {type(source).__name__}")
    state_dict = strip_prefixes(state_dict)
    if model is None:
        name, cfg = detect_model(state_dict)
    else:
        spec = get_spec(model)
        try:
            other, _ = detect_model(state_dict)
        except UserError:
            other = None  # no single model matches: the user's --model decides
        if other is not None and other != model:
            raise ConversionError(f"--model {model}: not a {model} checkpoint; it holds a {other} (detected from "
                                  "its keys)")
        try:
            detected = spec.detect_config(state_dict) if spec.detect_config else {}
        except ValueError as e:
            raise ConversionError(f"--model {model}: {e}") from None
        name, cfg = model, {**spec.defaults, **detected}
    cfg.update(config or {})
    spec = get_spec(name)
    module = spec.build(**cfg)
    x = jax.ShapeDtypeStruct((1, module.downsampling, module.downsampling, 3), jnp.float32)
    template = jax.eval_shape(module.init, jax.random.key(0), x)
    variables = spec.convert(state_dict, template)
    for pattern, why in spec.unused.items():
        dropped = [k for k in state_dict if re.fullmatch(pattern, k)]
        if dropped and notes is not None:
            notes.append(f"dropped {len(dropped)} keys matching {pattern}: {why}")
    out_tables = module.build_tables(variables)
    if tables == "checkpoint":
        for tname in out_tables:
            t = compressai_tables(state_dict, tname)
            if t is None:
                raise ConversionError(f"tables=checkpoint: the checkpoint has no CDF buffers for {tname}")
            out_tables[tname] = t
    if output:
        save_model(output, name, cfg, variables, out_tables)
    return name, cfg, module, variables, out_tables
