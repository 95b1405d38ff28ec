"""Training-step speed of the mean-scale hyperprior, jaxlic vs CompressAI, measured back to back in one run.

    python benchmarks/train_step.py [--steps 7] [--batch 8] [--crop 256] [--threads 2] [--json OUT.json]
        [--compressai-python PY]

CompressAI runs in a child process, in this interpreter or in ``--compressai-python`` (CompressAI 1.2.8 pins
numpy<2, which current jax does not accept: ``python -m venv cai && cai/bin/pip install torch==2.13.0
compressai==1.2.8``). The parent sends it one step at a time over a pipe.

One full optimizer step each: forward with noise quantization, rate-distortion loss (lambda 0.0130) and aux loss,
backward, gradient clipping at 1.0, Adam (1e-4, aux 1e-3). Both sides use CompressAI's ``mbt2018-mean`` at
N=128, M=192 with random weights and the same batch of random images. The steps alternate (jaxlic, CompressAI,
jaxlic, ...) after a warm-up of each, so a load change on a shared machine hits both; medians are reported and
the ratio of the medians. ``--no-compressai`` times jaxlic alone (the JSON then has no ratio).
"""
from __future__ import annotations

import argparse
import statistics
import time

import json
import subprocess
import sys

import numpy as np

from common import import_compressai, write

LMBDA = 0.0130


def jaxlic_step(images):
    import jax
    import ml_collections
    from jaxlic.training.trainer import Trainer
    batch, crop = images.shape[:2]
    c = ml_collections.ConfigDict({
        "model": "mbt2018-mean", "model_config": {"N": 128, "M": 192}, "seed": 0, "loss": "mse", "lmbda": LMBDA,
        "data": {"crop": crop}, "batch_size": batch, "total_steps": 10, "mesh": (("data", -1),),
        "optim": {"lr": 1e-4, "warmup_steps": 0, "decay_steps": (1000,), "clip_norm": 1.0, "aux_lr": 1e-3}})
    t = Trainer(c, "/tmp/unused")
    box = {"state": t.init_state()}
    x = jax.device_put(images, t.batch_sharding)

    def step():
        box["state"], m = t._step(box["state"], x)
        jax.block_until_ready(m)
    return step


def compressai_step(images, threads):
    import torch
    from compressai.models import MeanScaleHyperprior
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = MeanScaleHyperprior(N=128, M=192).train()
    main = [p for n, p in net.named_parameters() if not n.endswith("quantiles")]
    aux = [p for n, p in net.named_parameters() if n.endswith("quantiles")]
    opt, aux_opt = torch.optim.Adam(main, 1e-4), torch.optim.Adam(aux, 1e-3)
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    pixels = x.shape[0] * x.shape[2] * x.shape[3]

    def step():
        opt.zero_grad()
        aux_opt.zero_grad()
        out = net(x)
        bpp = sum(torch.log(v).sum() for v in out["likelihoods"].values()) / (-np.log(2) * pixels)
        loss = LMBDA * 255 ** 2 * torch.mean((out["x_hat"] - x) ** 2) + bpp
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main, 1.0)
        opt.step()
        net.aux_loss().backward()
        aux_opt.step()
    return step, torch.__version__


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _child(batch, crop, threads):
    """CompressAI's side: one line in, one step, its seconds out."""
    compressai, note = import_compressai()
    images = np.random.default_rng(0).integers(0, 256, (batch, crop, crop, 3), np.uint8)
    step, torch_version = compressai_step(images, threads)
    step()  # warm-up
    print(json.dumps({"compressai": compressai.__version__, "torch": torch_version, "note": note}), flush=True)
    for _ in sys.stdin:
        print(timed(step), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=7)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--threads", type=int, default=2, help="PyTorch threads (XLA:CPU uses every core)")
    p.add_argument("--compressai-python", default=sys.executable, help="interpreter with torch and CompressAI")
    p.add_argument("--no-compressai", action="store_true")
    p.add_argument("--json", default=None, help="default: benchmarks/results/train_step.json")
    p.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        return _child(args.batch, args.crop, args.threads)
    import jax
    images = np.random.default_rng(0).integers(0, 256, (args.batch, args.crop, args.crop, 3), np.uint8)
    ours = jaxlic_step(images)
    compile_s = timed(ours)  # the first call compiles
    ours()
    res = {"model": "mbt2018-mean N=128 M=192, random weights", "batch": args.batch, "crop": args.crop,
           "steps": args.steps, "jax_compile_s": compile_s}
    child = None
    if not args.no_compressai:
        child = subprocess.Popen([args.compressai_python, __file__, "--_child", "--batch", str(args.batch), "--crop",
                                  str(args.crop), "--threads", str(args.threads)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = child.stdout.readline()
        if not line:
            raise SystemExit(f"CompressAI could not be started with {args.compressai_python} (see above); "
                             "--no-compressai times jaxlic alone")
        res.update(json.loads(line), torch_threads=args.threads, compressai_python=args.compressai_python)

    def theirs():
        child.stdin.write("step\n")
        child.stdin.flush()
        return float(child.stdout.readline())

    t_ours, t_theirs = [], []
    for _ in range(args.steps):  # alternating, so a change of load on the machine hits both
        t_ours.append(timed(ours))
        if child:
            t_theirs.append(theirs())
    if child:
        child.stdin.close()
        child.wait()
    res.update(jaxlic_s_per_step=statistics.median(t_ours), jaxlic_images_per_s=args.batch / statistics.median(t_ours),
               jaxlic_step_times=t_ours)
    print(f"mbt2018-mean N=128 M=192, batch {args.batch}, {args.crop}^2 crops, median of {args.steps} alternating steps")
    print(f"  {'':12} {'s/step':>7} {'images/s':>9}")
    print(f"  {'jaxlic':12} {res['jaxlic_s_per_step']:7.2f} {res['jaxlic_images_per_s']:9.2f}  "
          f"(jax {jax.__version__}, compile {compile_s:.1f} s)")
    if child:
        res.update(compressai_s_per_step=statistics.median(t_theirs),
                   compressai_images_per_s=args.batch / statistics.median(t_theirs), compressai_step_times=t_theirs,
                   ratio=statistics.median(t_theirs) / statistics.median(t_ours))
        print(f"  {'CompressAI':12} {res['compressai_s_per_step']:7.2f} {res['compressai_images_per_s']:9.2f}  "
              f"(CompressAI {res['compressai']}, torch {res['torch']}, {args.threads} threads)")
        print(f"  ratio: jaxlic is {res['ratio']:.2f}x as fast as CompressAI")
    write(res, args.json, "train_step.json")


if __name__ == "__main__":
    main()
