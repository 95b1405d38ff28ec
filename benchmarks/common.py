"""What every benchmark records beside its numbers: where and with what it ran, and where the JSON goes."""
from __future__ import annotations

import json
import os
import pathlib
import platform
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


def write(result: dict, path: str | None, default_name: str) -> str:
    """Writes ``result`` with the machine description to ``path`` (default ``benchmarks/results/NAME.json``)."""
    out = pathlib.Path(path) if path else RESULTS / default_name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**result, "machine": machine()}, indent=1) + "\n")
    print(f"wrote {out}")
    return str(out)
