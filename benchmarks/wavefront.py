"""What one wavefront step of mbt2018 q5 costs on XLA:CPU, and what it multiplies.

    python benchmarks/wavefront.py [--rounds 5] [--image kodim01.png] [--json OUT.json]

1. The real step: the codec's repeated y step (context at the step's positions, entropy parameters, scale
   indexes, the update of the decoded buffer) run over all W + 3H - 3 steps of the image's latent without the
   range coder, and the transition from z (h_s, the hyper part of the first entropy-parameter layer, the first
   prediction). Random weights at the published size of quality 5 (N=192, M=320).
2. Its four matrix products alone (context taps 3840 -> 640, then the entropy parameters' 640 -> 1066 -> 853
   -> 640, leaky ReLU between) for 1, 4, 8 and 16 positions, three ways (``products``). Each way is timed in
   blocks of consecutive calls, as the codec calls one step after another; blocks of the three alternate (the
   machine is shared). Medians in ms.

This is the measurement behind the feature-major products of ``MaskedConv.at`` and
``MaskedContextLatent.wave_params`` (``jaxlic.latent_codecs``) and behind the step sizes of
``jaxlic.plan.wavefront_buckets``.
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
        off = np.float32(0)  # no simulated drift, no repair margin
        p, state = fn.first(v, off, off)
        zeros = np.zeros(np.asarray(p["idx"]).size, np.int32)
        t0 = time.perf_counter()
        p, state = jax.block_until_ready(fn.next[0](v, state, zeros, p["means"], off, off))
        t1 = time.perf_counter()
        zeros = np.zeros(np.asarray(p["idx"]).size, np.int32)
        for t in range(y.count - 1):
            p, state = fn.repeat[1](v, state, np.int32(t), zeros, p["means"], off, off)
            np.asarray(p["idx"])  # the decoder reads every step's indexes before the next step
        t2 = time.perf_counter()
        if r:
            transition.append(t1 - t0)
            loop.append(t2 - t1)
    return {"config": config, "image_hw": list(image.shape[:2]), "steps": y.count,
            "transition_ms": statistics.median(transition) * 1e3, "loop_s": statistics.median(loop),
            "per_step_ms": statistics.median(loop) / (y.count - 1) * 1e3, "rounds": rounds}


def products(rounds, calls):
    """The four products three ways: positions as rows times the weights (in, out) (``x @ w``) or (out, in)
    (``x @ w.T``), and feature-major, the weights (out, in) times positions as columns (``w @ x``, what the
    plan does)."""
    import jax
    import jax.numpy as jnp
    rng = np.random.default_rng(0)
    kernels = [jnp.asarray(rng.normal(0, 0.02, s), jnp.float32) for s in SHAPES]
    transposed = [k.T.copy() for k in kernels]

    def rows(spec):
        def f(x, ws):
            for i, w in enumerate(ws):
                x = jnp.einsum(spec, jax.nn.leaky_relu(x) if i else x, w)
            return x
        return f

    def columns(x, ws):
        x = x.T
        for i, w in enumerate(ws):
            x = w @ (jax.nn.leaky_relu(x) if i else x)
        return jax.lax.optimization_barrier(x).T  # as the plan: no transposed operand in the last product

    variants = {"x @ w (in, out)": (jax.jit(rows("pk,kn->pn")), kernels),
                "x @ w.T (out, in)": (jax.jit(rows("pk,nk->pn")), transposed),
                "w @ x, feature-major (out, in)": (jax.jit(columns), transposed)}
    rows_out = []
    for positions in (1, 4, 8, 16):
        x = jnp.asarray(rng.normal(0, 1, (positions, SHAPES[0][0])), jnp.float32)
        blocks = {name: [] for name in variants}
        for fn, ws in variants.values():
            fn(x, ws).block_until_ready()
        for _ in range(rounds):
            for name, (fn, ws) in variants.items():
                blocks[name].append(_median_ms(lambda: fn(x, ws).block_until_ready(), calls))
        row = {"positions": positions, **{name: statistics.median(b) for name, b in blocks.items()}}
        rows_out.append(row)
        print(f"  {positions:3d} positions: " + ", ".join(f"{name} {row[name]:.2f} ms" for name in variants))
    return rows_out


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
