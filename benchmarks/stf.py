"""Shen & Liu's transformer LIC at the official size: forward, compress, decompress, and the official forward back
to back.

    python benchmarks/stf.py [--image kodim01.png] [--repeats 3] [--json OUT.json]
        [--official PATH/image-compression-with-swin-transformer --official-python PY]

Both sides run the same random weights: the official model's own initialisation (torch.manual_seed(0), then
``update(force=True)``), converted, when the official code is given; else jaxlic's initialisation. Each side runs
in its own process, so each peak RSS is its own (weights, activations, compiled code; jaxlic's codec, built
before the forward runs, hands the heap XLA's compiler freed back to the system: ``jaxlic.heap``). jaxlic: the
evaluation forward (jitted), compress and decompress through the codec (z, then one step per chunk), and the
per-chunk split of both (a step's network time is its chunk's prediction plus the previous chunk's residual prediction). The
official code has only a forward (its compress / decompress were removed upstream). Its package is a modified
CompressAI 1.1.6 whose compiled extensions exist for Python 3.7 only; ``--official-python`` is an environment with
torch, timm and pip's CompressAI 1.2.8, whose extensions are loaded in their place. Runs alternate after a warm-up
of each; medians are reported.

JSON fields (a contract for scripts): ``forward_s``, ``compress_s``, ``decompress_s`` (medians after warm-up),
``compile_s``, ``peak_rss_mb`` (jaxlic's process, codec included), ``forward_peak_rss_mb`` (the same before the
codec's first call: loading, compiling and running the forward), the per-chunk splits, and the official figures and ratios where
it ran.
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

from common import CompileClock, official_compressai, read_image, rss_mb, timed, write

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _serve(handlers):
    """Answers one JSON line per command line on stdin."""
    for line in sys.stdin:
        what = line.strip()
        print(json.dumps(handlers[what]()), flush=True)


# --- the official code (child process) --------------------------------------------------------------------------
def _official_child(official, image_path, threads, weights_out):
    official_compressai(official)
    import torch
    from compressai.models.stf8 import SymmetricalTransFormer5
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = SymmetricalTransFormer5().eval()
    net.update(force=True)
    if weights_out:
        np.savez(weights_out, **{k: v.detach().numpy() for k, v in net.state_dict().items()})
    img = read_image(image_path)
    h, w = img.shape[:2]
    x = torch.from_numpy(img.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    x = torch.nn.functional.pad(x, (0, -w % 64, 0, -h % 64), mode="replicate")
    with torch.no_grad():
        net(x)
        print(json.dumps({"torch": torch.__version__, "threads": threads,
                          "parameters": sum(p.numel() for p in net.parameters())}), flush=True)
        _serve({"forward": lambda: {"s": timed(lambda: net(x))[0], "peak_rss_mb": rss_mb()}})


# --- jaxlic (child process) ---------------------------------------------------------------------------------------
def _jaxlic_child(model_path, image_path):
    import jax
    from jaxlic.codec import Codec, pad_to_multiple
    from jaxlic.export import load_model
    name, config, model, variables, tables = load_model(model_path)
    codec = Codec(name, model, variables, tables, config)
    image = read_image(image_path)
    x = jax.numpy.asarray(pad_to_multiple(image[None].astype(np.float32) / 255, model.downsampling))
    from jaxlic import xla_cpu
    fwd = xla_cpu.jit(model.apply)
    state = {}

    def forward():
        return {"s": timed(lambda: jax.block_until_ready(fwd(variables, x)))[0]}

    def compress():
        t, state["data"] = timed(lambda: codec.compress(image))
        return {"s": t, "bytes": len(state["data"])}

    def decompress():
        return {"s": timed(lambda: codec.decompress(state["data"]))[0]}

    def split():
        e = codec.encode(image, timings=True, per_step=True)
        enc, dec = e.timings, codec.decode(e.data, timings=True, per_step=True).timings
        rows = lambda r: [{"part": n, "network_s": a, "coder_s": b} for n, a, b in r]
        return {"compress": rows(enc), "decompress": rows(dec)}

    with CompileClock() as clock:
        first = {"forward": forward()["s"]}
        forward_rss = rss_mb()  # the weights, the compiled forward and its run: the official forward's counterpart
        first.update(compress=compress()["s"], decompress=decompress()["s"])
    print(json.dumps({"first_call_s": first, "compile_s": clock.seconds, "functions_compiled": clock.compiled,
                      "forward_peak_rss_mb": forward_rss,
                      "parameters": sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(variables["params"])),
                      "jax": jax.__version__}), flush=True)
    _serve({"forward": forward, "compress": compress, "decompress": decompress, "split": split,
            "rss": lambda: {"peak_rss_mb": rss_mb()}})


def _jaxlic_model(path, weights):
    """Writes a jaxlic model file with the official defaults: the converted official weights, or jaxlic's init."""
    import jax
    import jax.numpy as jnp
    from jaxlic.export import save_model
    from jaxlic.registry import get_spec
    spec = get_spec("stf-zigzag")
    model = spec.build(**spec.defaults)
    x = jnp.zeros((1, 64, 64, 3), jnp.float32)
    if weights:
        with np.load(weights) as f:
            sd = {k: f[k] for k in f.files}
        variables = spec.convert(sd, jax.eval_shape(model.init, jax.random.key(0), x))
        del sd
        source = "the official initialisation (torch.manual_seed(0)), converted"
    else:
        variables = jax.device_get(jax.jit(model.init)(jax.random.key(0), x))
        source = "jaxlic's initialisation"
    save_model(path, "stf-zigzag", spec.defaults, variables, model.build_tables(variables))
    return source


