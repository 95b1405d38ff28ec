"""TCM speed: forward, compress and decompress at a published size, jaxlic and the official code back to back.

    python benchmarks/tcm.py --N 64 --official PATH/LIC_TCM --official-python PY [--image kodim01.png]
        [--repeats 3] [--json OUT.json]

The official code (``--official``: a checkout of jmliu206/LIC_TCM; ``--official-python``: an environment with
torch, timm, einops and pip's CompressAI 1.2.8, which TCM imports) builds ``TCM(N=N)`` with its own
initialisation (``torch.manual_seed(0)``), ``update()``s its tables and hands its state_dict over; jaxlic converts
it (``jaxlic.registry``), so both sides run the same weights on the same 8-bit image (Kodak's 768x512 is a
multiple of 256: neither side pads). Runs alternate (jaxlic, official, ...) after a warm-up of each; medians are
reported, with each side's peak RSS.

JSON fields: ``benchmarks/versus.py``.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys

import numpy as np

import versus
from common import import_compressai, read_image, write

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _child(official, N, image_path, threads, weights_out):
    """The official side: writes its state_dict, then answers "forward" / "compress" / "decompress" / "rss"."""
    import_compressai()  # torchvision may not load against this torch: an empty stand-in (TCM does not use it)
    import torch
    sys.path.insert(0, official)
    from models.tcm import TCM
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = TCM(config=[2, 2, 2, 2, 2, 2], head_dim=[8, 16, 32, 32, 16, 8], drop_path_rate=0.0, N=N, M=320).eval()
    net.update(force=True)
    np.savez(weights_out, **{k: v.detach().cpu().numpy() for k, v in net.state_dict().items()})
    img = read_image(image_path)
    versus.serve(net, torch.from_numpy(img.transpose(2, 0, 1)[None].astype(np.float32) / 255.0),
                 lambda enc: len(enc["strings"][0][0]) + len(enc["strings"][1][0]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = pathlib.Path(os.environ.get("JAXLIC_SHARED", ROOT.parent / "shared"))
    p.add_argument("--N", type=int, default=64, help="64 / 96 / 128: the small / middle / large model")
    p.add_argument("--image", default=str(shared / "datasets" / "kodak" / "kodim01.png"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="PyTorch threads (XLA:CPU uses every core)")
    p.add_argument("--official", required=True, help="a checkout of jmliu206/LIC_TCM")
    p.add_argument("--official-python", default=sys.executable)
    p.add_argument("--coder", default="constriction")
    p.add_argument("--json", default=None, help="default: benchmarks/results/tcm_N<N>.json")
    p.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--_weights", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        return _child(args.official, args.N, args.image, args.threads, args._weights)

    image = read_image(args.image)
    if image.shape[0] % 128 or image.shape[1] % 128:
        raise SystemExit(f"{args.image}: the official TCM needs sizes that are multiples of 128, got "
                         f"{image.shape[1]}x{image.shape[0]}")
    child = [args.official_python, __file__, "--_child", "--N", str(args.N), "--official", args.official, "--image",
             args.image, "--threads", str(args.threads)]
    res = {**versus.run(child, image, f"TCM N={args.N}", args.repeats, args.coder, args.threads),
           "image": os.path.basename(args.image)}
    write(res, args.json, f"tcm_N{args.N}.json")


if __name__ == "__main__":
    main()
