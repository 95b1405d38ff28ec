"""Real file size against the rate the forward estimates, on Kodak crops, for a trained Shen & Liu model.

    python benchmarks/stf_rate.py --checkpoint model.npz [--images DIR] [--crop 256] [--json OUT.json]

Per image: the centre crop, compressed to a real file (constriction), its size against the evaluation forward's
estimate (-log2 of the y and z likelihoods), the container header apart; PSNR of the decoded crop. The gap is split
in two: the estimate against the ideal code length of the coding tables the file uses (``table_bytes``: 16-bit
CDFs, each scale rounded up to the next of the 64 table scales, values outside a table as an escape symbol and the
coder's escape payload; their number is ``escapes``), and the coder's streams against that ideal.
"""
from __future__ import annotations

import argparse
import os
import pathlib

import numpy as np

from common import read_image, write

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = pathlib.Path(os.environ.get("JAXLIC_SHARED", ROOT.parent / "shared"))
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--images", default=str(shared / "datasets" / "kodak"))
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--json", default=None, help="default: benchmarks/results/stf_rate.json")
    args = p.parse_args(argv)
    import jax
    from jaxlic.codec import Codec
    from jaxlic.export import load_model
    name, config, model, variables, tables = load_model(args.checkpoint)
    codec = Codec(name, model, variables, tables, config)
    fwd = jax.jit(model.apply)
    rows = []
    for path in sorted(pathlib.Path(args.images).glob("*.png")):
        img = read_image(path)
        h, w = img.shape[:2]
        c = args.crop
        crop = img[(h - c) // 2:(h - c) // 2 + c, (w - c) // 2:(w - c) // 2 + c]
        e = codec.encode(crop)
        c_, symbols, indexes, data = e.container, e.symbols, e.indexes, e.data
        payload = sum(len(s) for s in c_.streams)
        table_bits, escapes = 0.0, 0
        for g in codec.plan(c, c).groups:
            t, sym, idx = tables[g.table], np.asarray(symbols[g.name]), np.asarray(indexes[g.name])
            table_bits += t.ideal_bits(sym, idx)
            v = (sym - t.offset[idx]).astype(np.int64)
            out = v[(v < 0) | (v >= t.cdf_length[idx] - 2)]
            escapes += len(out)
            # the constriction coder's escape payload: the zigzag value's bit length n (one of 34), then n - 1 bits
            z = np.where(out >= 0, 2 * out, -2 * out - 1)
            n = np.where(z > 0, np.floor(np.log2(np.maximum(z, 1))) + 1, 0)
            table_bits += float(np.sum(np.log2(34) + np.maximum(n - 1, 0)))
        out = fwd(variables, crop[None].astype(np.float32) / 255)
        est = sum(float(-np.log2(np.asarray(v, np.float64)).sum()) for v in out["likelihoods"].values()) / 8
        dec = codec.decompress(data)
        mse = np.mean((dec.astype(np.float64) - crop) ** 2)
        rows.append({"image": path.name, "file_bytes": len(data), "stream_bytes": payload, "estimated_bytes": est,
                     "table_bytes": table_bits / 8, "escapes": escapes, "stream_over_estimate": payload / est - 1,
                     "stream_over_table": payload / (table_bits / 8) - 1, "psnr": 10 * np.log10(255 ** 2 / mse)})
        print(f"{path.name}: file {len(data)} B, streams {payload} B, estimate {est:.0f} B "
              f"({100 * (payload / est - 1):+.2f} %), tables' ideal {table_bits / 8:.0f} B "
              f"({100 * rows[-1]['stream_over_table']:+.2f} %, {escapes} escapes), PSNR {rows[-1]['psnr']:.2f} dB")
    tot = {k: sum(r[k] for r in rows) for k in ("file_bytes", "stream_bytes", "estimated_bytes", "table_bytes",
                                                "escapes")}
    over = tot["stream_bytes"] / tot["estimated_bytes"] - 1
    over_table = tot["stream_bytes"] / tot["table_bytes"] - 1
    print(f"all {len(rows)} crops: streams {tot['stream_bytes']} B vs estimate {tot['estimated_bytes']:.0f} B: "
          f"{100 * over:+.2f} % (per image {100 * min(r['stream_over_estimate'] for r in rows):+.2f} to "
          f"{100 * max(r['stream_over_estimate'] for r in rows):+.2f} %); vs the tables' ideal "
          f"{tot['table_bytes']:.0f} B: {100 * over_table:+.2f} % ({tot['escapes']} escapes)")
    write({"checkpoint": os.path.basename(args.checkpoint), "crop": args.crop, "images": rows, **tot,
           "stream_over_estimate": over, "stream_over_table": over_table}, args.json, "stf_rate.json")


if __name__ == "__main__":
    main()
