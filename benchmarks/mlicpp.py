"""MLIC++ at the official size (N=192, M=320, 10 slices; random weights): codec speed, per step, and scaling.

    python benchmarks/mlicpp.py --image kodim01.png --json OUT.json            # (a) speed on one image
    python benchmarks/mlicpp.py --image kodim01.png --scaling --json OUT.json  # (a) and (b) scaling
    python benchmarks/mlicpp.py --image kodim01.png --official PATH/MLIC++ [--official-python PY]
                                                   # also time the official code (in PY's environment)

(a) compress and decompress wall time (medians after warm-up, real files through the range coder), the
first-call compile time, peak RSS, and per coding step the network and range-coder time with the step's XLA
FLOP count and effective GFLOP/s. With ``--official`` (a checkout of JiangWeibeta/MLIC's ``MLIC++`` folder), the
official PyTorch model is timed back to back on the same image with the same threads, in the interpreter
``--official-python`` (an environment with torch and CompressAI; JAX is not needed there); without it, no
ratio is given (the official code was not timed).

(b) ``--scaling``: at 256^2 ... 2048^2, time and peak memory of compress and of the training forward (noise
quantization), each in a fresh process so peaks do not mix. Memory is reported above the model's own (RSS with
weights loaded and the function compiled, measured before the timed call; the peak counter is reset there).
Each child makes three calls: warm-up (compiles), timed, and measured; before the measured call
``malloc_trim`` returns freed buffers to the system, so its peak is its own working set.
``--attention softmax`` runs swap the linear attention for ordinary softmax attention over all positions (as
MLIC+ did); sizes whose attention matrices alone would not fit in memory are skipped and say so.
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

from common import write

SIZES = (256, 512, 1024, 2048)
def _rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak():
    """Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _model(attention="linear", seed=0):
    import jax
    import jax.numpy as jnp
    from jaxlic.models.mlicpp import MLICPlusPlus
    model = MLICPlusPlus(attention=attention)
    variables = jax.jit(model.init)(jax.random.key(seed), jnp.zeros((1, 64, 64, 3), jnp.float32))
    # official initial quantiles are [-10, 0, 10]; flax's are the same, so z codes at a realistic rate
    return model, jax.device_get(variables)


def _codec(model, variables):
    from jaxlic.codec import Codec
    return Codec("mlicpp", model, variables, model.build_tables(variables), {"attention": model.attention})


def _image(path, size=None):
    from PIL import Image
    img = Image.open(path).convert("RGB")
    if size:
        img = img.resize((size, size), Image.BICUBIC)
    return np.asarray(img)


def step_flops(codec, image):
    """XLA's FLOP count of each coding step's jitted work (its prediction and the previous step's update, as the
    codec fuses them; "synthesis" is the last update and g_s), from the compiled HLO."""
    import jax.numpy as jnp
    from jaxlic.codec import pad_to_multiple

    def flops(fn, *args):
        cost = fn.lower(*args).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        return float(cost.get("flops", 0.0))

    v = codec.variables
    x = jnp.asarray(pad_to_multiple(image[None].astype(np.float32) / 255.0, 64))
    out = {"analysis": flops(codec._analysis, v, x)}
    latents = codec._analysis(v, x)
    fn = codec._functions(*image.shape[:2])
    groups = fn.plan.groups  # MLIC++: every group is one step
    off = np.float32(0)  # no simulated drift, no repair margin
    out[groups[0].name] = flops(fn.first, v, {}, off, off)
    p, state = fn.first(v, {}, off, off)
    for k, g in enumerate(groups):
        means = p["means"]
        sym = fn.symbols[k](latents, jnp.int32(0), means)
        if k + 1 < len(groups):
            out[groups[k + 1].name] = flops(fn.next[k], v, state, sym, means, off, off)
            p, state = fn.next[k](v, state, sym, means, off, off)
        else:
            out["synthesis"] = flops(fn.finish, v, state, sym, means)
    return out


def speed(image_path, repeats, coder):
    import jax
    t0 = time.perf_counter()
    model, variables = _model()
    init_s = time.perf_counter() - t0
    codec = _codec(model, variables)
    img = _image(image_path)
    t0 = time.perf_counter()
    data = codec.compress(img, coder)
    first_c = time.perf_counter() - t0
    t0 = time.perf_counter()
    codec.decompress(data)
    first_d = time.perf_counter() - t0
    cs, ds = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        data = codec.compress(img, coder)
        cs.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        codec.decompress(data)
        ds.append(time.perf_counter() - t0)
    e = codec.encode(img, coder, timings=True)
    enc_t, dec_t = e.timings, codec.decode(e.data, timings=True).timings
    fl = step_flops(codec, img)
    n_params = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(variables["params"]))
    res = {"image": os.path.basename(image_path), "height": img.shape[0], "width": img.shape[1], "coder": coder,
           "parameters": n_params, "compress_s": statistics.median(cs), "decompress_s": statistics.median(ds),
           "compress_runs_s": cs, "decompress_runs_s": ds, "compile_s": first_c + first_d - statistics.median(cs)
           - statistics.median(ds), "init_s": init_s, "bytes": len(data),
           "bpp": 8 * len(data) / (img.shape[0] * img.shape[1]), "peak_rss_mb": _rss_mb("VmHWM"),
           "steps": {"compress": _steps(enc_t, fl), "decompress": _steps(dec_t, fl)}}
    return res


