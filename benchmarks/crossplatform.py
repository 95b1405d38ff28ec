"""Files that decode on any machine (issue 13): real drift between CPU configurations, the simulated platform,
the repair's rate and time overhead.

    python benchmarks/crossplatform.py [--images 24] [--mlicpp] [--gpu]

1. **Drift.** One process per configuration (threads, XLA flags that change instruction set, fusion or math,
   the transforms' precision) encodes the same images and reports its scales; each decodes the files the
   baseline process wrote (repair off and on). Reported: the largest relative scale difference from the
   baseline, how many table indexes differ, and whether the baseline's files decode exactly.
2. **Simulated platform.** Every Kodak image, encoded once; decoded with a simulated drift (``Codec.decode(data, drift)``) from 1e-7 to
   1e-3, repair off (the same file without its repair bytes) and on: exact, IndexMismatch, or wrong.
3. **Overhead.** Bytes of the index checks and of the repair per file against the file size, per model and
   bitrate; encode and decode time with the repair on against off, alternated, medians.

Models: the three shipped mean-scale models (bitrates 0.0018, 0.0067, 0.025) and, with ``--mlicpp``, MLIC++ at
full size with random weights made non-degenerate (kernels scaled until a fifth of the scales lie above the
scale bound). ``--gpu``: the drift processes run on the GPU as well (a machine with one).
Writes ``benchmarks/results/crossplatform.json``.
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
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CONFIGS = {  # name -> (extra XLA flags, CPU list for taskset or None, environment)
    "baseline": ("", None, {}),
    "1 thread": ("--xla_cpu_multi_thread_eigen=false", "0", {}),
    "SSE4.2 only": ("--xla_cpu_max_isa=SSE4_2", None, {}),
    "128-bit vectors": ("--xla_cpu_prefer_vector_width=128", None, {}),
    "fast math": ("--xla_cpu_enable_fast_math=true", None, {}),
    "no optimisation": ("--xla_backend_optimization_level=0", None, {}),
    "transforms DEFAULT": ("", None, {"BENCH_PRECISION": "default"}),
}
DRIFTS = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3)


def _load(path: str):
    import jax
    from jaxlic.codec import Codec
    from jaxlic.export import load_model
    name, config, model, variables, tables = load_model(path)
    if os.environ.get("BENCH_PRECISION") == "default":
        from jaxlic.registry import get_spec
        model = get_spec(name).build(**config, precision=jax.lax.Precision.DEFAULT)
    return Codec(name, model, variables, tables, config)


def child(model_path: str, images: list[str], out: str, files: str | None, write: str | None):
    """Encodes the images here (scales and table indexes to ``out``); decodes the baseline's files from ``files``
    or, as the baseline, writes its files (repair off and at the default margin) to ``write``."""
    import dataclasses
    from jaxlic.codec import DEFAULT_ROBUST_MARGIN, IndexMismatch
    from jaxlic.coding.container import write_container
    from jaxlic.io import read_image
    codec = _load(model_path)
    result = {"scales": [], "outcomes": {}}
    arrays = {}
    for i, path in enumerate(images):
        img = read_image(path)
        e = codec.encode(img, robust_margin=DEFAULT_ROBUST_MARGIN, details=True)
        c, sym, scales, idx = e.container, e.symbols, e.scales, e.indexes
        arrays[f"scales{i}"] = np.concatenate([s.astype(np.float32) for s in scales if s.dtype.kind == "f"])
        arrays[f"indexes{i}"] = np.concatenate([np.ravel(v) for _, v in sorted(idx.items())])
        if write:
            pathlib.Path(write, f"{i}_on.jlc").write_bytes(write_container(c))
            pathlib.Path(write, f"{i}_off.jlc").write_bytes(write_container(dataclasses.replace(c, repair=b"")))
            np.savez(pathlib.Path(write, f"{i}_sym.npz"), **sym)
        if files:
            with np.load(pathlib.Path(files, f"{i}_sym.npz")) as f:
                ref = {k: f[k] for k in f.files}
            for tag in ("off", "on"):
                decoded = []
                try:
                    d = codec.decode(pathlib.Path(files, f"{i}_{tag}.jlc").read_bytes(), details=True)
                    got, decoded = d.symbols, d.scales
                    outcome = "exact" if all(np.array_equal(ref[k], got[k]) for k in ref) else "wrong"
                except IndexMismatch:
                    outcome = "mismatch"
                result["outcomes"].setdefault(tag, []).append(outcome)
                if tag == "on":  # this machine's scales for the baseline's symbols (up to a mismatch)
                    arrays[f"decoded{i}"] = np.concatenate(
                        [s.astype(np.float32) for s in decoded if s.dtype.kind == "f"] or [np.zeros(0, np.float32)])
    np.savez(out, **arrays)
    print(json.dumps(result))


def drift(model_path: str, images: list[str], python: str, gpu: bool, only: int | None = None) -> dict:
    """Files of a CPU baseline decoded under each configuration (and on the GPU); with ``gpu`` also the
    reverse: a GPU baseline's files decoded on the CPU."""
    configs = dict(list(CONFIGS.items())[:only])
    if not gpu:
        return _drift(model_path, images, python, configs)
    gpu_env = {"JAX_PLATFORMS": "cuda"}
    configs["GPU"] = ("", None, gpu_env)
    configs["GPU, transforms DEFAULT"] = ("", None, {**gpu_env, "BENCH_PRECISION": "default"})
    out = _drift(model_path, images, python, configs)
    reverse = _drift(model_path, images, python, {"GPU (baseline)": ("", None, gpu_env), "CPU": CONFIGS["baseline"]})
    out["CPU decoding the GPU's files"] = reverse["CPU"]
    return out


