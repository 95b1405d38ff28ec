"""bfloat16 against float32 training: the same run (config, seed, data) twice, losses compared.

    python benchmarks/precision.py --config configs/mbt2018_mean.py:runlocal,steps=300 [--remat] [--json OUT.json]

Trains the config in float32 and then in bfloat16 (``config.dtype``; ``--remat`` for both) in this process, each
in a fresh workdir, and reports: the training RD loss, bpp and PSNR averaged over the first and the last 10 % of
the steps (the loss falls if the second is lower), the relative difference of the bf16 run's final figures from
float32's, the validation loss at the end where the config validates, and the wall time per step. The exported
models' parameters are checked to be float32. Writes ``benchmarks/results/precision_<config>.json``.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def run(config: str, dtype: str, remat: bool, workdir: str) -> dict:
    import jax
    import numpy as np
    from jaxlic.export import load_model
    from jaxlic.training.config import load_config
    from jaxlic.training.trainer import Trainer
    c = load_config(config)
    c.dtype, c.remat, c.tensorboard = dtype, remat, False
    t0 = time.perf_counter()
    history = Trainer(c, workdir).run()
    wall = time.perf_counter() - t0
    n = max(len(history) // 10, 1)
    mean = lambda rows, k: float(np.mean([m[k] for m in rows]))
    out = {"dtype": dtype, "remat": remat, "steps": len(history), "wall_s": wall, "s_per_step": wall / len(history),
           "first": {k: mean(history[:n], k) for k in ("loss", "bpp", "psnr")},
           "last": {k: mean(history[-n:], k) for k in ("loss", "bpp", "psnr")},
           "val_loss": next((m["val_loss"] for m in reversed(history) if "val_loss" in m), None)}
    _, _, _, variables, _ = load_model(os.path.join(workdir, "model.npz"))
    out["exported_dtypes"] = sorted({str(a.dtype) for a in jax.tree_util.tree_leaves(variables)})
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--remat", action="store_true")
    p.add_argument("--json")
    args = p.parse_args()
    from common import write
    result = {"config": args.config, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("float32", "bfloat16"):
            r = run(args.config, dtype, args.remat, os.path.join(tmp, dtype))
            result["runs"][dtype] = r
            print(f"{dtype}: loss {r['first']['loss']:.4f} (first 10 %) -> {r['last']['loss']:.4f} (last 10 %), bpp "
                  f"{r['last']['bpp']:.4f}, PSNR {r['last']['psnr']:.2f} dB, val loss {r['val_loss']}, "
                  f"{r['s_per_step']:.3f} s/step, exported {r['exported_dtypes']}", flush=True)
    f32, bf16 = result["runs"]["float32"], result["runs"]["bfloat16"]
    result["bf16_vs_f32_last"] = {k: bf16["last"][k] / f32["last"][k] - 1 for k in ("loss", "bpp", "psnr")}
    if f32["val_loss"] is not None:
        result["bf16_vs_f32_last"]["val_loss"] = bf16["val_loss"] / f32["val_loss"] - 1
    print("bf16 / f32 - 1 at the end:", {k: f"{100 * v:+.2f} %" for k, v in result["bf16_vs_f32_last"].items()})
    name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", pathlib.Path(args.config.split(":")[0]).stem + "_" +
                  (args.config.split(":", 1)[1] if ":" in args.config else ""))
    write(result, args.json, f"precision_{name}.json")


if __name__ == "__main__":
    main()
