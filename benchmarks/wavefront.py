"""What one wavefront step of mbt2018 q5 costs on XLA:CPU, and what it multiplies.

    python benchmarks/wavefront.py [--rounds 5] [--image kodim01.png] [--json OUT.json]

1. The real step: the codec's repeated y step (context at the step's positions, entropy parameters, scale
   indexes, the update of the decoded buffer) run over all W + 3H - 3 steps of the image's latent without the
   range coder, and the transition from z (h_s, the hyper part of the first entropy-parameter layer, the first
   prediction). Random weights at the published size of quality 5 (N=192, M=320).
2. Its four matrix products alone (context taps 3840 -> 640, then the entropy parameters' 640 -> 1066 -> 853
   -> 640, leaky ReLU between) for 1, 4, 8 and 16 positions, with the weights laid out (in, out) as the plan
   keeps them or (out, in). Each layout is timed in blocks of consecutive calls, as the codec calls one step
   after another; blocks of the two layouts alternate (the machine is shared). Medians in ms.

This is the measurement behind the (in, out) layout of ``MaskedConv.taps`` and ``JointAutoregressive.start_y``
and behind the step sizes of ``jaxlic.plan.wavefront_buckets``.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import time

import numpy as np

from common import write

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHAPES = [(3840, 640), (640, 1066), (1066, 853), (853, 640)]  # mbt2018 at M = 320


def _median_ms(fn, n):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def real_step(image_path, rounds):
    import jax
    from PIL import Image
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from zoo import jaxlic_codec
    codec, config = jaxlic_codec("mbt2018", 5)
    image = np.asarray(Image.open(image_path).convert("RGB"))
    fn = codec._functions(*image.shape[:2])
    z, y = fn.plan.groups
    v = codec.variables
    transition, loop = [], []
    for r in range(rounds + 1):  # the first round compiles
        means, idx, valid, state = fn.first(v)
        zeros = np.zeros(np.asarray(idx).size, np.int32)
        t0 = time.perf_counter()
        means, idx, valid, state = jax.block_until_ready(fn.next[0](v, state, zeros, means))
        t1 = time.perf_counter()
        zeros = np.zeros(np.asarray(idx).size, np.int32)
        for t in range(y.count - 1):
            means, idx, valid, state = fn.repeat[1](v, state, np.int32(t), zeros, means)
            np.asarray(idx)  # the decoder reads every step's indexes before the next step
        t2 = time.perf_counter()
        if r:
            transition.append(t1 - t0)
            loop.append(t2 - t1)
    return {"config": config, "image_hw": list(image.shape[:2]), "steps": y.count,
            "transition_ms": statistics.median(transition) * 1e3, "loop_s": statistics.median(loop),
            "per_step_ms": statistics.median(loop) / (y.count - 1) * 1e3, "rounds": rounds}


def products(rounds, calls):
    import jax
    import jax.numpy as jnp
    rng = np.random.default_rng(0)
    kernels = [jnp.asarray(rng.normal(0, 0.02, s), jnp.float32) for s in SHAPES]
    layouts = {"(in, out)": (kernels, "pk,kn->pn"), "(out, in)": ([k.T.copy() for k in kernels], "pk,nk->pn")}

    def chain(spec):
        def f(x, ws):
            for i, w in enumerate(ws):
                x = jnp.einsum(spec, jax.nn.leaky_relu(x) if i else x, w)
            return x
        return jax.jit(f)

    fns = {name: chain(spec) for name, (_, spec) in layouts.items()}
    rows = []
    for positions in (1, 4, 8, 16):
        x = jnp.ones((positions, SHAPES[0][0]), jnp.float32)
        blocks = {name: [] for name in layouts}
        for name, (ws, _) in layouts.items():
            fns[name](x, ws).block_until_ready()
        for _ in range(rounds):
            for name, (ws, _) in layouts.items():
                blocks[name].append(_median_ms(lambda: fns[name](x, ws).block_until_ready(), calls))
        row = {"positions": positions, **{name: statistics.median(b) for name, b in blocks.items()}}
        row["(out, in) / (in, out)"] = row["(out, in)"] / row["(in, out)"]
        rows.append(row)
        print(f"  {positions:3d} positions: (in, out) {row['(in, out)']:.2f} ms, (out, in) {row['(out, in)']:.2f} ms"
              f" ({row['(out, in) / (in, out)']:.2f}x)")
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    shared = pathlib.Path(os.environ.get("JAXLIC_SHARED", ROOT.parent / "shared"))
    p.add_argument("--image", default=str(shared / "datasets" / "kodak" / "kodim01.png"))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=100, help="consecutive calls per block")
    p.add_argument("--json", default=None, help="default: benchmarks/results/wavefront_step.json")
    args = p.parse_args(argv)
    step = real_step(args.image, args.rounds)
    print(f"mbt2018 q5 on {os.path.basename(args.image)}: z -> y transition {step['transition_ms']:.1f} ms, "
          f"{step['steps']} y steps {step['loop_s']:.3f} s ({step['per_step_ms']:.2f} ms each, no coder)")
    print("the four products of a step, alone:")
    rows = products(args.rounds, args.calls)
    write({"step": step, "shapes": SHAPES, "rounds": args.rounds, "calls": args.calls, "unit": "ms",
           "rows": rows}, args.json, "wavefront_step.json")


if __name__ == "__main__":
    main()