def _drift(model_path: str, images: list[str], python: str, configs: dict) -> dict:
    from tqdm import tqdm
    from jaxlic.entropy.gaussian import SCALE_BOUND
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = None
        for name, (flags, cpus, env) in tqdm(configs.items(), desc="drift configurations"):
            cmd = ([] if cpus is None else ["taskset", "-c", cpus]) + [
                python, __file__, "--child", model_path, "--out", f"{tmp}/{len(out)}.npz", *images]
            cmd += ["--write", tmp] if base is None else ["--files", tmp]
            e = {**os.environ, **env, "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") + " " + flags).strip(),
                 "JAXLIC_SIMULATE_DRIFT": "0"}
            if "JAX_PLATFORMS" not in env:
                e["JAX_PLATFORMS"] = "cpu"
            t0 = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True, env=e)
            if p.returncode:
                out[name] = {"flags": flags, "error": p.stderr.strip().splitlines()[-1:]}
                continue
            res = json.loads(p.stdout.strip().splitlines()[-1])
            with np.load(f"{tmp}/{len(out)}.npz") as f:
                arrays = {k: f[k] for k in f.files}
            if base is None:
                base = arrays
            rel, rel_enc, moved, n = 0.0, 0.0, 0, 0
            for i in range(len(images)):
                # the decoder's drift: its scales for the baseline file's symbols against the baseline's own
                b = base[f"scales{i}"].astype(np.float64)
                d = arrays.get(f"decoded{i}", b).astype(np.float64)
                rel = max(rel, _max_rel(d, b[:d.size], SCALE_BOUND))
                # the encoder's: the same image encoded here (its analysis too: other symbols, other contexts)
                rel_enc = max(rel_enc, _max_rel(arrays[f"scales{i}"].astype(np.float64), b, SCALE_BOUND))
                moved += int((arrays[f"indexes{i}"] != base[f"indexes{i}"]).sum())
                n += arrays[f"indexes{i}"].size
            out[name] = {"flags": flags, "cpus": cpus, "env": env, "max_rel_scale_drift": rel,
                         "max_rel_scale_drift_encoding": rel_enc, "encoder_indexes_moved": moved, "indexes": n,
                         "seconds": time.perf_counter() - t0,
                         **{f"decodes_baseline_files_repair_{k}": v for k, v in res["outcomes"].items()}}
    return out


def _max_rel(a: np.ndarray, b: np.ndarray, bound: float) -> float:
    if a.shape != b.shape:
        return float("nan")
    keep = np.maximum(np.abs(a), np.abs(b)) >= bound  # below the bound a scale is clamped
    return float(np.max(np.abs(a - b)[keep] / np.abs(b)[keep], initial=0.0))


