"""Training-step speed, jaxlic vs the PyTorch code of the same model, measured back to back in one run.

    python benchmarks/train_step.py [--model mbt2018-mean|mlicpp] [--steps 7] [--batch B] [--crop C]
        [--threads 2] [--json OUT.json] [--compressai-python PY] [--official PATH/MLIC++]

The PyTorch side runs in a child process, in this interpreter or in ``--compressai-python`` (an environment with
torch and CompressAI; current jax needs numpy 2, CompressAI 1.2.8 pins numpy<2, hence two). The parent sends it
one step at a time over a pipe.

One full optimizer step each: forward with noise quantization, rate-distortion loss (lambda 0.0130) and aux loss,
backward, gradient clipping at 1.0, Adam (1e-4, aux 1e-3), random weights and the same batch of random images.
- ``mbt2018-mean``: CompressAI's ``MeanScaleHyperprior`` at N=128, M=192; batch 8 of 256^2 by default.
- ``mlicpp``: MLIC++ at ``configs/mlicpp.py:runlocal``'s width (N=64, M=96, 3 slices), batch 4 of 128^2 by
  default (runlocal's), against the official ``MLICPlusPlus`` from ``--official`` (JiangWeibeta/MLIC's MLIC++
  folder).

The steps alternate (jaxlic, PyTorch, jaxlic, ...) after a warm-up of each, so a load change on a shared machine
hits both. Reported: the medians, the ratio of the medians, and the paired ratios (each PyTorch step over the
jaxlic step next to it): median, min, max. FLOP/s: XLA's cost analysis of jaxlic's compiled step (the phase forms
of transposed convolutions count their zero taps) over its median time, beside this processor's float32 peak
(``common.cpu_peak``). ``--no-compressai`` times jaxlic alone (no ratio).
"""
from __future__ import annotations

import argparse
import statistics
import time

import json
import subprocess
import sys

import numpy as np

from common import cpu_peak, import_compressai, write

LMBDA = 0.0130
MODELS = {  # name: (jaxlic model, model_config, default batch, default crop)
    "mbt2018-mean": ("mbt2018-mean", {"N": 128, "M": 192}, 8, 256),
    "mlicpp": ("mlicpp", {"N": 64, "M": 96, "slice_num": 3, "context_window": 5, "old_g_s": False,
                          "old_lrp": False}, 4, 128),
}
LABELS = {"mbt2018-mean": "mbt2018-mean N=128 M=192, random weights",
          "mlicpp": "MLIC++ runlocal (N=64, M=96, 3 slices), random weights"}


def jaxlic_step(images, model="mbt2018-mean"):
    """(step, GFLOP of one step by XLA's cost analysis)."""
    import jax
    import ml_collections
    from jaxlic.training.trainer import Trainer
    batch, crop = images.shape[:2]
    name, model_config = MODELS[model][:2]
    c = ml_collections.ConfigDict({
        "model": name, "model_config": model_config, "seed": 0, "loss": "mse", "lmbda": LMBDA,
        "data": {"crop": crop}, "batch_size": batch, "total_steps": 10, "mesh": (("data", -1),),
        "optim": {"lr": 1e-4, "warmup_steps": 0, "decay_steps": (1000,), "clip_norm": 1.0, "aux_lr": 1e-3}})
    t = Trainer(c, "/tmp/unused")
    box = {"state": t.init_state()}
    x = jax.device_put(images, t.batch_sharding)
    cost = t._step.lower(box["state"], x).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost

    def step():
        box["state"], m = t._step(box["state"], x)
        jax.block_until_ready(m)
    return step, cost["flops"] / 1e9


def torch_step(images, threads, model="mbt2018-mean", official=""):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if model == "mlicpp":
        import compressai.ops
        if not hasattr(compressai.ops, "ste_round"):  # renamed quantize_ste in CompressAI 1.2 (same function)
            compressai.ops.ste_round = compressai.ops.quantize_ste
        sys.path.insert(0, official)
        from models import MLICPlusPlus  # the official code, from the checkout given
        from utils.utils import Config
        cfg = {k: v for k, v in MODELS[model][1].items() if not k.startswith("old_")}
        net = MLICPlusPlus(Config({**cfg, "act": torch.nn.GELU})).train()
    else:
        from compressai.models import MeanScaleHyperprior
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


