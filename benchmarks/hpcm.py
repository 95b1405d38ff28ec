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

JSON fields (a contract for scripts): ``forward_s``, ``compress_s``, ``decompress_s`` (medians after warm-up),
``compile_s`` (tracing, lowering and XLA compilation in the first compress and decompress), ``peak_rss_mb``,
``bytes`` (jaxlic's file), and under ``official`` the same figures, its ``bytes``, and ``ratios`` (official /
jaxlic seconds).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

import numpy as np

from common import CompileClock, import_compressai, read_image, rss_mb, timed, write

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
    x = torch.from_numpy(img.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    with torch.no_grad():
        net(x)
        enc = net.compress(x)
        net.decompress(enc["strings"], enc["shape"])
        print(json.dumps({"torch": torch.__version__, "bytes": len(enc["strings"][0]) + len(enc["strings"][1])}),
              flush=True)
        for line in sys.stdin:
            what = line.strip()
            if what == "rss":
                print(json.dumps({"peak_rss_mb": rss_mb()}), flush=True)
            elif what == "forward":
                print(json.dumps({"s": timed(lambda: net(x))[0]}), flush=True)
            elif what == "compress":
                t, enc = timed(lambda: net.compress(x))
                print(json.dumps({"s": t}), flush=True)
            else:
                print(json.dumps({"s": timed(lambda: net.decompress(enc["strings"], enc["shape"]))[0]}), flush=True)


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

    import jax
    from jaxlic.codec import Codec
    from jaxlic.export import convert_checkpoint
    image = read_image(args.image)
    if image.shape[0] % 256 or image.shape[1] % 256:
        raise SystemExit(f"{args.image}: the official HPCM needs sizes that are multiples of 256, got "
                         f"{image.shape[1]}x{image.shape[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "hpcm.npz")
        child = subprocess.Popen([args.official_python, __file__, "--_child", *(["--large"] if args.large else []),
                                  "--official", args.official, "--image", args.image, "--threads", str(args.threads), "--_weights",
                                  weights], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = child.stdout.readline()
        if not line:
            raise SystemExit(f"the official HPCM could not be run with {args.official_python} (see above)")
        info = json.loads(line)
        with np.load(weights) as f:
            name, config, model, variables, tables = convert_checkpoint({k: f[k] for k in f.files})
    codec = Codec(name, model, variables, tables, config)
    with CompileClock() as clock:
        first_c, data = timed(lambda: codec.compress(image, args.coder))
        first_d, _ = timed(lambda: codec.decompress(data))
    x = jax.numpy.asarray(image[None].astype(np.float32) / 255)
    apply = jax.jit(model.apply)
    forward = lambda: jax.block_until_ready(apply(variables, x))
    forward()

    def theirs(what):
        child.stdin.write(what + "\n")
        child.stdin.flush()
        return json.loads(child.stdout.readline())

    ours = {"forward": [], "compress": [], "decompress": []}
    official = {"forward": [], "compress": [], "decompress": []}
    for _ in range(args.repeats):  # alternating, so a change of load on the machine hits both
        for what, fn in (("forward", forward), ("compress", lambda: codec.compress(image, args.coder)),
                         ("decompress", lambda: codec.decompress(data))):
            ours[what].append(timed(fn)[0])
            official[what].append(theirs(what)["s"])
    off_rss = theirs("rss")["peak_rss_mb"]
    child.stdin.close()
    child.wait()
    med = statistics.median
    res = {"model": "hpcm", "variant": "large" if args.large else "base", "config": config, "image": os.path.basename(args.image), "image_hw": list(image.shape[:2]),
           "weights": "the official initialisation (torch.manual_seed(0)), converted", "coder": args.coder,
           "bytes": len(data), "repeats": args.repeats, "jax": jax.__version__,
           **{f"{k}_s": med(v) for k, v in ours.items()}, "runs": ours, "compile_s": clock.seconds,
           "peak_rss_mb": rss_mb(),
           "official": {**{f"{k}_s": med(v) for k, v in official.items()}, "runs": official, "bytes": info["bytes"],
                        "peak_rss_mb": off_rss, "torch": info["torch"], "torch_threads": args.threads}}
    res["ratios"] = {f"{k}_s": res["official"][f"{k}_s"] / res[f"{k}_s"] for k in ours}
    print(f"HPCM {res['variant']}, {res['image']} {image.shape[1]}x{image.shape[0]}, official init, median of "
          f"{args.repeats}")
    print(f"  {'':9} {'forward':>8} {'compress':>9} {'decompress':>10} {'bytes':>7} {'peak RSS':>9}")
    for label, r in (("jaxlic", res), ("official", res["official"])):
        print(f"  {label:9} {r['forward_s']:8.3f} {r['compress_s']:9.3f} {r['decompress_s']:10.3f} {r['bytes']:7d} "
              f"{r['peak_rss_mb']:7.0f}MB")
    print("  official / jaxlic: " + ", ".join(f"{k[:-2]} {v:.2f}x" for k, v in res["ratios"].items())
          + f"  (jaxlic compile {clock.seconds:.0f} s)")
    write(res, args.json, f"hpcm_{res['variant']}.json")


if __name__ == "__main__":
    main()
