"""The command line's first and second run (empty, then warm compilation cache), and where a warm run's time
goes: Python and JAX start-up, loading the checkpoint, tracing / lowering / reading the compiled functions
from the cache, and the compute itself; and how many functions XLA compiled in the warm run (none, when every
function came from the cache).

    python benchmarks/cli.py [--checkpoint M.npz | --model NAME --config quality=Q] [--image kodim01.png]
        [--json OUT.json]

Without --checkpoint, ``jaxlic init`` makes the model with random weights (default: mbt2018-mean, N=128, M=192).
Each run is a fresh process, as a user's would be.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from common import write

ROOT = pathlib.Path(__file__).resolve().parents[1]

_SPLIT = """
import json, sys, time
t0 = time.perf_counter()
import jax, numpy as np
from jaxlic.cli import enable_compilation_cache
from jaxlic.codec import Codec
from jaxlic.export import load_model
from jaxlic.io import read_image
enable_compilation_cache()
compiled = []  # persistent-cache misses: functions XLA compiled (the compile-duration event also fires on hits)
jax.monitoring.register_event_listener(
    lambda name, **_: compiled.append(name) if name == "/jax/compilation_cache/cache_misses" else None)
t1 = time.perf_counter()
name, config, model, variables, tables = load_model(sys.argv[1])
codec = Codec(name, model, variables, tables, config)
image = read_image(sys.argv[2])
t2 = time.perf_counter()
n0 = len(compiled)
data = codec.compress(image)
t3 = time.perf_counter()
n1 = len(compiled)
codec.compress(image)
t4 = time.perf_counter()
codec.decompress(data)
t5 = time.perf_counter()
n2 = len(compiled)
codec.decompress(data)
t6 = time.perf_counter()
print(json.dumps({"imports_s": t1 - t0, "load_s": t2 - t1, "compress_first_call_s": t3 - t2,
                  "compress_compute_s": t4 - t3, "decompress_first_call_s": t5 - t4, "decompress_compute_s": t6 - t5,
                  "compress_xla_compilations": n1 - n0, "decompress_xla_compilations": n2 - n1}))
"""


def timed_run(args, env):
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jaxlic.cli", *map(str, args)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = pathlib.Path(os.environ.get("JAXLIC_SHARED", ROOT.parent / "shared"))
    p.add_argument("--checkpoint")
    p.add_argument("--model", default="mbt2018-mean", help="without --checkpoint: the model jaxlic init makes")
    p.add_argument("--config", default="N=128,M=192", help="without --checkpoint: its --config")
    p.add_argument("--image", default=str(shared / "datasets" / "kodak" / "kodim01.png"))
    p.add_argument("--json", default=None, help="default: benchmarks/results/cli.json")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        env = {**os.environ, "JAXLIC_CACHE_DIR": str(tmp / "cache")}
        ck = args.checkpoint
        if not ck:
            ck = tmp / "model.npz"
            subprocess.run([sys.executable, "-m", "jaxlic.cli", "init", ck, "--model", args.model, "--config",
                            args.config], check=True, env=env, stdout=subprocess.DEVNULL)
        res = {"checkpoint": str(args.checkpoint or f"{args.model} {args.config}, random weights (jaxlic init)"),
               "checkpoint_mb": os.path.getsize(ck) / 2 ** 20, "image": os.path.basename(args.image)}
        for n in ("first", "second"):  # the first fills the cache
            res[f"compress_{n}_run_s"] = timed_run(["compress", args.image, tmp / "a.jlc", "--checkpoint", ck], env)
            res[f"decompress_{n}_run_s"] = timed_run(["decompress", tmp / "a.jlc", tmp / "a.png", "--checkpoint", ck],
                                                     env)
        q = subprocess.run([sys.executable, "-c", _SPLIT, str(ck), args.image], check=True, env=env,
                           capture_output=True, text=True)
        split = json.loads(q.stdout.strip().splitlines()[-1])
    split["compress_trace_and_cache_s"] = split["compress_first_call_s"] - split["compress_compute_s"]
    split["decompress_trace_and_cache_s"] = split["decompress_first_call_s"] - split["decompress_compute_s"]
    res["warm_split"] = split
    print(f"{res['checkpoint']} ({res['checkpoint_mb']:.0f} MB), {res['image']}")
    print(f"  {'':12} {'1st run s':>9} {'2nd run s':>9}   2nd run, in one process: load, trace+cache, compute")
    for d in ("compress", "decompress"):
        print(f"  {d:12} {res[f'{d}_first_run_s']:9.2f} {res[f'{d}_second_run_s']:9.2f}   imports "
              f"{split['imports_s']:.2f}, load {split['load_s']:.2f}, trace+cache "
              f"{split[f'{d}_trace_and_cache_s']:.2f}, compute {split[f'{d}_compute_s']:.2f}, "
              f"{split[f'{d}_xla_compilations']} functions compiled")
    write(res, args.json, "cli.json")


if __name__ == "__main__":
    main()
