"""What every benchmark records beside its numbers: where and with what it ran, and where the JSON goes."""
from __future__ import annotations

import json
import os
import pathlib
import platform
import resource
import time

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def machine() -> dict:
    import jax
    import numpy as np
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "jax": jax.__version__,
            "numpy": np.__version__, "devices": [str(d) for d in jax.devices()],
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


class CompileClock:
    """JAX's own account of compilation while active (``with clock:``): seconds spent tracing, lowering and
    compiling (XLA), and how many functions went to XLA. Exact where first-call-minus-warm differences drown in
    the machine's noise. Meant for processes without the persistent cache: with it, a function read from the
    cache also fires the compile event (with the read's duration)."""

    _EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
               "/jax/core/compile/backend_compile_duration")
    _active: list = []

    def __init__(self):
        self.seconds, self.compiled = 0.0, 0
        if not CompileClock._active:  # one listener per process (JAX has no public way to remove one)
            import jax
            CompileClock._active.append(None)
            jax.monitoring.register_event_duration_secs_listener(CompileClock._record)

    @staticmethod
    def _record(name, seconds, **_):
        for clock in CompileClock._active[1:]:
            if name in CompileClock._EVENTS:
                clock.seconds += seconds
                clock.compiled += name == CompileClock._EVENTS[-1]

    def __enter__(self):
        CompileClock._active.append(self)
        return self

    def __exit__(self, *exc):
        CompileClock._active.remove(self)


def write(result: dict, path: str | None, default_name: str) -> str:
    """Writes ``result`` with the machine description to ``path`` (default ``benchmarks/results/NAME.json``)."""
    out = pathlib.Path(path) if path else RESULTS / default_name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**result, "machine": machine()}, indent=1) + "\n")
    print(f"wrote {out}")
    return str(out)


def import_compressai():
    """CompressAI imports torchvision at package import (for its datasets and transforms, which no model uses).
    Where torchvision's build does not load against the installed torch (PyPI's torchvision is built for CUDA
    torch; this machine has a CPU torch), it is replaced by an empty module; the note goes into the JSON."""
    try:
        import compressai
        return compressai, ""
    except (ImportError, RuntimeError, OSError) as e:
        if "torchvision" not in repr(e):
            raise
    import importlib.abc
    import sys
    import importlib.machinery
    import types

    class Placeholder(type):  # any attribute of a placeholder class is another one (InterpolationMode.NEAREST)
        def __getattr__(cls, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return Placeholder(name, (), {"__init__": lambda self, *a, **k: None})

    class Empty(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return Placeholder(name, (), {"__init__": lambda self, *a, **k: None})

    class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] == "torchvision":
                return importlib.machinery.ModuleSpec(name, self, is_package=True)

        def create_module(self, spec):
            return Empty(spec.name)

        def exec_module(self, module):
            module.__path__ = []

    for name in [m for m in sys.modules if m.split(".")[0] in ("torchvision", "compressai")]:
        del sys.modules[name]
    sys.meta_path.insert(0, Finder())
    import compressai
    return compressai, "torchvision does not load against this torch; replaced by an empty module (unused by models)"


def official_compressai(parent: str):
    """Makes ``import compressai`` load the official code's own (modified, pure-Python) CompressAI package from
    ``parent``, with pip CompressAI's compiled ``_CXX`` / ``ans`` (the same C++ code) in place of the extensions the
    official repositories ship for Python 3.7 only."""
    import glob
    import importlib.machinery
    import importlib.util
    import sys
    pip = importlib.util.find_spec("compressai")
    if pip is None:
        raise SystemExit("pip's compressai (1.2.8) is needed for its compiled rANS extensions")
    ext = {}
    for name in ("_CXX", "ans"):
        so = glob.glob(os.path.join(os.path.dirname(pip.origin), f"{name}*.so"))
        if not so:
            raise SystemExit(f"pip compressai has no {name} extension")
        loader = importlib.machinery.ExtensionFileLoader(f"compressai.{name}", so[0])
        ext[name] = importlib.util.module_from_spec(importlib.util.spec_from_loader(f"compressai.{name}", loader))
        loader.exec_module(ext[name])
    import_compressai()  # torchvision may not load against this torch: an empty stand-in (the models do not use it)
    for name in [m for m in sys.modules if m.split(".")[0] == "compressai"]:
        del sys.modules[name]
    sys.modules.update({f"compressai.{k}": v for k, v in ext.items()})
    sys.path.insert(0, parent)


def read_image(path):
    """An image file as (H, W, 3) uint8."""
    import numpy as np
    from PIL import Image
    return np.asarray(Image.open(path).convert("RGB"))


def timed(fn):
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def rss_mb():
    """Peak RSS of this process's own memory. Not ``ru_maxrss``: Linux carries the high-water mark of the memory
    image an exec replaced, so a child started by a parent holding the converted weights reported the parent's."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_CLOCK_C = r"""
#include <stdio.h>
#include <time.h>
int main(void) {
    struct timespec a, b;
    long n = 300000000L, x = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++)  /* 8 dependent one-cycle adds; the loop's own count runs beside them */
        __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                         "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%f\n", 8.0 * n / ((b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9) / 1e9);
    return x == 0;
}
"""


def cpu_peak(fma_pipes: int = 2, lanes: int = 8) -> dict:
    """This processor's arithmetic peak: cores x FMA pipes x float32 lanes x 2 x clock. The clock is measured,
    not read (a VM's /proc/cpuinfo gives the nominal one: 2596 MHz here, while a 2048^3 product already runs
    above that peak): a chain of dependent integer adds, one cycle each on x86, compiled here with gcc and timed,
    the best of three. Zen 4: two 256-bit FMA pipes (AVX-512 runs on them in halves), 8 float32 lanes; its
    AVX512_BF16 ``vdpbf16ps`` does twice the products per instruction (bf16 pairs), hence bf16 peak = 2x."""
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = pathlib.Path(tmp) / "clock.c", pathlib.Path(tmp) / "clock"
        src.write_text(_CLOCK_C)
        subprocess.run(["gcc", "-O1", "-o", str(exe), str(src)], check=True)
        ghz = max(float(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout)
                  for _ in range(3))
    cores = os.cpu_count()
    fp32 = cores * fma_pipes * lanes * 2 * ghz
    return {"clock_ghz": ghz, "clock_method": "dependent integer adds (1 cycle each), gcc -O1, best of 3",
            "cores": cores, "fma_pipes": fma_pipes, "float32_lanes": lanes, "fp32_peak_gflops": fp32,
            "bf16_peak_gflops": 2 * fp32}
