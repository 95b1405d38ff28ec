"""The accelerator script (issue 29): on a machine with one GPU, one run, one JSON.

    # on this CPU: the files the device decodes (Kodak encoded here), then a dry run of everything at tiny sizes
    python benchmarks/device.py prepare --kit device_kit [--images 2]
    python benchmarks/device.py run --kit device_kit --tiny --json /tmp/device_dry.json
    # on the device (the kit travels as files; ``--official``: a checkout of JiangWeibeta/MLIC's MLIC++ folder)
    python benchmarks/device.py run --kit device_kit --json $OUT/device.json [--official MLIC/MLIC++]

``prepare`` (here, on the CPU): ``--images`` Kodak images encoded on this CPU with the shipped default model
(repair off and on), with the symbols and the scales the CPU computed: a few MB to carry.

``run`` (the device), three parts, the JSON rewritten after each so a run cut short keeps what it measured:

1. ``training``: the training step (``scale.step_time``) of mbt2018-mean, MLIC++ and Shen & Liu at batch 8,
   256^2 (``--tiny``: their tiny presets, batch 2, 64^2), float32 and bf16, remat off and on: seconds per step,
   images per second, the device's peak bytes in use;
2. ``codec``: MLIC++ at its published size, random weights made non-degenerate on the device
   (``crossplatform.mlicpp_random``; ``--tiny``: its tiny preset), compressing and decompressing the kit's first
   image on the device (medians of ``--repeats``), and the official PyTorch MLIC++ on the same GPU where torch sees one and ``--official`` is
   given (random weights of the official initialisation), with the ratios;
3. ``decode_cpu_files``: the CPU's files decoded on the device (``crossplatform.child``): per file and repair
   setting, exact (the CPU's symbols), a clean IndexMismatch, or wrong; and the real drift, the largest relative
   difference between the device's scales and the CPU's for the same symbols (and for the same image encoded
   here), with the table indexes that moved.

JSON (a contract for scripts): {"machine", "tiny", "training": [scale.step_time rows: config, platform, device,
dtype, remat, batch, crop, step_s, images_per_s, loss, peak_bytes_in_use], "codec": {"model", "images",
"compress_s", "decompress_s", "official": {compress_s, decompress_s, torch, device} | null, "official_note",
"speedup_compress", "speedup_decompress"}, "decode_cpu_files": {"outcomes": {"off": [...], "on": [...]},
"max_rel_scale_drift", "max_rel_scale_drift_encoding", "encoder_indexes_moved", "indexes"}, "seconds": {part:
wall seconds}}.
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
import types

import numpy as np

from common import machine, read_image, write

ROOT = pathlib.Path(__file__).resolve().parents[1]
HERE = pathlib.Path(__file__).resolve().parent
MODELS = ("mbt2018_mean", "mlicpp", "stf")


def _kodak(n: int) -> list[str]:
    shared = pathlib.Path(os.environ.get("JAXLIC_SHARED", ROOT.parent / "shared"))
    return sorted(str(p) for p in (shared / "datasets" / "kodak").glob("kodim*.png"))[:n]


def _shipped() -> str:
    from jaxlic import assets
    return assets.path(assets.DEFAULT)


def prepare(args):
    import shutil
    import crossplatform
    kit = pathlib.Path(args.kit)
    kit.mkdir(parents=True, exist_ok=True)
    images = _kodak(args.images)
    for i, path in enumerate(images):
        shutil.copy(path, kit / f"{i}.png")
    images = [str(kit / f"{i}.png") for i in range(len(images))]
    # the CPU's files (repair off and on), symbols and scales, from the shipped default model (in the repository,
    # so only the files travel: MLIC++'s 83.5M parameters would not fit the 64 MiB a device call carries)
    crossplatform.child(_shipped(), images, str(kit / "cpu.npz"), None, str(kit))
    (kit / "kit.json").write_text(json.dumps({"images": len(images), "model": _shipped(), "machine": machine()}))
    print(f"kit in {kit}: {len(images)} images, their files and the CPU's symbols and scales")


def training(args) -> list[dict]:
    import scale
    rows = []
    for model in args.models.split(","):
        ns = types.SimpleNamespace(model=model, step_time="tiny" if args.tiny else "full", devices=1,
                                   steps=args.steps, step_batch=2 if args.tiny else 8,
                                   step_crop=64 if args.tiny else 256)
        with tempfile.TemporaryDirectory() as tmp:
            rows += scale.step_time(ns, tmp)
    return rows


def _official_child(image: str, official: str, repeats: int):
    """The official MLIC++ on the GPU (random weights, official initialisation), compress and decompress."""
    from common import import_compressai
    import_compressai()
    import compressai.ops
    if not hasattr(compressai.ops, "ste_round"):
        compressai.ops.ste_round = compressai.ops.quantize_ste
    sys.path.insert(0, official)
    import torch
    from models import MLICPlusPlus  # the official code, from the checkout given
    from utils.utils import Config
    torch.manual_seed(0)
    cfg = Config({"N": 192, "M": 320, "slice_num": 10, "context_window": 5, "act": torch.nn.GELU})
    net = MLICPlusPlus(cfg).eval().cuda()
    net.update(force=True)
    img = read_image(image)
    h, w = img.shape[:2]
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float().cuda() / 255
    x = torch.nn.functional.pad(x, (0, -w % 64, 0, -h % 64), mode="replicate")
    cs, ds = [], []
    with torch.no_grad():
        for i in range(repeats + 1):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = net.compress(x)
            torch.cuda.synchronize()
            t1 = time.perf_counter()
            net.decompress(out["strings"], out["shape"])
            torch.cuda.synchronize()
            if i:
                cs.append(t1 - t0)
                ds.append(time.perf_counter() - t1)
    print(json.dumps({"compress_s": statistics.median(cs), "decompress_s": statistics.median(ds),
                      "torch": torch.__version__, "device": torch.cuda.get_device_name()}))


def codec(args, kit: pathlib.Path) -> dict:
    """MLIC++ with random weights made on the device (its published size; ``--tiny``: the tiny preset)."""
    import jax
    import jax.numpy as jnp
    import crossplatform
    from jaxlic.codec import Codec
    from jaxlic.registry import get_spec
    from jaxlic.training.config import load_config
    images = [str(kit / f"{i}.png") for i in range(json.loads((kit / "kit.json").read_text())["images"])]
    with tempfile.TemporaryDirectory() as tmp:
        if args.tiny:
            cfg = dict(load_config(str(ROOT / "configs" / "mlicpp.py:tiny")).model_config)
            model = get_spec("mlicpp").build(**cfg)
            v = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
            c = Codec("mlicpp", model, v, model.build_tables(v), cfg)
        else:
            _, _, c = crossplatform.mlicpp_random(tmp, images[0])
    img = read_image(images[0])
    data = c.compress(img)
    c.decompress(data)  # compiles
    cs, ds = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        data = c.compress(img)
        t1 = time.perf_counter()
        c.decompress(data)
        ds.append(time.perf_counter() - t1)
        cs.append(t1 - t0)
    res = {"model": "mlicpp " + ("tiny" if args.tiny else "N=192, M=320") + " (random weights)",
           "image": images[0], "device": jax.devices()[0].device_kind,
           "compress_s": statistics.median(cs), "decompress_s": statistics.median(ds), "official": None}
    try:
        import torch
        have_gpu = torch.cuda.is_available()
    except ImportError:
        have_gpu = False
    if not args.official or not have_gpu:
        res["official_note"] = "not timed: " + ("no --official checkout" if not args.official else
                                                 "torch sees no GPU here")
        return res
    q = subprocess.run([sys.executable, __file__, "_official", "--image", images[0], "--official", args.official,
                        "--repeats", str(args.repeats)], capture_output=True, text=True)
    if q.returncode:
        res["official_note"] = "failed: " + ((q.stderr.strip().splitlines() or ["?"])[-1])
        return res
    res["official"] = json.loads(q.stdout.strip().splitlines()[-1])
    res["speedup_compress"] = res["official"]["compress_s"] / res["compress_s"]
    res["speedup_decompress"] = res["official"]["decompress_s"] / res["decompress_s"]
    return res


def decode_cpu_files(kit: pathlib.Path) -> dict:
    """The CPU's files decoded here, in a child as crossplatform's drift processes (its own compilation)."""
    import crossplatform
    from jaxlic.entropy.gaussian import SCALE_BOUND
    n = json.loads((kit / "kit.json").read_text())["images"]
    images = [str(kit / f"{i}.png") for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        p = subprocess.run([sys.executable, str(HERE / "crossplatform.py"), "--child", _shipped(),
                            "--out", f"{tmp}/dev.npz", "--files", str(kit), *images], capture_output=True, text=True,
                           env={**os.environ, "JAXLIC_SIMULATE_DRIFT": "0"})
        if p.returncode:
            return {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
        outcomes = json.loads(p.stdout.strip().splitlines()[-1])["outcomes"]
        with np.load(f"{tmp}/dev.npz") as f, np.load(kit / "cpu.npz") as g:
            dev, cpu = {k: f[k] for k in f.files}, {k: g[k] for k in g.files}
    rel = rel_enc = 0.0
    moved = total = 0
    for i in range(n):
        base = cpu[f"scales{i}"].astype(np.float64)
        dec = dev.get(f"decoded{i}", base).astype(np.float64)
        rel = max(rel, crossplatform._max_rel(dec, base[:dec.size], SCALE_BOUND))
        rel_enc = max(rel_enc, crossplatform._max_rel(dev[f"scales{i}"].astype(np.float64), base, SCALE_BOUND))
        moved += int((dev[f"indexes{i}"] != cpu[f"indexes{i}"]).sum())
        total += cpu[f"indexes{i}"].size
    return {"outcomes": outcomes, "max_rel_scale_drift": rel, "max_rel_scale_drift_encoding": rel_enc,
            "encoder_indexes_moved": moved, "indexes": total}


def run(args):
    kit = pathlib.Path(args.kit)
    if not (kit / "kit.json").exists():
        sys.exit(f"{kit}: no kit here; make one with: python benchmarks/device.py prepare --kit {kit}")
    result = {"tiny": args.tiny, "seconds": {}}
    for part, fn in (("training", lambda: training(args)), ("codec", lambda: codec(args, kit)),
                     ("decode_cpu_files", lambda: decode_cpu_files(kit))):
        t0 = time.perf_counter()
        result[part] = fn()
        result["seconds"][part] = time.perf_counter() - t0
        print(f"{part}: {json.dumps(result[part])[:600]}", flush=True)
        write(result, args.json, "device.json")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("prepare")
    a.add_argument("--kit", required=True)
    a.add_argument("--images", type=int, default=2)
    b = sub.add_parser("run")
    b.add_argument("--kit", required=True)
    b.add_argument("--json", default=None, help="default: benchmarks/results/device.json")
    b.add_argument("--tiny", action="store_true")
    b.add_argument("--steps", type=int, default=3)
    b.add_argument("--models", default=",".join(MODELS), help="configs whose training step is timed")
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--official", default=None)
    c = sub.add_parser("_official")
    c.add_argument("--image")
    c.add_argument("--official")
    c.add_argument("--repeats", type=int)
    args = p.parse_args(argv)
    if args.cmd == "prepare":
        prepare(args)
    elif args.cmd == "run":
        run(args)
    else:
        _official_child(args.image, args.official, args.repeats)


if __name__ == "__main__":
    main()
