"""Hands the memory XLA's compiler freed back to the operating system.

XLA compiles with a great many small allocations. glibc keeps what they free in its heap instead of returning it
(openxla/xla#2265): after compiling the Shen & Liu forward at full size that is about 250 MB, and it stays in the
process's footprint under every run that follows, so it adds to the peak. ``malloc_trim(0)`` returns it; it costs
milliseconds against a compilation's seconds. Other C libraries (macOS, musl) are left alone.
"""
from __future__ import annotations

import ctypes
import ctypes.util

_state: dict = {}


def _trim() -> None:
    if _state["libc"] is not None:
        _state["libc"].malloc_trim(0)


def trim_after_compiles() -> bool:
    """Installs, once per process, a listener that trims glibc's heap after every XLA compilation. Returns whether
    trimming is possible here (glibc)."""
    if "libc" not in _state:
        libc = None
        try:
            candidate = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            if hasattr(candidate, "malloc_trim"):
                libc = candidate
        except OSError:
            pass
        _state["libc"] = libc
        if libc is not None:
            import jax
            jax.monitoring.register_event_duration_secs_listener(_after_event)
    return _state["libc"] is not None


def _after_event(name: str, seconds: float, **_) -> None:
    if name == "/jax/core/compile/backend_compile_duration":
        _trim()