def _child(args, *extra):
    return subprocess.Popen([args.official_python if "--_official" in extra else sys.executable, __file__, *extra,
                             "--image", args.image, "--threads", str(args.threads)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _ask(child, what):
    child.stdin.write(what + "\n")
    child.stdin.flush()
    return json.loads(child.stdout.readline())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = pathlib.Path(os.environ.get("JAXLIC_SHARED", ROOT.parent / "shared"))
    p.add_argument("--image", default=str(shared / "datasets" / "kodak" / "kodim01.png"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="PyTorch threads (XLA:CPU uses every core)")
    p.add_argument("--official", default="", help="a checkout of stm233/image-compression-with-swin-transformer")
    p.add_argument("--official-python", default=sys.executable, help="interpreter with torch, timm and compressai")
    p.add_argument("--json", default=None, help="default: benchmarks/results/stf.json")
    p.add_argument("--_official", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_jaxlic", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_weights_out", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._official:
        return _official_child(args._official, args.image, args.threads, args._weights_out)
    if args._jaxlic:
        return _jaxlic_child(args._jaxlic, args.image)

    image = read_image(args.image)
    res = {"image": os.path.basename(args.image), "image_hw": list(image.shape[:2]), "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        official = None
        weights = ""
        if args.official:
            weights = os.path.join(tmp, "official.npz")
            official = _child(args, "--_official", args.official, "--_weights_out", weights)
            line = official.stdout.readline()
            if not line:
                res["official_error"] = "the official code could not be started (see above)"
                print(f"official code not timed: {res['official_error']}", file=sys.stderr)
                official, weights = None, ""
            else:
                res["official_info"] = json.loads(line)
        model_path = os.path.join(tmp, "stf.npz")
        res["weights"] = _jaxlic_model(model_path, weights)
        if weights:
            os.remove(weights)
        ours = _child(args, "--_jaxlic", model_path)
        line = ours.stdout.readline()
        if not line:
            raise SystemExit("the jaxlic process failed (see above)")
        res.update(json.loads(line))
        runs = {k: [] for k in ("forward", "compress", "decompress")}
        theirs = []
        for _ in range(args.repeats):  # alternating, so a change of load on the machine hits both
            for k in runs:
                runs[k].append(_ask(ours, k)["s"])
                if official and k == "forward":
                    theirs.append(_ask(official, "forward"))
        split = _ask(ours, "split")
        res["peak_rss_mb"] = _ask(ours, "rss")["peak_rss_mb"]
        res["bytes"] = _ask(ours, "compress")["bytes"]
        for child in (ours, official):
            if child:
                child.stdin.close()
                child.wait()
    med = statistics.median
    res.update({f"{k}_s": med(v) for k, v in runs.items()}, runs=runs, compress_split=split["compress"],
               decompress_split=split["decompress"])
    h, w = image.shape[:2]
    print(f"Shen & Liu, official size ({res['parameters']:,} parameters), {res['image']} {w}x{h}, weights from "
          f"{res['weights']}, median of {args.repeats} (jax {res['jax']}, compile {res['compile_s']:.1f} s)")
    print(f"  {'':9} {'forward':>8} {'compress':>9} {'decompress':>10} {'peak RSS':>9} {'(forward only)':>14}")
    print(f"  {'jaxlic':9} {res['forward_s']:8.2f} {res['compress_s']:9.2f} {res['decompress_s']:10.2f} "
          f"{res['peak_rss_mb']:7.0f}MB {res['forward_peak_rss_mb']:12.0f}MB")
    if theirs:
        o = {"forward_s": med([r["s"] for r in theirs]), "peak_rss_mb": max(r["peak_rss_mb"] for r in theirs),
             "runs": theirs}
        res["official"] = o
        res["ratios"] = {"forward_s": o["forward_s"] / res["forward_s"]}
        print(f"  {'official':9} {o['forward_s']:8.2f} {'-':>9} {'-':>10} {o['peak_rss_mb']:7.0f}MB  "
              f"(no codec upstream); official / jaxlic forward {res['ratios']['forward_s']:.2f}x")
    for name in ("compress", "decompress"):
        rows = res[f"{name}_split"]
        chunks = [r for r in rows if r["part"].startswith("y[")]
        other = ", ".join(f"{r['part']} {r['network_s']:.2f}+{r['coder_s']:.2f}" for r in rows if r not in chunks)
        net = [r["network_s"] for r in chunks]
        print(f"  {name} split (network + coder s): {other}; {len(chunks)} chunks: network {sum(net):.2f} "
              f"(min {min(net):.3f}, max {max(net):.3f} per chunk), coder {sum(r['coder_s'] for r in chunks):.2f}")
    write(res, args.json, "stf.json")


if __name__ == "__main__":
    sys.exit(main())