def simulated(codec, images: list[str], delta: float) -> dict:
    """Encodes each image once (repair at ``delta``); decodes it with every drift, repair off and on."""
    import dataclasses
    from tqdm import tqdm
    from jaxlic.codec import IndexMismatch
    from jaxlic.coding.container import write_container
    from jaxlic.io import read_image
    counts = {f"{tag} {d:g}": {"exact": 0, "mismatch": 0, "wrong": 0} for tag in ("off", "on") for d in DRIFTS}
    sizes = []
    for path in tqdm(images, desc=f"{codec.name} simulated platform"):
        img = read_image(path)
        e = codec.encode(img, robust_margin=delta)
        c, sym, stats = e.container, e.symbols, e.side
        files = {"on": write_container(c), "off": write_container(dataclasses.replace(c, repair=b""))}
        sizes.append({"image": os.path.basename(path), "bytes": len(files["on"]),
                      "bpp": 8 * len(files["on"]) / (img.shape[0] * img.shape[1]), **stats})
        for tag, data in files.items():
            for d in DRIFTS:
                try:
                    got = codec.decode(data, drift=d).symbols
                    outcome = "exact" if all(np.array_equal(sym[k], got[k]) for k in sym) else "wrong"
                except IndexMismatch:
                    outcome = "mismatch"
                counts[f"{tag} {d:g}"][outcome] += 1
    side = [(s["checks_bytes"] + s["repair_bytes"] + 1) / s["bytes"] for s in sizes]
    repair = [(s["repair_bytes"] + 1) / s["bytes"] for s in sizes]
    return {"delta": delta, "outcomes": counts, "files": sizes,
            "mean_bpp": float(np.mean([s["bpp"] for s in sizes])),
            "repair_overhead_pct": {"mean": 100 * float(np.mean(repair)), "max": 100 * float(np.max(repair))},
            "side_info_overhead_pct": {"mean": 100 * float(np.mean(side)), "max": 100 * float(np.max(side))},
            "repair_keys_mean": float(np.mean([s["repair_keys"] for s in sizes]))}


def overhead_time(codec, image: str, delta: float, repeats: int) -> dict:
    """Encode and decode with the repair on and off, alternated (the machine's noise hits both alike)."""
    from jaxlic.coding.container import write_container
    from jaxlic.io import read_image
    img = read_image(image)
    files = {}
    t = {f"{op} {tag}": [] for op in ("encode", "decode") for tag in ("off", "on")}
    for r in range(repeats + 1):  # the first round compiles
        for tag, d in (("off", 0.0), ("on", delta)):
            t0 = time.perf_counter()
            c = codec.encode(img, robust_margin=d).container
            t1 = time.perf_counter()
            files[tag] = write_container(c)
            t2 = time.perf_counter()
            codec.decode(files[tag])
            t3 = time.perf_counter()
            if r:
                t[f"encode {tag}"].append(t1 - t0)
                t[f"decode {tag}"].append(t3 - t2)
    med = {k: statistics.median(v) for k, v in t.items()}
    return {"image": os.path.basename(image), "repeats": repeats, "median_s": med,
            "encode_ratio": med["encode on"] / med["encode off"], "decode_ratio": med["decode on"] / med["decode off"]}


