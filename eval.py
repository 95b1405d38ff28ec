"""Evaluate jaxlic models on a folder of images with real files, against JPEG/WebP and published anchors.

    python eval.py --images DIR --out OUTDIR                  # the shipped models (an RD curve), Kodak by default
    python eval.py --checkpoint a.npz --checkpoint b.npz ...  # your own checkpoints (one curve)

Writes OUTDIR/results.json (CompressAI format: per RD point, means over images of bpp from file sizes, estimated
bpp from likelihoods, PSNR-RGB and MS-SSIM of the 8-bit reconstruction, encode/decode seconds), per_image.csv,
anchors/{jpeg,webp}.json (Pillow on the same images), bd_rate.json (the model's BD-rate in percent against each
anchor curve: jpeg, webp and, on Kodak, the published VTM/BPG/JPEG points) and rd.png.
"""
import argparse
import json
import os
import pathlib
import sys


def main(argv=None) -> int:
    shared = pathlib.Path(os.environ.get("JAXLIC_SHARED", pathlib.Path(__file__).resolve().parent.parent / "shared"))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", action="append", help="a model checkpoint (.npz) or a shipped model's name; "
                   "repeat for an RD curve (default: every shipped model)")
    p.add_argument("--images", default=str(shared / "datasets" / "kodak"))
    p.add_argument("--out", default="out/eval")
    p.add_argument("--coder", default="constriction", choices=["constriction", "tfc"])
    p.add_argument("--label", help="the curve's name (default: the model's)")
    p.add_argument("--anchors", default="jpeg,webp", help="Pillow codecs to compute on the same images ('' for none)")
    p.add_argument("--published", choices=["auto", "yes", "no"], default="auto",
                   help="draw and compare the published Kodak anchors (auto: when the images are Kodak's)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)

    from jaxlic import assets
    from jaxlic.cli import enable_compilation_cache
    from jaxlic.errors import USER_ERRORS
    enable_compilation_cache()
    try:
        checkpoints = [assets.resolve(c) for c in args.checkpoint] if args.checkpoint else assets.available()
        if not checkpoints:
            raise ValueError("no shipped models are installed; pass --checkpoint FILE")
        anchors = [a.strip() for a in args.anchors.split(",") if a.strip()]
        bad = [a for a in anchors if a not in ("jpeg", "webp")]
        if bad:
            raise ValueError(f"--anchors: unknown {bad}; known: jpeg, webp")
        report = run(checkpoints, args.images, args.out, args.coder, args.label, anchors, args.published,
                     progress=not args.quiet)
    except USER_ERRORS as e:
        print(f"eval.py: error: {e}", file=sys.stderr)
        return 2
    print(report)
    return 0


def run(checkpoints, images_dir, out, coder, label, anchors, published, progress=True) -> str:
    from jaxlic.codec import Codec
    from jaxlic.evaluation import anchors as anchor_lib
    from jaxlic.evaluation.bdrate import bd_rate
    from jaxlic.evaluation.plot import rd_plot
    from jaxlic.evaluation.rd import curve, evaluate, load_images, ms_ssim_rgb, write_results
    from jaxlic.export import load_model

    images = load_images(images_dir)
    points, rows, names = [], [], set()
    for ck in checkpoints:
        name, config, model, variables, tables = load_model(ck)
        names.add(name)
        r = evaluate(Codec(name, model, variables, tables, config), images, coder, progress,
                     desc=os.path.basename(ck))
        points.append(r)
        rows += [{"checkpoint": ck, **x} for x in r]
    label = label or "/".join(sorted(names))
    results = curve(points, label, f"{coder} coder; checkpoints {checkpoints}; images {images_dir}")
    write_results(results, rows, out)

    curves = {}
    for a in anchors:
        curves[a] = anchor_lib.pillow_curve([im for _, im in images], a, ms_ssim_fn=ms_ssim_rgb, progress=progress)
        os.makedirs(os.path.join(out, "anchors"), exist_ok=True)
        with open(os.path.join(out, "anchors", f"{a}.json"), "w") as f:
            json.dump(curves[a], f, indent=2)
    kodak = sorted(n for n, _ in images) == [f"kodim{i:02d}.png" for i in range(1, 25)]
    if published == "yes" or (published == "auto" and kodak):
        for n, (bpp, ps) in anchor_lib.PUBLISHED_KODAK.items():
            curves[n] = {"name": n, "results": {"bpp": list(bpp), "psnr-rgb": list(ps)}}
    r = results["results"]
    bd = {k: bd_rate(c["results"]["bpp"], c["results"]["psnr-rgb"], r["bpp"], r["psnr-rgb"])
          for k, c in curves.items()}
    with open(os.path.join(out, "bd_rate.json"), "w") as f:
        json.dump(bd, f, indent=2)
    rd_plot(os.path.join(out, "rd.png"), [results] + list(curves.values()),
            f"{label} on {os.path.basename(os.path.normpath(images_dir))} ({len(images)} images)",
            dashed=tuple(anchor_lib.PUBLISHED_KODAK))

    lines = [f"{'checkpoint':34s} {'bpp':>7s} {'est.bpp':>7s} {'PSNR':>7s} {'MS-SSIM':>8s} {'enc s':>6s} "
             f"{'dec s':>6s}"]
    for ck, pts in zip(checkpoints, points):
        m = curve([pts], "", "")["results"]
        ms = m["ms-ssim-rgb"][0]
        lines.append(f"{os.path.basename(ck)[:34]:34s} {m['bpp'][0]:7.4f} {m['estimated_bpp'][0]:7.4f} "
                     f"{m['psnr-rgb'][0]:7.2f} {'—' if ms is None else f'{ms:.5f}':>8s} "
                     f"{m['encoding_time'][0]:6.3f} {m['decoding_time'][0]:6.3f}")
    lines.append("BD-rate (PSNR) of " + label + ": " + ", ".join(
        f"{k} {'n/a (no overlap)' if v is None else f'{v:+.2f}%'}" for k, v in bd.items()))
    lines.append(f"wrote {out}/results.json, per_image.csv, bd_rate.json, rd.png"
                 + (", anchors/" if anchors else ""))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
