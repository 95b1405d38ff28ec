"""CWAM speed: forward, compress and decompress at a published size, jaxlic and the official code back to back.

    python benchmarks/cwam.py --N 128 [--image kodim01.png] [--repeats 3] [--json OUT.json]
        [--official PATH/CWAM_IC_ISVC --official-python PY]

Random weights on both sides (their own default initialisation), the same 8-bit image, real files. jaxlic: the
evaluation forward (jitted), compress and decompress through the wavefront codec, and where the time goes (the
analysis, z, h_s and the start of the wavefront, the W + 3H - 3 steps' network and coder, the synthesis).
The official code (``--official``: a checkout of prmudgal/CWAM_IC_ISVC) is a modified CompressAI 1.1.1 whose
compiled extensions exist for Python 3.7 only; it is run in ``--official-python`` (an environment with torch,
timm and pip's CompressAI 1.2.8, whose rANS extensions are loaded in their place: the same C++ code) and timed
the same way, g_a / g_s and the per-position loops apart. Runs alternate (jaxlic, official, ...) after a
warm-up of each; medians are reported. Without the official code, no ratio is given.

JSON fields (a contract for scripts): ``forward_s``, ``compress_s``, ``decompress_s`` (medians after warm-up),
``compile_s`` (tracing, lowering and XLA compilation in the first forward, compress and decompress, from JAX's
events), ``peak_rss_mb``, the per-part splits, and the official figures and ratios where it ran.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

from common import CompileClock, official_compressai, read_image, timed, write

ROOT = pathlib.Path(__file__).resolve().parents[1]


# The transforms' parts, in order: (label, jaxlic path from the model, official path from InvCompress). cnn
# indexes are positions in the official nn.Sequential, which jaxlic's mirror layer for layer.
PARTS = {
    "g_a": [("feature encoding (EnhBlock)", "g_a.forw_enh", "enh.forw_enh"),
            ("conv 5x5 s2 + GDN, x2", "g_a.cnn:0-3", "cnn.g_a:0-3"),
            ("CWAM block (window 8) at 1/4", "g_a.cnn:4", "cnn.g_a:4"),
            ("conv 5x5 s2 + GDN, conv", "g_a.cnn:5-7", "cnn.g_a:5-7"),
            ("CWAM block (window 4) at 1/16", "g_a.cnn:8", "cnn.g_a:8"),
            ("attention block", "g_a.forw_att", "attention.forw_att")],
    "g_s": [("attention block", "g_s.back_att", "attention.back_att"),
            ("CWAM block (window 4) at 1/16", "g_s.cnn:0", "cnn.g_s:0"),
            ("deconv + IGDN, x2", "g_s.cnn:1-4", "cnn.g_s:1-4"),
            ("CWAM block (window 8) at 1/4", "g_s.cnn:5", "cnn.g_s:5"),
            ("deconv + IGDN, deconv", "g_s.cnn:6-8", "cnn.g_s:6-8"),
            ("feature encoding (EnhBlock)", "g_s.back_enh", "enh.back_enh")],
}


def _resolve(root, path, layers_of):
    """The callables a part path names: 'a.b' an attribute chain, 'a.b:i-j' layers i..j of a sequential."""
    dotted, _, span = path.partition(":")
    mod = root
    for name in dotted.split("."):
        mod = getattr(mod, name)
    if not span:
        return [mod]
    lo, _, hi = span.partition("-")
    return layers_of(mod)[int(lo):int(hi or lo) + 1]


def _part_times(run_part, x, rnd, repeats):
    """Median seconds of each part, run in order on the real intermediate tensors (g_s from the rounded output
    of g_a); ``run_part(path, h, n)`` returns the part's output (its warm-up call) and n timed runs."""
    out, h = {}, x
    for transform, parts in PARTS.items():
        rows = []
        for label, *paths in parts:
            h, times = run_part(paths, h, repeats)
            rows.append({"part": label, "s": statistics.median(times)})
        out[transform] = rows
        h = rnd(h)
    return out


