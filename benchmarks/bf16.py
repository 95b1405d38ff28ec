"""Does XLA:CPU compute bfloat16 convolutions and products in bfloat16 on this processor? Back to back, float32
against bfloat16, in one run.

    python benchmarks/bf16.py [--rounds 5] [--json OUT.json]

The processor (Zen 4) has AVX512_BF16 (``vdpbf16ps``: bf16 pairs multiplied and accumulated into float32),
which would double a product's arithmetic rate over float32 FMAs. Two readings per operation:

- ``product_dtypes``: the element types of the dots / convolutions in the optimised HLO XLA:CPU runs; ``f32``
  alone for a bf16 program means XLA converted the operands to float32 first (no bf16 arithmetic there);
- GFLOP/s of each dtype (XLA's cost analysis over the median of ``--rounds`` alternating runs) and their ratio.

Operations: a 2048^3 matrix product, the mean-scale hyperprior's 5x5 stride-2 convolution (8 x 128^2 x 128 ->
128) and a 3x3 convolution (8 x 64^2 x 192 -> 192), each forward and with its gradients (the training case).
The training step of ``config.dtype="bfloat16"`` against float32 is ``benchmarks/scale.py --step-time``'s.
Against the limit: ``peak`` (``common.cpu_peak``: cores x 2 FMA pipes x 8 float32 lanes x 2 x the measured
clock; bf16 2x that) and each row's ``fraction_of_fp32_peak`` / ``fraction_of_bf16_peak``.
JSON (a contract for scripts): ``machine``, ``peak``, ``ops``: a list of {op, dtype, flops, seconds, gflops,
product_dtypes, fraction_of_fp32_peak, fraction_of_bf16_peak (bf16 rows)}, ``bf16_over_f32``: per op the ratio of
bf16's GFLOP/s to float32's.
"""
from __future__ import annotations

import argparse
import re
import statistics
import time

from common import cpu_peak, machine, write


def _ops():
    import jax
    import jax.numpy as jnp
    conv = lambda stride: lambda x, w: jax.lax.conv_general_dilated(
        x, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    grad = lambda f: jax.grad(lambda x, w: jnp.sum(f(x, w).astype(jnp.float32) ** 2), argnums=(0, 1))
    return {
        "matmul 2048^3": (lambda a, b: a @ b, ((2048, 2048), (2048, 2048))),
        "conv 5x5/2 128->128 (8x128^2)": (conv(2), ((8, 128, 128, 128), (5, 5, 128, 128))),
        "conv 5x5/2 grad": (grad(conv(2)), ((8, 128, 128, 128), (5, 5, 128, 128))),
        "conv 3x3 192->192 (8x64^2)": (conv(1), ((8, 64, 64, 192), (3, 3, 192, 192))),
        "conv 3x3 grad": (grad(conv(1)), ((8, 64, 64, 192), (3, 3, 192, 192))),
    }


def product_dtypes(hlo: str) -> list[str]:
    """The element types of the dot / convolution instructions of an optimised module (wherever XLA put them:
    in a fusion, a YNNPACK or oneDNN fusion included)."""
    return sorted(set(re.findall(r"= (\w+)\[[^\]]*\]\S* (?:dot|convolution)\(", hlo)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", default=None, help="default: benchmarks/results/bf16.json")
    args = p.parse_args(argv)
    import jax
    import jax.numpy as jnp
    import numpy as np
    peak = cpu_peak()
    print(f"peak: {peak['fp32_peak_gflops']:.0f} GFLOP/s float32, {peak['bf16_peak_gflops']:.0f} bf16 "
          f"({peak['cores']} cores at {peak['clock_ghz']:.2f} GHz, measured)")
    rows, ratios = [], {}
    for name, (fn, shapes) in _ops().items():
        rng = np.random.default_rng(0)
        compiled, inputs, flops = {}, {}, {}
        for dtype in ("float32", "bfloat16"):
            inputs[dtype] = [jnp.asarray(rng.normal(0, 1, s), dtype) for s in shapes]
            compiled[dtype] = jax.jit(fn).lower(*inputs[dtype]).compile()
            cost = compiled[dtype].cost_analysis()
            flops[dtype] = float((cost[0] if isinstance(cost, list) else cost)["flops"])
            jax.block_until_ready(compiled[dtype](*inputs[dtype]))  # warm-up
        times = {d: [] for d in compiled}
        for _ in range(args.rounds):  # alternating: a load change hits both
            for d in compiled:
                t0 = time.perf_counter()
                jax.block_until_ready(compiled[d](*inputs[d]))
                times[d].append(time.perf_counter() - t0)
        for d in compiled:
            s = statistics.median(times[d])
            rows.append({"op": name, "dtype": d, "flops": flops[d], "seconds": s, "gflops": flops[d] / s / 1e9,
                         "product_dtypes": product_dtypes(compiled[d].as_text()),
                         "fraction_of_fp32_peak": flops[d] / s / 1e9 / peak["fp32_peak_gflops"]})
            if d == "bfloat16":
                rows[-1]["fraction_of_bf16_peak"] = rows[-1]["gflops"] / peak["bf16_peak_gflops"]
        ratios[name] = rows[-1]["gflops"] / rows[-2]["gflops"]
        print(f"{name:32s} f32 {rows[-2]['gflops']:6.1f} GFLOP/s ({rows[-2]['fraction_of_fp32_peak']:4.0%} of peak)  "
              f"bf16 {rows[-1]['gflops']:6.1f} ({rows[-1]['fraction_of_bf16_peak']:4.0%} of bf16 peak)  "
              f"bf16/f32 {ratios[name]:.2f}  bf16 program's products in {rows[-1]['product_dtypes']}")
    write({"machine": machine(), "peak": peak, "ops": rows, "bf16_over_f32": ratios}, args.json, "bf16.json")


if __name__ == "__main__":
    main()
