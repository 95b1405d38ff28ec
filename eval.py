"""Evaluate jaxlic models on a folder of images with real files, against JPEG/WebP and published anchors.

    python eval.py --images DIR --out OUTDIR                  # the shipped models (an RD curve), Kodak by default
    python eval.py --checkpoint a.npz --checkpoint b.npz ...  # your own checkpoints (one curve)
    python eval.py --checkpoint vbr.npz [--levels 0,3,7]      # a variable-rate model: a curve from its levels

Writes OUTDIR/results.json (CompressAI format: per RD point, means over images of bpp from file sizes, estimated
bpp from likelihoods, PSNR-RGB and MS-SSIM of the 8-bit reconstruction, encode/decode seconds), per_image.csv,
anchors/{jpeg,webp}.json (Pillow on the same images), bd_rate.json (the model's BD-rate in percent against each
anchor curve: jpeg, webp and, on Kodak, the published VTM/BPG/JPEG points) and rd.png; with --visuals also
visuals/index.html (open it in a browser: bit-allocation maps, reconstructions beside JPEG / WebP at the nearest
rate, zoomed crops, the RD plot).
"""
import argparse
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
    p.add_argument("--visuals", action="store_true", help="per image: the bit-allocation map, the reconstruction "
                   "beside the original and JPEG / WebP at the nearest rate, zoomed crops; OUT/visuals/index.html "
                   "shows them all with the RD plot")
    p.add_argument("--levels", help="variable-rate models: the learned levels to code at, e.g. 0,3,7 (default: "
                   "all of them: one model, a whole curve)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)

    from jaxlic import assets
    from jaxlic.cli import enable_compilation_cache
    from jaxlic.errors import UserError, report
    enable_compilation_cache()

    def evaluate():
        checkpoints = [assets.resolve(c) for c in args.checkpoint] if args.checkpoint else assets.available()
        if not checkpoints:
            raise UserError("no shipped models are installed; pass --checkpoint FILE")
        anchors = [a.strip() for a in args.anchors.split(",") if a.strip()]
        bad = [a for a in anchors if a not in ("jpeg", "webp")]
        if bad:
            raise UserError(f"--anchors: unknown {bad}; known: jpeg, webp")
        import jaxlic
        from jaxlic.evaluation.report import run
        codecs = []
        for ck in checkpoints:
            codec = jaxlic.load(ck, coder=args.coder)
            if not codec.engine.rated:
                codecs.append((ck, codec))
                continue
            try:
                levels = [int(v) for v in args.levels.split(",")] if args.levels else range(codec.module.levels)
            except ValueError:
                raise UserError(f"--levels {args.levels!r}: comma-separated integers, e.g. 0,3,7") from None
            codecs += [(f"{ck}@level{v}", codec.with_rate(level=v)) for v in levels]
        print(run(codecs, args.images, args.out, args.coder, args.label, anchors, args.published,
                  progress=not args.quiet, visuals=args.visuals))
    return report("eval.py", evaluate)


if __name__ == "__main__":
    sys.exit(main())
