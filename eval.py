"""Evaluate a jaxlic checkpoint on a folder of images with real files.

    python eval.py --checkpoint M.npz [--images ../shared/datasets/kodak] [--out out/eval] [--coder constriction]

Writes OUT/results.json (CompressAI format: means of bpp from file sizes, estimated bpp from likelihoods,
PSNR-RGB and MS-SSIM of the 8-bit reconstruction, encode/decode seconds) and OUT/per_image.csv.
"""
import argparse
import os
import pathlib
import sys


def main(argv=None) -> int:
    shared = pathlib.Path(os.environ.get("JAXLIC_SHARED", pathlib.Path(__file__).resolve().parent.parent / "shared"))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="jaxlic model checkpoint (.npz)")
    p.add_argument("--images", default=str(shared / "datasets" / "kodak"))
    p.add_argument("--out", default="out/eval")
    p.add_argument("--coder", default="constriction", choices=["constriction", "tfc"])
    args = p.parse_args(argv)

    from jaxlic.cli import enable_compilation_cache
    from jaxlic.codec import Codec
    from jaxlic.errors import USER_ERRORS
    from jaxlic.evaluation.rd import evaluate, write_results
    from jaxlic.export import load_model
    enable_compilation_cache()
    try:
        name, config, model, variables, tables = load_model(args.checkpoint)
        codec = Codec(name, model, variables, tables, config)
        rows = evaluate(codec, args.images, args.coder)
    except USER_ERRORS as e:
        print(f"eval.py: error: {e}", file=sys.stderr)
        return 2
    res = write_results(rows, args.out, name, f"{name} {config} from {args.checkpoint}, {args.coder} coder")
    print(f"{'image':14s} {'bpp':>7s} {'est.bpp':>7s} {'PSNR':>7s} {'MS-SSIM':>8s} {'enc s':>6s} {'dec s':>6s}")
    m = {k: float("nan") if v[0] is None else v[0] for k, v in res["results"].items()}
    for r in rows + [{"image": "mean", **m}]:
        print(f"{r['image']:14s} {r['bpp']:7.4f} {r['estimated_bpp']:7.4f} {r['psnr-rgb']:7.2f} "
              f"{r['ms-ssim-rgb']:8.5f} {r['encoding_time']:6.2f} {r['decoding_time']:6.2f}")
    print(f"wrote {os.path.join(args.out, 'results.json')} and per_image.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
