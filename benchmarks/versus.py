"""One model against its official code, back to back, the weights handed over (``benchmarks/tcm.py``,
``benchmarks/hpcm.py``): the official side runs in a child process of another interpreter, writes its state_dict
(its own initialisation) and answers timing requests; jaxlic converts the state_dict, so both sides run the same
weights on the same image. Runs alternate (jaxlic, official, ...) after a warm-up of each; medians are reported with
each side's peak RSS. JSON fields (a contract for scripts): ``forward_s``, ``compress_s``, ``decompress_s``
(medians), ``compile_s`` (tracing, lowering and XLA compilation in the first compress and decompress),
``peak_rss_mb``, ``bytes`` (jaxlic's file), and under ``official`` the same figures and its ``bytes``; ``ratios``
(official / jaxlic seconds)."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

from common import CompileClock, rss_mb, timed

WHAT = ("forward", "compress", "decompress")


def serve(net, x, nbytes_of) -> None:
    """The official side, after its warm-up: answers "forward" / "compress" / "decompress" / "rss" on stdin with
    one JSON line each (``nbytes_of(enc)``: the bytes of its compress's strings)."""
    import torch
    with torch.no_grad():
        net(x)
        enc = net.compress(x)
        net.decompress(enc["strings"], enc["shape"])
        print(json.dumps({"torch": torch.__version__, "bytes": nbytes_of(enc)}), flush=True)
        for line in sys.stdin:
            what = line.strip()
            if what == "rss":
                print(json.dumps({"peak_rss_mb": rss_mb()}), flush=True)
            elif what == "forward":
                print(json.dumps({"s": timed(lambda: net(x))[0]}), flush=True)
            elif what == "compress":
                t, enc = timed(lambda: net.compress(x))
                print(json.dumps({"s": t}), flush=True)
            else:
                print(json.dumps({"s": timed(lambda: net.decompress(enc["strings"], enc["shape"]))[0]}), flush=True)


def run(child_cmd: list[str], image, label: str, repeats: int, coder: str, threads: int) -> dict:
    """Starts the official side (``child_cmd`` + ``--_weights PATH``), converts its weights, times both."""
    import jax
    from jaxlic.codec import Codec
    from jaxlic.export import convert_checkpoint
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "weights.npz")
        child = subprocess.Popen(child_cmd + ["--_weights", weights], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True)
        line = child.stdout.readline()
        if not line:
            raise SystemExit(f"the official {label} could not be run with {child_cmd[0]} (see above)")
        info = json.loads(line)
        with np.load(weights) as f:
            name, config, model, variables, tables = convert_checkpoint({k: f[k] for k in f.files})
    codec = Codec(name, model, variables, tables, config)
    with CompileClock() as clock:
        _, data = timed(lambda: codec.compress(image, coder))
        codec.decompress(data)
    x = jax.numpy.asarray(image[None].astype(np.float32) / 255)
    from jaxlic import xla_cpu
    apply = xla_cpu.jit(model.apply)
    ours = {"forward": lambda: jax.block_until_ready(apply(variables, x)),
            "compress": lambda: codec.compress(image, coder), "decompress": lambda: codec.decompress(data)}
    ours["forward"]()

    def theirs(what):
        child.stdin.write(what + "\n")
        child.stdin.flush()
        return json.loads(child.stdout.readline())

    runs = {w: [] for w in WHAT}
    official = {w: [] for w in WHAT}
    for _ in range(repeats):  # alternating, so a change of load on the machine hits both
        for what in WHAT:
            runs[what].append(timed(ours[what])[0])
            official[what].append(theirs(what)["s"])
    off_rss = theirs("rss")["peak_rss_mb"]
    child.stdin.close()
    child.wait()
    med = statistics.median
    res = {"model": name, "config": config, "image_hw": list(image.shape[:2]),
           "weights": "the official initialisation (torch.manual_seed(0)), converted", "coder": coder,
           "bytes": len(data), "repeats": repeats, "jax": jax.__version__,
           **{f"{k}_s": med(v) for k, v in runs.items()}, "runs": runs, "compile_s": clock.seconds,
           "peak_rss_mb": rss_mb(),
           "official": {**{f"{k}_s": med(v) for k, v in official.items()}, "runs": official, "bytes": info["bytes"],
                        "peak_rss_mb": off_rss, "torch": info["torch"], "torch_threads": threads}}
    res["ratios"] = {f"{k}_s": res["official"][f"{k}_s"] / res[f"{k}_s"] for k in WHAT}
    print(f"{label}, {image.shape[1]}x{image.shape[0]}, official init, median of {repeats}")
    print(f"  {'':9} {'forward':>8} {'compress':>9} {'decompress':>10} {'bytes':>7} {'peak RSS':>9}")
    for who, r in (("jaxlic", res), ("official", res["official"])):
        print(f"  {who:9} {r['forward_s']:8.3f} {r['compress_s']:9.3f} {r['decompress_s']:10.3f} {r['bytes']:7d} "
              f"{r['peak_rss_mb']:7.0f}MB")
    print("  official / jaxlic: " + ", ".join(f"{k[:-2]} {v:.2f}x" for k, v in res["ratios"].items())
          + f"  (jaxlic compile {clock.seconds:.0f} s)")
    return res
