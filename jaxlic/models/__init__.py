"""Explicit model registry: name -> how to build, convert and code it (no string imports)."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from jaxlic.convert import compressai as _cai
from jaxlic.errors import UserError
from jaxlic.models import mlicpp as _mlicpp
from jaxlic.models.hyperprior import MeanScaleHyperprior


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[..., Any]              # config kwargs -> flax module
    defaults: dict                         # default config
    key_map: Callable[[str], tuple | None]  # PyTorch key -> (flax path, layout)
    ignore: tuple[str, ...]                # PyTorch buffers that carry no learned state
    description: str = ""
    # official state_dict (prefixes stripped) -> config; raises ValueError if it is not this model
    detect_config: Callable[[Mapping], dict] | None = None


def _mbt2018_mean_config(sd) -> dict:
    try:
        N, M = int(sd["g_a.0.weight"].shape[0]), int(sd["g_a.6.weight"].shape[0])
        means = sd["h_s.4.weight"].shape[0] == 2 * M  # scales and means; bmshj2018-hyperprior's h_s gives M scales
    except KeyError as e:
        raise UserError(f"not an mbt2018-mean state_dict: no {e}") from None
    if not means or "context_prediction.weight" in sd:  # mbt2018 (joint) has an autoregressive context too
        raise UserError("not an mbt2018-mean state_dict (its hyper-synthesis or context model differs)")
    return {"N": N, "M": M}


REGISTRY: dict[str, ModelSpec] = {
    "mbt2018-mean": ModelSpec(
        "mbt2018-mean", lambda **c: MeanScaleHyperprior(**c), {"N": 128, "M": 192},
        _cai.mbt2018_mean_key, _cai.COMPRESSAI_BUFFERS,
        "Mean-scale hyperprior, Minnen et al. 2018 (CompressAI mbt2018-mean layout)", _mbt2018_mean_config),
    "mlicpp": ModelSpec(
        "mlicpp", lambda **c: _mlicpp.MLICPlusPlus(**c),
        {"N": 192, "M": 320, "slice_num": 10, "context_window": 5, "old_g_s": False, "old_lrp": False},
        _mlicpp.mlicpp_key, _cai.COMPRESSAI_BUFFERS + _mlicpp.MLICPP_BUFFERS,
        "MLIC++, Jiang & Wang 2023 (official JiangWeibeta/MLIC layout; current and Old modules)",
        _mlicpp.mlicpp_config),
}


def get_spec(name: str) -> ModelSpec:
    if name not in REGISTRY:
        raise UserError(f"unknown model {name!r}; available: {sorted(REGISTRY)}")
    return REGISTRY[name]


def detect_model(state_dict: Mapping) -> tuple[str, dict]:
    """(model name, config) of an official state_dict, from its keys and shapes."""
    found = []
    for spec in REGISTRY.values():
        try:
            found.append((spec.name, {**spec.defaults, **spec.detect_config(state_dict)}))
        except ValueError:
            pass
    if len(found) != 1:
        raise UserError("cannot tell which model this checkpoint holds "
                         f"({'none' if not found else ', '.join(n for n, _ in found)} of {sorted(REGISTRY)} "
                         "match its keys); pass --model")
    return found[0]