def _steps(timings, flops):
    rows = []
    for name, net, coder in timings:
        f = flops.get(name, 0.0)
        rows.append({"step": name, "network_s": net, "coder_s": coder, "gflop": f / 1e9,
                     "gflop_per_s": f / 1e9 / net if net > 0 else None})
    return rows


def official_speed(image_path, official_dir, repeats, threads):
    """The official MLIC++ (random weights, official init), compress and decompress on the same image."""
    from common import import_compressai
    import_compressai()  # the official code imports CompressAI, which imports torchvision
    import compressai.ops
    if not hasattr(compressai.ops, "ste_round"):  # renamed quantize_ste in CompressAI 1.2 (same function)
        compressai.ops.ste_round = compressai.ops.quantize_ste
    sys.path.insert(0, official_dir)
    import torch
    from models import MLICPlusPlus  # official code, from the checkout given
    from utils.utils import Config
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = Config({"N": 192, "M": 320, "slice_num": 10, "context_window": 5, "act": torch.nn.GELU})
    net = MLICPlusPlus(cfg).eval()
    net.update(force=True)
    torch.cuda.synchronize = lambda *a, **k: None  # the official code times with it; CPU only here
    x = torch.from_numpy(_image(image_path)).permute(2, 0, 1)[None].float() / 255
    cs, ds = [], []
    with torch.no_grad():
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            out = net.compress(x)
            c = time.perf_counter() - t0
            t0 = time.perf_counter()
            net.decompress(out["strings"], out["shape"])
            d = time.perf_counter() - t0
            if i:
                cs.append(c)
                ds.append(d)
    return {"compress_s": statistics.median(cs), "decompress_s": statistics.median(ds), "threads": threads,
            "torch": torch.__version__}