def _child(batch, crop, threads, model, official):
    """PyTorch's side: one line in, one step, its seconds out."""
    compressai, note = import_compressai()
    images = np.random.default_rng(0).integers(0, 256, (batch, crop, crop, 3), np.uint8)
    step, torch_version = torch_step(images, threads, model, official)
    step()  # warm-up
    print(json.dumps({"compressai": compressai.__version__, "torch": torch_version, "note": note}), flush=True)
    for _ in sys.stdin:
        print(timed(step), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mbt2018-mean", choices=sorted(MODELS))
    p.add_argument("--official", default="", help="the official MLIC++ folder (--model mlicpp)")
    p.add_argument("--steps", type=int, default=7)
    p.add_argument("--batch", type=int, default=0, help="default: the model's (8 / 4)")
    p.add_argument("--crop", type=int, default=0, help="default: the model's (256 / 128)")
    p.add_argument("--threads", type=int, default=2, help="PyTorch threads (XLA:CPU uses every core)")
    p.add_argument("--compressai-python", default=sys.executable, help="interpreter with torch and CompressAI")
    p.add_argument("--no-compressai", action="store_true")
    p.add_argument("--json", default=None, help="default: benchmarks/results/train_step[_MODEL].json")
    p.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.batch = args.batch or MODELS[args.model][2]
    args.crop = args.crop or MODELS[args.model][3]
    if args._child:
        return _child(args.batch, args.crop, args.threads, args.model, args.official)
    if args.model == "mlicpp" and not args.no_compressai and not args.official:
        raise SystemExit("--model mlicpp compares with the official code: give --official PATH/MLIC++ "
                         "(or --no-compressai)")
    import jax
    from jaxlic import xla_cpu
    images = np.random.default_rng(0).integers(0, 256, (args.batch, args.crop, args.crop, 3), np.uint8)
    ours, gflop = jaxlic_step(images, args.model)
    compile_s = timed(ours)  # the first call runs the compiled step (compiled for the cost analysis)
    ours()
    label = LABELS[args.model]
    res = {"model": label, "batch": args.batch, "crop": args.crop, "steps": args.steps,
           "jax_first_step_s": compile_s, "xla_cpu_options": xla_cpu.compiler_options(), "gflop_per_step": gflop}
    child = None
    if not args.no_compressai:
        child = subprocess.Popen([args.compressai_python, __file__, "--_child", "--batch", str(args.batch), "--crop",
                                  str(args.crop), "--threads", str(args.threads), "--model", args.model,
                                  "--official", args.official],
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
    med = statistics.median(t_ours)
    peak = cpu_peak()
    res.update(jaxlic_s_per_step=med, jaxlic_images_per_s=args.batch / med, jaxlic_step_times=t_ours,
               jaxlic_gflops=gflop / med, fp32_peak_gflops=peak["fp32_peak_gflops"], peak=peak,
               fraction_of_peak=gflop / med / peak["fp32_peak_gflops"])
    print(f"{label}, batch {args.batch}, {args.crop}^2 crops, median of {args.steps} alternating steps")
    print(f"  {'':12} {'s/step':>7} {'images/s':>9}")
    print(f"  {'jaxlic':12} {med:7.2f} {res['jaxlic_images_per_s']:9.2f}  (jax {jax.__version__}; "
          f"{gflop:.0f} GFLOP/step, {gflop / med:.0f} GFLOP/s = {res['fraction_of_peak']:.0%} of "
          f"{peak['fp32_peak_gflops']:.0f} peak)")
    if child:
        paired = [b / a for a, b in zip(t_ours, t_theirs)]
        res.update(compressai_s_per_step=statistics.median(t_theirs),
                   compressai_images_per_s=args.batch / statistics.median(t_theirs), compressai_step_times=t_theirs,
                   ratio=statistics.median(t_theirs) / med, paired_ratio_median=statistics.median(paired),
                   paired_ratio_min=min(paired), paired_ratio_max=max(paired))
        print(f"  {'PyTorch':12} {res['compressai_s_per_step']:7.2f} {res['compressai_images_per_s']:9.2f}  "
              f"(CompressAI {res['compressai']}, torch {res['torch']}, {args.threads} threads)")
        print(f"  ratio: jaxlic is {res['ratio']:.2f}x as fast (paired {res['paired_ratio_median']:.2f}x, "
              f"{res['paired_ratio_min']:.2f}-{res['paired_ratio_max']:.2f})")
    write(res, args.json, "train_step.json" if args.model == "mbt2018-mean" else f"train_step_{args.model}.json")


if __name__ == "__main__":
    main()
