"""The compile options of jaxlic's own jitted functions on XLA:CPU.

jax 0.10's XLA:CPU hands convolutions to YNNPACK; measured on this library's layers (``benchmarks/layers.py``,
docs/XLA_CPU.md), its Eigen convolutions are faster: a 5x5 stride-2 convolution 1.5x forward, the kernel gradient
of a 3x3 one with 512 outputs (a transposed convolution's phase form) 5x. ``jit`` is ``jax.jit`` with matrix
products left to YNNPACK and convolutions to Eigen on CPU; on other backends, and where XLA has no such option
(jax 0.5, whose XLA:CPU uses Eigen anyway), it is plain ``jax.jit``. ``JAXLIC_XLA_CPU=default`` leaves XLA's
defaults (to measure against them).

In a training loop of your own: ``@jaxlic.jit`` (this ``jit``), or ``jax.jit(step,
compiler_options=jaxlic.xla_cpu.compiler_options())``.
"""
from __future__ import annotations

import functools
import os

import jax
import numpy as np

OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


@functools.cache
def compiler_options() -> dict | None:
    """``OPTIONS`` where the default backend is a CPU whose XLA knows them, else None."""
    if os.environ.get("JAXLIC_XLA_CPU") == "default" or jax.default_backend() != "cpu":
        return None
    try:
        jax.jit(lambda x: x + 1, compiler_options=OPTIONS).lower(np.float32(0)).compile()
    except Exception:  # an XLA without the option refuses it by name (XlaRuntimeError: No such compile option)
        return None
    return dict(OPTIONS)


def jit(fun, **kwargs):
    """``jax.jit`` with ``compiler_options()``."""
    return jax.jit(fun, compiler_options=compiler_options(), **kwargs)