# --- (b) scaling, one process per measurement ---------------------------------------------------------------
def _attention_bytes(size: int) -> float:
    """Bytes of the largest set of softmax attention matrices (the last inter-slice context: 9 heads)."""
    n = (size // 16) ** 2
    return 9 * n * n * 4


def one_measurement(mode, size, attention, image_path, coder):
    """Runs in a child process: time and peak memory above the model's own for one (mode, size, attention)."""
    import jax
    import jax.numpy as jnp
    model, variables = _model(attention)
    img = _image(image_path, size)
    if mode == "compress":
        codec = _codec(model, variables)
        run = lambda: codec.compress(img, coder)
    else:
        from jaxlic import xla_cpu
        fwd = xla_cpu.jit(lambda v, x, r: model.apply(v, x, training=True, rng=r)["x_hat"])
        x = jnp.asarray(img[None].astype(np.float32) / 255.0)
        run = lambda: jax.block_until_ready(fwd(variables, x, jax.random.key(0)))
    t0 = time.perf_counter()
    run()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    run()
    seconds = time.perf_counter() - t0
    import ctypes
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed buffers back to the system: the base is live memory only
    base = _rss_mb()
    _reset_peak()
    run()
    peak = _rss_mb("VmHWM")
    return {"mode": mode, "size": size, "attention": attention, "s": seconds, "first_call_s": compile_s,
            "base_rss_mb": base, "peak_rss_mb": peak, "above_model_mb": peak - base}


def scaling(image_path, coder, attentions, sizes, budget_gb):
    rows = []
    for attention in attentions:
        for mode in ("compress", "train_forward"):
            for size in sizes:
                if attention == "softmax" and _attention_bytes(size) > budget_gb * 2 ** 30:
                    rows.append({"mode": mode, "size": size, "attention": attention, "skipped":
                                 f"attention matrices alone need {_attention_bytes(size) / 2 ** 30:.1f} GiB"})
                    print(f"  {attention:7s} {mode:13s} {size:5d}^2: skipped ({rows[-1]['skipped']})", flush=True)
                    continue
                cmd = [sys.executable, __file__, "--image", image_path, "--coder", coder, "--_child",
                       json.dumps([mode, size, attention])]
                p = subprocess.run(cmd, capture_output=True, text=True)
                if p.returncode:
                    rows.append({"mode": mode, "size": size, "attention": attention,
                                 "failed": (p.stderr.strip().splitlines() or ["?"])[-1]})
                else:
                    rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
                r = rows[-1]
                print(f"  {attention:7s} {mode:13s} {size:5d}^2: " + (
                    f"{r['s']:7.2f} s, peak above model {r['above_model_mb']:8.0f} MB" if "s" in r
                    else r.get("failed", "")), flush=True)
    for attention in attentions:
        for mode in ("compress", "train_forward"):
            got = {r["size"]: r for r in rows if r["mode"] == mode and r["attention"] == attention and "s" in r}
            for a, b in zip(sizes, sizes[1:]):
                if a in got and b in got:
                    got[b]["memory_growth_vs_previous"] = got[b]["above_model_mb"] / max(got[a]["above_model_mb"], 1)
                    got[b]["time_growth_vs_previous"] = got[b]["s"] / got[a]["s"]
    return rows


def speed_vs_official(args, res):
    """Part (a), printed as a table; the official code timed in its own interpreter when given."""
    res.update(speed(args.image, args.repeats, args.coder))
    ref = None
    if args.official:
        cmd = [args.official_python, __file__, "--_official_child", "--image", args.image, "--official",
               args.official, "--repeats", str(args.repeats), "--threads", str(args.threads)]
        try:
            q = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as e:
            q = subprocess.CompletedProcess(cmd, 1, "", f"{args.official_python}: {e}")
        if q.returncode == 0:
            ref = json.loads(q.stdout.strip().splitlines()[-1])
        else:  # the official code or its dependencies are missing: say so; no ratio without a measurement
            res["official_error"] = (q.stderr.strip().splitlines() or ["?"])[-1]
            print(f"official code not timed: {res['official_error']}", file=sys.stderr)
    if ref:
        res["official"] = {**ref, "source": "measured here, back to back"}
        res["speedup_compress"] = ref["compress_s"] / res["compress_s"]
        res["speedup_decompress"] = ref["decompress_s"] / res["decompress_s"]
    print(f"MLIC++ N=192 M=320, 10 slices ({res['parameters']:,} parameters, random weights), "
          f"{res['image']} {res['width']}x{res['height']}, coder {res['coder']}, jax {res['jax']}")
    for d in ("compress", "decompress"):
        vs = (f"(official {ref[f'{d}_s']:.2f} s, back to back: {res[f'speedup_{d}']:.2f}x)" if ref
              else "(official code not timed: it failed, see above)" if args.official
              else "(official code not timed: --official PATH)")
        print(f"  {d:10s} {res[f'{d}_s']:6.2f} s   {vs}")
    print(f"  first-call compile {res['compile_s']:.1f} s, peak RSS {res['peak_rss_mb']:.0f} MB, "
          f"{res['bytes']} bytes ({res['bpp']:.3f} bpp)")
    for direction in ("compress", "decompress"):
        rows = res["steps"][direction]
        print(f"\n  {direction}: step            network s   coder s    GFLOP   GFLOP/s")
        for r in rows:
            rate = f"{r['gflop_per_s']:8.1f}" if r["gflop_per_s"] else "       -"
            print(f"  {'':{len(direction)}}  {r['step']:15s} {r['network_s']:9.3f} {r['coder_s']:9.3f} "
                  f"{r['gflop']:8.1f} {rate}")
        net, cod = sum(r["network_s"] for r in rows), sum(r["coder_s"] for r in rows)
        gf = sum(r["gflop"] for r in rows)
        print(f"  {'':{len(direction)}}  {'total':15s} {net:9.3f} {cod:9.3f} {gf:8.1f} {gf / net:8.1f}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", required=True)
    p.add_argument("--json", default="", help="default: benchmarks/results/mlicpp_speed_<image>.json "
                   "(mlicpp_scaling.json with --skip-speed)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--coder", default="constriction")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--official", default="", help="path of the official MLIC++ folder (needs torch, compressai)")
    p.add_argument("--official-python", default=sys.executable, help="interpreter with torch and compressai")
    p.add_argument("--scaling", action="store_true")
    p.add_argument("--skip-speed", action="store_true", help="only the scaling part")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--attention", default="linear,softmax")
    p.add_argument("--softmax-budget-gb", type=float, default=4.0)
    p.add_argument("--_child", default="", help=argparse.SUPPRESS)
    p.add_argument("--_official_child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._official_child:
        print(json.dumps(official_speed(args.image, args.official, args.repeats, args.threads)))
        return
    from jaxlic.cli import enable_compilation_cache
    enable_compilation_cache()
    if args._child:
        mode, size, attention = json.loads(args._child)
        print(json.dumps(one_measurement(mode, size, attention, args.image, args.coder)))
        return
    import jax
    res = {"jax": jax.__version__}
    if not args.skip_speed:
        speed_vs_official(args, res)
    if args.scaling:
        print("\nscaling (fresh process per row; memory above the model's own):")
        res["scaling"] = scaling(args.image, args.coder, args.attention.split(","),
                                 [int(s) for s in args.sizes.split(",")], args.softmax_budget_gb)
    write(res, args.json or None,
          "mlicpp_scaling.json" if args.skip_speed else f"mlicpp_speed_{pathlib.Path(args.image).stem}.json")


if __name__ == "__main__":
    main()