# --- jaxlic ---------------------------------------------------------------------------------------------------
class Jaxlic:
    def __init__(self, N, image):
        import jax
        import jax.numpy as jnp
        from jaxlic.codec import Codec, pad_to_multiple
        from jaxlic.registry import get_spec
        model = get_spec("cwam").build(N=N)
        t0 = time.perf_counter()
        variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 64, 64, 3), jnp.float32))
        self.init_s = time.perf_counter() - t0
        self.codec = Codec("cwam", model, variables, model.build_tables(jax.device_get(variables)), {"N": N})
        self.params = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(variables["params"]))
        self.image = image
        x = jnp.asarray(pad_to_multiple(image[None].astype(np.float32) / 255, 64))
        from jaxlic import xla_cpu
        fwd = xla_cpu.jit(model.apply)
        self.forward = lambda: jax.block_until_ready(fwd(variables, x))
        self.model, self.variables, self.x = model, variables, x

    def parts(self, repeats):
        """Each part of g_a and g_s jitted on its own (no fusion across parts)."""
        import jax
        import jax.numpy as jnp

        def run_part(paths, h, n):
            from jaxlic import xla_cpu
            fn = xla_cpu.jit(lambda v, h: self.model.apply(v, h, method=lambda m, h: _chain(
                _resolve(m, paths[0], lambda seq: seq.layers), h)))
            out = jax.block_until_ready(fn(self.variables, h))
            return out, [timed(lambda: jax.block_until_ready(fn(self.variables, h)))[0] for _ in range(n)]

        return _part_times(run_part, self.x, jnp.round, repeats)

    def compress(self):
        self.data = self.codec.compress(self.image)
        return self.data

    def decompress(self):
        return self.codec.decompress(self.data)

    def split(self):
        """Per part (network, coder) seconds of one compress and one decompress, synchronised at every step."""
        enc = self.codec.encode(self.image, timings=True)
        dec = self.codec.decode(enc.data, timings=True).timings
        enc = enc.timings
        steps = {g.name: g.count for g in self.codec.plan(*self.image.shape[:2]).groups}
        table = lambda rows: {name: {"network_s": n, "coder_s": c, "steps": steps.get(name, 1)} for name, n, c in rows}
        return table(enc), table(dec)


def _chain(fns, h):
    for f in fns:
        h = f(h)
    return h


