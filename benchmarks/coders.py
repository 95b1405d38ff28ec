"""Range-coder throughput and efficiency: 1M Gaussian symbols with per-symbol scale indexes.

    python benchmarks/coders.py [--n 1000000] [--repeat 3] [--json OUT.json]

Prints encode/decode Msym/s (median over repeats) and bits/symbol against two ideals: the quantized tables'
own code length, and the continuous model's (-log2 of the discretised Gaussian likelihood).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from scipy import special

from common import write
from jaxlic.coding.coders import available_coders, get_coder
from jaxlic.entropy import default_scale_table
from jaxlic.entropy.gaussian import gaussian_table


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", default=None, help="default: benchmarks/results/coders.json")
    args = p.parse_args(argv)

    scales = default_scale_table()
    table = gaussian_table(scales)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(scales), args.n).astype(np.int32)
    sym = np.round(rng.normal(0.0, scales[idx])).astype(np.int32)
    s = np.maximum(scales[idx].astype(np.float64), 0.11)
    k = np.abs(sym.astype(np.float64))
    model_bits = float(-np.log2(np.maximum(special.ndtr((0.5 - k) / s) - special.ndtr((-0.5 - k) / s), 1e-9)).sum())
    table_bits = table.ideal_bits(sym, idx)

    rows = []
    for name in available_coders():
        c = get_coder(name)
        c.decode(c.encode(sym[:1000], idx[:1000], table), idx[:1000], table)  # warm caches
        enc, dec = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            data = c.encode(sym, idx, table)
            t1 = time.perf_counter()
            out = c.decode(data, idx, table)
            t2 = time.perf_counter()
            enc.append(t1 - t0)
            dec.append(t2 - t1)
        assert np.array_equal(out, sym), f"{name}: round trip failed"
        bits = 8 * len(data)
        rows.append({"coder": name, "symbols": args.n, "encode_msym_s": args.n / statistics.median(enc) / 1e6,
                     "decode_msym_s": args.n / statistics.median(dec) / 1e6, "bits_per_symbol": bits / args.n,
                     "table_ideal_bits_per_symbol": table_bits / args.n,
                     "model_ideal_bits_per_symbol": model_bits / args.n, "overhead_vs_model": bits / model_bits - 1})

    print(f"{args.n} symbols, {len(scales)} Gaussian scale tables, 16-bit CDFs")
    print(f"{'coder':14s} {'enc Msym/s':>10s} {'dec Msym/s':>10s} {'bits/sym':>9s} {'table ideal':>11s} "
          f"{'model ideal':>11s} {'overhead':>9s}")
    for r in rows:
        print(f"{r['coder']:14s} {r['encode_msym_s']:10.2f} {r['decode_msym_s']:10.2f} {r['bits_per_symbol']:9.4f} "
              f"{r['table_ideal_bits_per_symbol']:11.4f} {r['model_ideal_bits_per_symbol']:11.4f} "
              f"{100 * r['overhead_vs_model']:8.2f}%")
    write({"rows": rows}, args.json, "coders.json")


if __name__ == "__main__":
    main()
