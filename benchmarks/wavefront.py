"""What one wavefront step of mbt2018 q5 multiplies, on XLA:CPU: its four matrix products (context taps
3840 -> 640, then the entropy parameters' 640 -> 1066 -> 853 -> 640, leaky ReLU between) for P positions, with
the weights laid out (in, out) as the kernels are, or (out, in) as the plan keeps them.

    python benchmarks/wavefront.py [--repeat 200] [--json OUT.json]

The layouts alternate within each repeat (the machine is shared); medians in ms. This is the measurement behind
the (out, in) layout of ``MaskedConv.taps`` and ``JointAutoregressive.start_y``, and behind the step sizes of
``jaxlic.plan.wavefront_buckets``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from common import write

SHAPES = [(3840, 640), (640, 1066), (1066, 853), (853, 640)]  # mbt2018 at M = 320


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=200)
    p.add_argument("--json", default=None, help="default: benchmarks/results/wavefront_step.json")
    args = p.parse_args(argv)
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
        times = {name: [] for name in layouts}
        for name in layouts:
            fns[name](x, layouts[name][0]).block_until_ready()
        for _ in range(args.repeat):
            for name, (ws, _) in layouts.items():
                t0 = time.perf_counter()
                fns[name](x, ws).block_until_ready()
                times[name].append(time.perf_counter() - t0)
        row = {"positions": positions, **{name: statistics.median(t) * 1e3 for name, t in times.items()}}
        row["ratio"] = row["(in, out)"] / row["(out, in)"]
        rows.append(row)
        print(f"  {positions:3d} positions: (in, out) {row['(in, out)']:.2f} ms, (out, in) {row['(out, in)']:.2f} ms,"
              f" {row['ratio']:.2f}x")
    write({"shapes": SHAPES, "repeat": args.repeat, "unit": "ms", "rows": rows}, args.json, "wavefront_step.json")


if __name__ == "__main__":
    main()