def mlicpp_random(tmp: str, probe: str):
    """MLIC++ at its published size, random weights with kernels scaled by the first gain that puts a fifth of
    the scales of ``probe`` above the scale bound; saved as a model file for the drift processes."""
    import jax
    import jax.numpy as jnp
    from jaxlic.codec import Codec
    from jaxlic.export import save_model
    from jaxlic.io import read_image
    from jaxlic.registry import get_spec
    spec = get_spec("mlicpp")
    config = dict(spec.defaults)
    model = spec.build(**config)
    v0 = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
    img = read_image(probe)
    codec = None
    for gain in (1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0):
        v = {**v0, "params": jax.tree_util.tree_map_with_path(
            lambda p, x: x * gain if "kernel" in jax.tree_util.keystr(p) else x, v0["params"])}
        tables = model.build_tables(v)
        codec = Codec("mlicpp", model, v, tables, config) if codec is None else codec.with_weights(v, tables)
        scales = codec.encode(img, robust_margin=0, details=True).scales
        s = np.concatenate([x for x in scales if x.dtype.kind == "f"])
        print(f"MLIC++ random, kernel gain {gain}: {100 * (s > 0.12).mean():.1f} % of scales above the bound")
        if np.isfinite(s).all() and (s > 0.12).mean() > 0.2:
            break
    path = os.path.join(tmp, "mlicpp_random.npz")
    save_model(path, "mlicpp", config, v, tables)
    return path, gain, codec


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--files", help=argparse.SUPPRESS)
    p.add_argument("--write", help=argparse.SUPPRESS)
    p.add_argument("images", nargs="*")
    p.add_argument("--kodak", default=os.path.join(os.environ.get("JAXLIC_SHARED", ROOT.parent / "shared"),
                                                   "datasets", "kodak"))
    p.add_argument("--images-count", "--n", type=int, default=24, dest="n")
    p.add_argument("--drift-images", type=int, default=3)
    p.add_argument("--mlicpp", action="store_true")
    p.add_argument("--gpu", action="store_true")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--drift-only", action="store_true", help="only the drift between configurations "
                   "(to crossplatform_drift.json)")
    p.add_argument("--output")
    args = p.parse_args()
    if args.child:
        return child(args.child, args.images, args.out, args.files, args.write)

    from common import write
    from jaxlic import assets
    from jaxlic.codec import DEFAULT_ROBUST_MARGIN
    kodak = sorted(str(x) for x in pathlib.Path(args.kodak).glob("kodim*.png"))[:args.n]
    result = {"delta": DEFAULT_ROBUST_MARGIN, "drifts": list(DRIFTS), "models": {}}
    models = [(f"mbt2018-mean {n.rsplit('-', 1)[1]}", assets.path(n), None) for n in assets.SHIPPED
              if not args.drift_only or n == assets.DEFAULT]
    with tempfile.TemporaryDirectory() as tmp:
        if args.mlicpp:
            path, gain, codec = mlicpp_random(tmp, kodak[0])
            models.append((f"mlicpp random (kernel gain {gain})", path, codec))
        for label, path, codec in models:
            codec = codec or _load(path)
            entry = {}
            if label.endswith("0.0067") or label.startswith("mlicpp"):
                big = label.startswith("mlicpp")  # a process compiles MLIC++ for minutes: fewer configurations
                entry["drift"] = drift(path, kodak[:1 if big else args.drift_images], sys.executable, args.gpu,
                                       4 if big else None)
                if not args.drift_only:
                    entry["time"] = overhead_time(codec, kodak[0], DEFAULT_ROBUST_MARGIN, args.repeats)
            if not args.drift_only:
                entry["simulated"] = simulated(codec, kodak, DEFAULT_ROBUST_MARGIN)
            result["models"][label] = entry
            _print(label, entry)
    write(result, args.output, "crossplatform_drift.json" if args.drift_only else "crossplatform.json")


def _print(label: str, e: dict):
    print(f"\n== {label}")
    for name, d in e.get("drift", {}).items():
        if "error" in d:
            print(f"  {name:22s} not available: {d['error']}")
            continue
        print(f"  {name:22s} decoder's scale drift {d['max_rel_scale_drift']:.2e} (encoding the image here: "
              f"{d['max_rel_scale_drift_encoding']:.2e}, {d['encoder_indexes_moved']}/{d['indexes']} indexes moved)"
              f"  baseline files: repair off {d.get('decodes_baseline_files_repair_off')}"
              f" on {d.get('decodes_baseline_files_repair_on')}")
    if "simulated" not in e:
        return
    s = e["simulated"]
    print(f"  {len(s['files'])} images, {s['mean_bpp']:.3f} bpp; repair {s['repair_keys_mean']:.0f} keys, "
          f"{s['repair_overhead_pct']['mean']:.3f} % (max {s['repair_overhead_pct']['max']:.3f} %); checks + repair "
          f"{s['side_info_overhead_pct']['mean']:.3f} % (max {s['side_info_overhead_pct']['max']:.3f} %)")
    print("  drift      " + "  ".join(f"{d:>8g}" for d in DRIFTS))
    for tag in ("off", "on"):
        row = [s["outcomes"][f"{tag} {d:g}"] for d in DRIFTS]
        print(f"  repair {tag:3s} " + "  ".join(f"{r['exact']:>2d}/{r['mismatch']:>2d}/{r['wrong']:>1d}" for r in row)
              + "   (exact/mismatch/wrong)")
    if "time" in e:
        t = e["time"]
        print(f"  time, repair on / off: encode {t['encode_ratio']:.3f}x, decode {t['decode_ratio']:.3f}x "
              f"({t['median_s']})")


if __name__ == "__main__":
    main()
