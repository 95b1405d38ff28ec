"""Official checkpoint -> jaxlic inference checkpoint, the Python API behind ``jaxlic convert``."""
from __future__ import annotations

import os
import re
from typing import Mapping

from jaxlic.convert.common import ConversionError, load_torch_state_dict, strip_prefixes
from jaxlic.errors import UserError


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
    import jax
    import jax.numpy as jnp
    from jaxlic.convert.compressai import compressai_tables
    from jaxlic.export import save_model
    from jaxlic.registry import detect_model, get_spec

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
