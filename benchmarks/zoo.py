"""Compress / decompress speed of a CompressAI zoo model, jaxlic and CompressAI back to back in one run.

    python benchmarks/zoo.py --model mbt2018 --quality 5 [--image kodim01.png] [--repeats 3] [--json OUT.json]
        [--compressai-python PY | --no-compressai] [--compile-sizes 256x384,512x768,1024x1536]

A variable-rate model (``bmshj2018-hyperprior-vbr``, ``mbt2018-mean-vbr``: one size) codes at level ``quality - 1``
(the level trained with that quality's lambda), CompressAI's ``stage=2, s=quality - 1``.
Both sides build the model at the published size of that quality (``jaxlic.zoo``) with random weights (their own
default initialisation; the speed of these models does not depend on the weights' values except through the
coded symbols) and code the same 8-bit image. CompressAI runs in a child process (this interpreter or
``--compressai-python``: CompressAI 1.2.8 pins numpy<2, which current jax does not accept). Runs alternate
(jaxlic, CompressAI, jaxlic, ...) after a warm-up of each; medians are reported. JSON fields (a contract for
scripts): ``forward_s`` (the evaluation forward on the padded image), ``compress_s``, ``decompress_s``,
``synthesis_s`` (the g_s part of decompress), ``context_s``
(decompress minus synthesis, per run, from a run timed step by step), ``compile_s`` (tracing, lowering and XLA
compilation in the first compress + decompress, from JAX's monitoring events), per-group splits
(network vs coder, and per step for repeated groups), compile time at three image sizes, and the CompressAI
figures and ratios where it ran, ``peak_rss_mb`` of each side's process (CompressAI's child holds only its
model; jaxlic's process also the benchmark's own arrays).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np

from common import CompileClock, import_compressai, read_image, rss_mb, timed, write

ROOT = pathlib.Path(__file__).resolve().parents[1]


# --- jaxlic ---------------------------------------------------------------------------------------------------
def rate_of(model_name, quality) -> dict:
    """The codec's rate arguments: a variable-rate model's level for this quality, none for the others."""
    from jaxlic.zoo import VARIABLE_RATE
    return {"level": quality - 1} if model_name in VARIABLE_RATE else {}


def jaxlic_codec(model_name, quality):
    import jax
    import jax.numpy as jnp
    from jaxlic.codec import Codec
    from jaxlic.registry import get_spec
    from jaxlic.zoo import VARIABLE_RATE, published_config
    spec = get_spec(model_name)
    size = VARIABLE_RATE[model_name] if model_name in VARIABLE_RATE else published_config(model_name, quality)
    config = {**spec.defaults, **size}
    model = spec.build(**config)
    x = jnp.zeros((1, model.downsampling, model.downsampling, 3), jnp.float32)
    variables = jax.jit(model.init)(jax.random.key(0), x)
    return Codec(model_name, model, variables, model.build_tables(jax.device_get(variables)), config), config


def jaxlic_split(codec, image, data, rate=None):
    """One instrumented compress and decompress: per group network and coder seconds (synchronised), and the
    instrumented decompress's wall time."""
    enc = codec.encode(image, timings=True, **(rate or {})).timings
    t0 = time.perf_counter()
    dec = codec.decode(data, timings=True).timings
    wall = time.perf_counter() - t0
    counts = {g.name: g.count for g in codec.plan(*image.shape[:2]).groups}
    table = lambda rows: {name: {"network_s": n, "coder_s": c, "steps": counts.get(name, 1),
                                 "per_step_s": (n + c) / counts.get(name, 1)} for name, n, c in rows}
    return table(enc), table(dec), wall


