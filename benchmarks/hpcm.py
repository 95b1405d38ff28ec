"""HPCM speed: forward, compress and decompress at a published size, jaxlic and the official code back to back.

    python benchmarks/hpcm.py [--large] --official PATH/LIC-HPCM --official-python PY [--image kodim01.png]
        [--repeats 3] [--json OUT.json]

The official code (``--official``: a checkout of lyq133/LIC-HPCM; ``--official-python``: an environment with
torch, einops, scipy and pip's CompressAI 1.2.8) builds ``HPCM()`` (Base, or Large) with its own initialisation
(``torch.manual_seed(0)``), ``update(get_scale_table(0.12, 64, 60))`` as its test.py does, and hands its state_dict
over; jaxlic converts it, so both sides run the same weights on the same 8-bit image (Kodak's 768x512 is a multiple
of 256: neither side pads). Two shims let the official code run here, as for the parity fixtures: its constructor
creates ``adaptive_params_list`` on 'cuda' (made on the CPU instead), and its coder ships as Python 3.8 binaries
(``_CXX``, ``unbounded_ans``) whose C++ sources are CompressAI's: pip CompressAI 1.2.8's compiled
``pmf_to_quantized_cdf`` and ``BufferedRansEncoder`` / ``RansDecoder`` stand in, behind an adapter that turns the
numpy arguments into lists. Runs alternate (jaxlic, official, ...) after a warm-up of each; medians are reported,
with each side's peak RSS.

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


def _official_hpcm(official, large):
    """The official HPCM class, importable on this machine (its coder shim; see the module docstring)."""
    import types
    from compressai import _CXX
    from compressai.ans import BufferedRansEncoder, RansDecoder

    class Encoder(BufferedRansEncoder):
        def encode_with_indexes(self, symbols, indexes, cdf, lengths, offsets):
            super().encode_with_indexes(*(np.asarray(a).tolist() for a in (symbols, indexes, cdf, lengths, offsets)))

    class Decoder(RansDecoder):
        def decode_stream(self, indexes, cdf, lengths, offsets):
            return np.asarray(super().decode_stream(*(np.asarray(a).tolist() for a in (indexes, cdf, lengths,
                                                                                       offsets))), np.int32)

    sys.modules["src.entropy_models._CXX"] = _CXX
    sys.modules["src.entropy_models.unbounded_ans"] = types.SimpleNamespace(ubransEncoder=Encoder,
                                                                             ubransDecoder=Decoder)
    sys.path.insert(0, official)
    import importlib
    return importlib.import_module(f"src.models.{'HPCM_Large' if large else 'HPCM_Base'}").HPCM


def _child(official, large, image_path, threads, weights_out):
    """The official side: writes its state_dict, then answers "forward" / "compress" / "decompress" / "rss"."""
    import_compressai()
    import math
    import torch
    torch.set_num_threads(threads)
    HPCM = _official_hpcm(official, large)
    ones = torch.ones  # the constructor's adaptive parameters are made on 'cuda': on the CPU instead
    torch.ones = lambda *a, **k: ones(*a, **({**k, "device": "cpu"} if k.get("device") == "cuda" else k))
    torch.manual_seed(0)
    try:
        net = HPCM().eval()
    finally:
        torch.ones = ones
    net.update(torch.exp(torch.linspace(math.log(0.12), math.log(64), 60)))
    np.savez(weights_out, **{k: v.detach().cpu().numpy() for k, v in net.state_dict().items()})
    img = read_image(image_path)
    versus.serve(net, torch.from_numpy(img.transpose(2, 0, 1)[None].astype(np.float32) / 255.0),
                 lambda enc: len(enc["strings"][0]) + len(enc["strings"][1]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = pathlib.Path(os.environ.get("JAXLIC_SHARED", ROOT.parent / "shared"))
    p.add_argument("--large", action="store_true", help="HPCM Large (default: Base)")
    p.add_argument("--image", default=str(shared / "datasets" / "kodak" / "kodim01.png"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="PyTorch threads (XLA:CPU uses every core)")
    p.add_argument("--official", required=True, help="a checkout of lyq133/LIC-HPCM")
    p.add_argument("--official-python", default=sys.executable)
    p.add_argument("--coder", default="constriction")
    p.add_argument("--json", default=None, help="default: benchmarks/results/hpcm_{base,large}.json")
    p.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--_weights", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        return _child(args.official, args.large, args.image, args.threads, args._weights)

    image = read_image(args.image)
    if image.shape[0] % 256 or image.shape[1] % 256:
        raise SystemExit(f"{args.image}: the official HPCM needs sizes that are multiples of 256, got "
                         f"{image.shape[1]}x{image.shape[0]}")
    variant = "large" if args.large else "base"
    child = [args.official_python, __file__, "--_child", *(["--large"] if args.large else []), "--official",
             args.official, "--image", args.image, "--threads", str(args.threads)]
    res = {**versus.run(child, image, f"HPCM {variant}", args.repeats, args.coder, args.threads),
           "variant": variant, "image": os.path.basename(args.image)}
    write(res, args.json, f"hpcm_{variant}.json")


if __name__ == "__main__":
    main()
