"""Models shipped with jaxlic: mean-scale hyperpriors (N=64, M=96) trained on BSDS500 on a 2-core CPU with
``configs/mbt2018_mean.py:cpu`` (commands, wall times and Kodak results: README.md). Weights are stored in float16
and computed in float32; the coding tables were frozen from exactly those weights."""
from __future__ import annotations

import os

DIR = os.path.dirname(os.path.abspath(__file__))
SHIPPED = ("mbt2018-mean-cpu-0.0018", "mbt2018-mean-cpu-0.0067", "mbt2018-mean-cpu-0.0250")
DEFAULT = "mbt2018-mean-cpu-0.0067"


def path(name: str) -> str:
    return os.path.join(DIR, f"{name}.npz")


def available() -> list[str]:
    """Paths of the shipped models present in this install, lowest rate first."""
    return [path(n) for n in SHIPPED if os.path.exists(path(n))]


def resolve(spec: str | None) -> str | None:
    """A checkpoint argument: a file, a shipped model's name, or None for the default model (None if absent)."""
    if spec is None:
        return path(DEFAULT) if os.path.exists(path(DEFAULT)) else None
    if not os.path.exists(spec) and spec in SHIPPED:
        return path(spec)
    return spec