def compile_times(model_name, quality, image, sizes):
    """Compilation of compress + decompress with a fresh codec per size (no persistent cache), from JAX's own
    events: seconds tracing, lowering and compiling and the number of functions compiled, which must not grow
    with the image size (one function per step group)."""
    out = {}
    for h, w in sizes:
        img = np.tile(image, (-(-h // image.shape[0]), -(-w // image.shape[1]), 1))[:h, :w]
        codec, _ = jaxlic_codec(model_name, quality)
        rate = rate_of(model_name, quality)
        with CompileClock() as clock:
            first_c, data = timed(lambda: codec.compress(img, **rate))
            first_d, _ = timed(lambda: codec.decompress(data))
        warm_c = min(timed(lambda: codec.compress(img, **rate))[0] for _ in range(2))
        warm_d = min(timed(lambda: codec.decompress(data))[0] for _ in range(2))
        out[f"{h}x{w}"] = {"compile_s": clock.seconds, "functions_compiled": clock.compiled,
                           "first_minus_warm_s": first_c - warm_c + first_d - warm_d, "warm_compress_s": warm_c,
                           "warm_decompress_s": warm_d}
    return out


# --- CompressAI (child process) -------------------------------------------------------------------------------
def _child(model_name, quality, image_path, threads):
    """CompressAI's side: a line in ("compress" or "decompress"), the run's seconds (and g_s seconds) out."""
    compressai, note = import_compressai()
    import torch
    from compressai.registry import MODELS
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    sizes = json.loads(os.environ["ZOO_CONFIG"])
    net = MODELS[model_name](**sizes).eval()
    rate = {}
    if model_name.endswith("-vbr"):  # the variable-rate path at level quality - 1, its tables built for that rate
        rate = {"stage": 2, "s": quality - 1}
        net.update(force=True, scale=net.Gain[quality - 1].detach())
    else:
        net.update(force=True)
    forward = lambda: net(x, **rate)
    img = read_image(image_path)
    h, w = img.shape[:2]
    m = 64
    x = torch.from_numpy(img.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    x = torch.nn.functional.pad(x, (0, -w % m, 0, -h % m), mode="replicate")
    g_s = {"s": 0.0}
    net.g_s.register_forward_pre_hook(lambda mod, a: g_s.__setitem__("t", time.perf_counter()))
    net.g_s.register_forward_hook(lambda mod, a, o: g_s.__setitem__("s", time.perf_counter() - g_s["t"]))
    with torch.no_grad():
        enc = net.compress(x, **rate)
        net.decompress(enc["strings"], enc["shape"], **rate)  # warm-up
        nbytes = sum(len(s) for ss in enc["strings"] for s in (ss if isinstance(ss, list) else [ss]))
        print(json.dumps({"compressai": compressai.__version__, "torch": torch.__version__, "note": note,
                          "bytes": nbytes}), flush=True)
        for line in sys.stdin:
            if line.strip() == "rss":
                print(json.dumps({"peak_rss_mb": rss_mb()}), flush=True)
            elif line.strip() == "forward":
                print(json.dumps({"s": timed(forward)[0]}), flush=True)
            elif line.strip() == "compress":
                t, enc = timed(lambda: net.compress(x, **rate))
                print(json.dumps({"s": t}), flush=True)
            else:
                t, _ = timed(lambda: net.decompress(enc["strings"], enc["shape"], **rate))
                print(json.dumps({"s": t, "synthesis_s": g_s["s"]}), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = pathlib.Path(os.environ.get("JAXLIC_SHARED", ROOT.parent / "shared"))
    p.add_argument("--model", required=True)
    p.add_argument("--quality", type=int, required=True)
    p.add_argument("--image", default=str(shared / "datasets" / "kodak" / "kodim01.png"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="PyTorch threads (XLA:CPU uses every core)")
    p.add_argument("--compressai-python", default=sys.executable, help="interpreter with torch and CompressAI")
    p.add_argument("--no-compressai", action="store_true")
    p.add_argument("--compile-sizes", default="256x384,512x768,1024x1536")
    p.add_argument("--coder", default="constriction")
    p.add_argument("--json", default=None, help="default: benchmarks/results/zoo_<model>_q<quality>.json")
    p.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        return _child(args.model, args.quality, args.image, args.threads)

    import jax
    image = read_image(args.image)
    codec, config = jaxlic_codec(args.model, args.quality)
    rate = rate_of(args.model, args.quality)
    with CompileClock() as clock:
        first_c, data = timed(lambda: codec.compress(image, args.coder, **rate))
        first_d, _ = timed(lambda: codec.decompress(data))
    m = codec.model.downsampling
    h, w = image.shape[:2]
    x = jax.numpy.asarray(np.pad(image[None].astype(np.float32) / 255, ((0, 0), (0, -h % m), (0, -w % m), (0, 0)),
                                 mode="edge"))
    gain = {"gain": np.float32(codec.gain(**rate))} if rate else {}
    from jaxlic import xla_cpu
    apply = xla_cpu.jit(lambda v, x: codec.model.apply(v, x, **gain))
    forward = lambda: jax.block_until_ready(apply(codec.variables, x))
    forward()  # compiles
    res = {"model": args.model, "quality": args.quality, "config": config, "image": os.path.basename(args.image),
           "image_hw": list(image.shape[:2]), "weights": "random (default initialisation)", "coder": args.coder,
           "bytes": len(data), "repeats": args.repeats, **({"rate": rate} if rate else {})}
    child = None
    if not args.no_compressai:
        # CompressAI's constructors take N (and M where the model has it); ELIC's groups default alike
        env = {**os.environ, "ZOO_CONFIG": json.dumps({k: v for k, v in config.items()
                                                       if k in ("N", "M", "vr_entbttlnck")})}
        child = subprocess.Popen([args.compressai_python, __file__, "--_child", "--model", args.model, "--quality",
                                  str(args.quality), "--image", args.image, "--threads", str(args.threads)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        line = child.stdout.readline()
        if not line:
            raise SystemExit(f"CompressAI could not be started with {args.compressai_python} (see above); "
                             "--no-compressai times jaxlic alone")
        res["compressai_info"] = {**json.loads(line), "torch_threads": args.threads,
                                  "python": args.compressai_python}

    def theirs(what):
        child.stdin.write(what + "\n")
        child.stdin.flush()
        return json.loads(child.stdout.readline())

    ours = {"forward": [], "compress": [], "decompress": [], "synthesis": [], "context": []}
    cai = {"forward": [], "compress": [], "decompress": [], "synthesis": [], "context": []}
    if child:
        theirs("forward")  # warm-up
    for _ in range(args.repeats):  # alternating, so a change of load on the machine hits both
        ours["forward"].append(timed(forward)[0])
        if child:
            cai["forward"].append(theirs("forward")["s"])
        ours["compress"].append(timed(lambda: codec.compress(image, args.coder, **rate))[0])
        ours["decompress"].append(timed(lambda: codec.decompress(data))[0])
        # the split from an instrumented run (synchronised at every step, so slightly slower: conservative)
        enc_split, dec_split, wall = jaxlic_split(codec, image, data, rate)
        ours["synthesis"].append(dec_split["synthesis"]["network_s"])
        ours["context"].append(wall - ours["synthesis"][-1])
        if child:
            cai["compress"].append(theirs("compress")["s"])
            r = theirs("decompress")
            cai["decompress"].append(r["s"])
            cai["synthesis"].append(r["synthesis_s"])
            cai["context"].append(r["s"] - r["synthesis_s"])
    res["peak_rss_mb"] = rss_mb()
    if child:
        cai_rss = theirs("rss")["peak_rss_mb"]
        child.stdin.close()
        child.wait()
    med = statistics.median
    res.update(forward_s=med(ours["forward"]), compress_s=med(ours["compress"]), decompress_s=med(ours["decompress"]),
               synthesis_s=med(ours["synthesis"]), context_s=med(ours["context"]),
               compile_s=clock.seconds, functions_compiled=clock.compiled,
               first_minus_warm_s=first_c + first_d - med(ours["compress"]) - med(ours["decompress"]),
               runs=ours, compress_split=enc_split, decompress_split=dec_split)
    print(f"{args.model} quality {args.quality} {config}, {res['image']} {image.shape[1]}x{image.shape[0]}, "
          f"random weights, median of {args.repeats}")
    print(f"  {'':11} {'forward':>8} {'compress':>9} {'decompress':>10} {'g_s':>7} {'context':>8} {'peak RSS':>9}")
    print(f"  {'jaxlic':11} {res['forward_s']:8.3f} {res['compress_s']:9.3f} {res['decompress_s']:10.3f} "
          f"{res['synthesis_s']:7.3f} {res['context_s']:8.3f} {res['peak_rss_mb']:7.0f}MB  (jax {jax.__version__}, "
          f"compile {res['compile_s']:.1f} s)")
    if child:
        c = {f"{k}_s": med(v) for k, v in cai.items()}
        res["compressai"] = {**c, "runs": cai, "peak_rss_mb": cai_rss}
        res["ratios"] = {k: c[k] / res[k] for k in ("forward_s", "compress_s", "decompress_s", "context_s")}
        print(f"  {'CompressAI':11} {c['forward_s']:8.3f} {c['compress_s']:9.3f} {c['decompress_s']:10.3f} "
              f"{c['synthesis_s']:7.3f} {c['context_s']:8.3f} {cai_rss:7.0f}MB  (CompressAI "
              f"{res['compressai_info']['compressai']}, {args.threads} threads)")
        print("  CompressAI / jaxlic: " + ", ".join(f"{k[:-2]} {v:.1f}x" for k, v in res["ratios"].items()))
    print("  decompress per group: " + ", ".join(
        f"{k} {v['network_s']:.3f}+{v['coder_s']:.3f} s" + (f" ({v['steps']} steps, {1e3 * v['per_step_s']:.2f} ms each)"
                                                            if v["steps"] > 1 else "")
        for k, v in dec_split.items()))
    sizes = [tuple(int(d) for d in s.split("x")) for s in args.compile_sizes.split(",") if s]
    if sizes:
        res["compile_by_size"] = compile_times(args.model, args.quality, image, sizes)
        print("  compile (compress + decompress) by image size: " + ", ".join(
            f"{k} {v['compile_s']:.1f} s ({v['functions_compiled']} functions)" for k, v in res["compile_by_size"].items()))
    write(res, args.json, f"zoo_{args.model}_q{args.quality}.json")


if __name__ == "__main__":
    main()
