"""Training-step speed of the mean-scale hyperprior (N=128, M=192, batch 8, 256^2 crops), JAX vs CompressAI.

    python benchmarks/train_step.py [--steps 5] [--threads 2] [--json OUT.json]

Times one full optimizer step (forward, rate-distortion + aux loss, backward, Adam) after warm-up, median over
--steps. When ``compressai`` (and torch) are installed, times CompressAI's ``mbt2018_mean(quality=3)`` training
step back to back on the same machine (same shapes, Adam, clip 1.0) and prints the ratio.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np



def jax_step_times(batch, crop, steps):
    import ml_collections
    from jaxlic.training.trainer import Trainer
    c = ml_collections.ConfigDict({
        "model": "mbt2018-mean", "model_config": {"N": 128, "M": 192}, "seed": 0, "loss": "mse", "lmbda": 0.0130,
        "data": {"crop": crop}, "batch_size": batch, "total_steps": 10, "mesh": (("data", -1),),
        "optim": {"lr": 1e-4, "warmup_steps": 0, "decay_steps": (1000,), "clip_norm": 1.0, "aux_lr": 1e-3}})
    t = Trainer(c, "/tmp/unused")
    state = t.init_state()
    x = jax.device_put(np.random.default_rng(0).integers(0, 256, (batch, crop, crop, 3), np.uint8), t.batch_sharding)
    t0 = time.perf_counter()
    state, m = t._step(state, x)
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t0
    ts = []
    for _ in range(steps):
        t0 = time.perf_counter()
        state, m = t._step(state, x)
        jax.block_until_ready(m)
        ts.append(time.perf_counter() - t0)
    return compile_s, ts


def compressai_step_times(batch, crop, steps, threads):
    import torch
    from compressai.zoo import mbt2018_mean
    torch.set_num_threads(threads)
    net = mbt2018_mean(quality=3).train()
    main = [p for n, p in net.named_parameters() if not n.endswith("quantiles")]
    aux = [p for n, p in net.named_parameters() if n.endswith("quantiles")]
    opt, aux_opt = torch.optim.Adam(main, 1e-4), torch.optim.Adam(aux, 1e-3)
    x = torch.rand(batch, 3, crop, crop)
    ts = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        aux_opt.zero_grad()
        out = net(x)
        n = batch * crop * crop
        bpp = sum(torch.log(l).sum() / (-np.log(2) * n) for l in out["likelihoods"].values())
        loss = 0.0130 * 255 ** 2 * torch.mean((out["x_hat"] - x) ** 2) + bpp
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main, 1.0)
        opt.step()
        a = net.aux_loss()
        a.backward()
        aux_opt.step()
        if i:
            ts.append(time.perf_counter() - t0)
    return ts


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default="benchmarks/train_step.json")
    p.add_argument("--reference-s-per-step", type=float, default=4.3,
                   help="CompressAI's step time when it cannot run here (4.3 s: measured on this 2-core machine)")
    args = p.parse_args(argv)
    compile_s, ts = jax_step_times(args.batch, args.crop, args.steps)
    res = {"batch": args.batch, "crop": args.crop, "jax": jax.__version__, "jax_compile_s": compile_s,
           "jax_s_per_step": statistics.median(ts), "jax_images_per_s": args.batch / statistics.median(ts)}
    try:
        tt = compressai_step_times(args.batch, args.crop, args.steps, args.threads)
        res.update(compressai_s_per_step=statistics.median(tt), compressai_images_per_s=args.batch / statistics.median(tt),
                   speedup=statistics.median(tt) / statistics.median(ts))
    except ImportError as e:
        # CompressAI 1.2.8 imports torchvision and torch_geometric at package import; where they are missing, fall
        # back to the figure measured for mbt2018_mean(quality=3) on this machine kind (2 threads).
        res["compressai"] = f"not importable ({e}); using the reference {args.reference_s_per_step} s/step"
        res["speedup_vs_reference"] = args.reference_s_per_step / res["jax_s_per_step"]
    print(f"mbt2018-mean N=128 M=192, batch {args.batch}, {args.crop}^2 crops")
    print(f"  jaxlic     : {res['jax_s_per_step']:.2f} s/step, {res['jax_images_per_s']:.2f} images/s "
          f"(compile {compile_s:.1f} s)")
    if "speedup" in res:
        print(f"  CompressAI : {res['compressai_s_per_step']:.2f} s/step, {res['compressai_images_per_s']:.2f} images/s"
              f" ({args.threads} threads)")
        print(f"  speed-up   : {res['speedup']:.2f}x")
    else:
        print(f"  CompressAI : not importable here; reference {args.reference_s_per_step} s/step -> "
              f"speed-up {res['speedup_vs_reference']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
