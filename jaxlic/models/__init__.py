"""Explicit model registry: name -> how to build, convert and code it (no string imports)."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from jaxlic.convert import compressai as _cai
from jaxlic.models.hyperprior import MeanScaleHyperprior


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[..., Any]              # config kwargs -> flax module
    defaults: dict                         # default config
    key_map: Callable[[str], tuple | None]  # PyTorch key -> (flax path, layout)
    ignore: tuple[str, ...]                # PyTorch buffers that carry no learned state
    description: str = ""


REGISTRY: dict[str, ModelSpec] = {
    "mbt2018-mean": ModelSpec(
        "mbt2018-mean", lambda **c: MeanScaleHyperprior(**c), {"N": 128, "M": 192},
        _cai.mbt2018_mean_key, _cai.COMPRESSAI_BUFFERS,
        "Mean-scale hyperprior, Minnen et al. 2018 (CompressAI mbt2018-mean layout)"),
}


def get_spec(name: str) -> ModelSpec:
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {sorted(REGISTRY)}")
    return REGISTRY[name]