# --- the official code (child process) ------------------------------------------------------------------------
def _official_child(official, N, image_path, threads):
    """Loads the official package with pip CompressAI's rANS extensions in place of its Python 3.7 ones; answers
    "forward" / "compress" / "decompress" lines with the seconds and the split."""
    import types
    official_compressai(os.path.join(official, "codes"))
    sys.modules.setdefault("seaborn", types.ModuleType("seaborn"))  # imported, unused by ours.py
    import torch
    from compressai.models.ours import InvCompress
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = InvCompress(N=N).eval()
    net.update(force=True)
    parts = {}

    def timed_method(name):
        fn = getattr(net, name)

        def wrapper(*a, **k):
            t0 = time.perf_counter()
            out = fn(*a, **k)
            parts[name] = parts.get(name, 0.0) + time.perf_counter() - t0
            return out
        setattr(net, name, wrapper)

    timed_method("g_a_func")
    timed_method("g_s_func")
    img = read_image(image_path)
    h, w = img.shape[:2]
    x = torch.from_numpy(img.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    x = torch.nn.functional.pad(x, (0, -w % 64, 0, -h % 64), mode="replicate")
    with torch.no_grad():
        enc = net.compress(x)
        net.decompress(enc["strings"], enc["shape"])
        net(x)
        print(json.dumps({"torch": torch.__version__, "threads": threads,
                          "parameters": sum(p.numel() for n, p in net.named_parameters() if not n.startswith("enh1."))}),
              flush=True)
        for line in sys.stdin:
            what = line.strip()
            parts.clear()
            if what == "forward":
                t, _ = timed(lambda: net(x))
            elif what.startswith("parts"):
                print(json.dumps(_official_parts(net, x, int(what.split()[1]))), flush=True)
                continue
            elif what == "compress":
                t, enc = timed(lambda: net.compress(x))
            else:
                t, _ = timed(lambda: net.decompress(enc["strings"], enc["shape"]))
            print(json.dumps({"s": t, **{f"{k}_s": v for k, v in parts.items()},
                              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)


def _official_parts(net, x, repeats):
    import torch

    def run_part(paths, h, n):
        fns = _resolve(net, paths[1], list)
        with torch.no_grad():
            return _chain(fns, h), [timed(lambda: _chain(fns, h))[0] for _ in range(n)]

    return _part_times(run_part, x, torch.round, repeats)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = pathlib.Path(os.environ.get("JAXLIC_SHARED", ROOT.parent / "shared"))
    p.add_argument("--N", type=int, default=128)
    p.add_argument("--image", default=str(shared / "datasets" / "kodak" / "kodim01.png"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="PyTorch threads (XLA:CPU uses every core)")
    p.add_argument("--official", default="", help="a checkout of prmudgal/CWAM_IC_ISVC")
    p.add_argument("--official-python", default=sys.executable, help="interpreter with torch, timm and compressai")
    p.add_argument("--json", default=None, help="default: benchmarks/results/cwam_N<N>.json")
    p.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        return _official_child(args.official, args.N, args.image, args.threads)

    import jax
    image = read_image(args.image)
    ours = Jaxlic(args.N, image)
    with CompileClock() as clock:
        first = {k: timed(getattr(ours, k))[0] for k in ("forward", "compress", "decompress")}
    res = {"N": args.N, "parameters": ours.params, "image": os.path.basename(args.image),
           "image_hw": list(image.shape[:2]), "weights": "random (default initialisation)", "repeats": args.repeats,
           "init_s": ours.init_s, "first_call_s": first, "bytes": len(ours.data)}
    child = None
    if args.official:
        child = subprocess.Popen([args.official_python, __file__, "--_child", "--official", args.official, "--N",
                                  str(args.N), "--image", args.image, "--threads", str(args.threads)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = child.stdout.readline()
        if not line:
            res["official_error"] = "the official code could not be started (see above)"
            print(f"official code not timed: {res['official_error']}", file=sys.stderr)
            child = None
        else:
            res["official_info"] = json.loads(line)

    def theirs(what):
        child.stdin.write(what + "\n")
        child.stdin.flush()
        return json.loads(child.stdout.readline())

    runs = {k: [] for k in ("forward", "compress", "decompress")}
    official = {k: [] for k in runs}
    for _ in range(args.repeats):  # alternating, so a change of load on the machine hits both
        for k in runs:
            runs[k].append(timed(getattr(ours, k))[0])
            if child:
                official[k].append(theirs(k))
    parts = {"jaxlic": ours.parts(args.repeats)}
    if child:
        parts["official"] = theirs(f"parts {args.repeats}")
    if child:
        child.stdin.close()
        child.wait()
    enc_split, dec_split = ours.split()
    med = statistics.median
    res.update({f"{k}_s": med(v) for k, v in runs.items()}, runs=runs, compile_s=clock.seconds,
               functions_compiled=clock.compiled, compress_split=enc_split, decompress_split=dec_split,
               transform_parts=parts,
               peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    synthesis = dec_split["synthesis"]["network_s"]
    res["decompress_context_s"] = res["decompress_s"] - synthesis  # everything but the synthesis
    print(f"CWAM N={args.N} ({ours.params:,} parameters), {res['image']} {image.shape[1]}x{image.shape[0]}, random "
          f"weights, median of {args.repeats} (jax {jax.__version__}, compile {clock.seconds:.1f} s)")
    print(f"  {'':9} {'forward':>8} {'compress':>9} {'decompress':>10} {'context':>8}")
    print(f"  {'jaxlic':9} {res['forward_s']:8.2f} {res['compress_s']:9.2f} {res['decompress_s']:10.2f} "
          f"{res['decompress_context_s']:8.2f}")
    if child:
        o = {f"{k}_s": med([r["s"] for r in v]) for k, v in official.items()}
        o["decompress_context_s"] = med([r["s"] - r.get("g_s_func_s", 0.0) for r in official["decompress"]])
        o["g_a_s"] = med([r.get("g_a_func_s", 0.0) for r in official["compress"]])
        o["g_s_s"] = med([r.get("g_s_func_s", 0.0) for r in official["decompress"]])
        o["peak_rss_mb"] = max(r["peak_rss_mb"] for v in official.values() for r in v)
        res["official"] = {**o, "runs": official}
        res["ratios"] = {k: o[k] / res[k] for k in ("forward_s", "compress_s", "decompress_s", "decompress_context_s")}
        print(f"  {'official':9} {o['forward_s']:8.2f} {o['compress_s']:9.2f} {o['decompress_s']:10.2f} "
              f"{o['decompress_context_s']:8.2f}  (g_a {o['g_a_s']:.2f} s, g_s {o['g_s_s']:.2f} s, peak RSS "
              f"{o['peak_rss_mb']:.0f} MB)")
        print("  official / jaxlic: " + ", ".join(f"{k[:-2]} {v:.1f}x" for k, v in res["ratios"].items()))
    for name, split in (("compress", enc_split), ("decompress", dec_split)):
        print(f"  {name} per part: " + ", ".join(
            f"{k} {v['network_s']:.3f}+{v['coder_s']:.3f} s" + (f" ({v['steps']} steps)" if v["steps"] > 1 else "")
            for k, v in split.items()))
    for transform in PARTS:
        print(f"  {transform} parts (s, each jitted alone){' / official' if child else ''}:")
        for i, row in enumerate(parts["jaxlic"][transform]):
            theirs_s = f" / {parts['official'][transform][i]['s']:.3f}" if child else ""
            print(f"    {row['part']:32} {row['s']:.3f}{theirs_s}")
    print(f"  peak RSS {res['peak_rss_mb']:.0f} MB")
    write(res, args.json, f"cwam_N{args.N}.json")


if __name__ == "__main__":
    main()
