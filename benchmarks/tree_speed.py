"""Did a refactor cost time? This tree against another checkout, codecs and training steps, in one process.

    git worktree add /tmp/before 9f06488   # the last commit before the latent-codec parts (issue 27)
    python benchmarks/tree_speed.py --before /tmp/before [--rounds 9] [--train-rounds 7] [--output OUT.json]

The other tree's ``jaxlic`` is imported as ``jaxlic_before`` (``codec_overhead.import_before``); each round runs
the same work once with each tree, the order alternating between rounds, and each ratio is the median of the
rounds' paired ratios (this tree / before). Codecs (kodim01, compress and decompress): the shipped mean-scale
model, mbt2018 at quality 5 with random weights (the wavefront codec), MLIC++ and Shen & Liu with their parity
fixtures' weights. Training steps (one optimizer step, same random batch, same initial state): mbt2018-mean at
N=128, M=192, batch 8, 256^2 (as ``train_step.py``) and MLIC++ ``runlocal`` (N=64, M=96, batch 4, 128^2).
Writes ``benchmarks/results/tree_speed.json``.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
SHARED = pathlib.Path(os.environ.get("JAXLIC_SHARED", ROOT.parent / "shared"))


def paired(fns: dict, rounds: int, label: str) -> dict:
    """``fns``: tree -> {op: callable}; rounds alternate the trees' order. Medians and paired ratios per op."""
    from tqdm import tqdm
    trees = list(fns)
    ops = list(fns[trees[0]])
    runs = {t: {op: [] for op in ops} for t in trees}
    for r in tqdm(range(rounds), desc=label):
        for tree in (trees if r % 2 == 0 else trees[::-1]):
            for op in ops:
                t0 = time.perf_counter()
                fns[tree][op]()
                runs[tree][op].append(time.perf_counter() - t0)
    ratios = {op: [a / b for a, b in zip(runs["this tree"][op], runs["before"][op])] for op in ops}
    return {"rounds": rounds, "runs_s": runs,
            "median_s": {t: {op: statistics.median(v[op]) for op in ops} for t, v in runs.items()},
            "median_paired_ratio": {op: statistics.median(v) for op, v in ratios.items()},
            "paired_ratio_range": {op: [min(v), max(v)] for op, v in ratios.items()}}


def codec_ops(codec, image) -> dict:
    box = {"data": codec.compress(image)}  # compiles both ways before the timed rounds
    codec.decompress(box["data"])

    def compress():
        box["data"] = codec.compress(image)
    return {"compress": compress, "decompress": lambda: codec.decompress(box["data"])}


def train_ops(trainer_cls, config, images) -> dict:
    import jax
    t = trainer_cls(config, tempfile.mkdtemp(prefix="tree_speed_"))
    box = {"state": t.init_state()}
    x = jax.device_put(images, t.batch_sharding)

    def step():
        box["state"], m = t._step(box["state"], x)
        jax.block_until_ready(m)
    step()  # compiles
    return {"step": step}


def train_configs():
    import ml_collections
    from jaxlic.training.config import load_config
    mean = ml_collections.ConfigDict({
        "model": "mbt2018-mean", "model_config": {"N": 128, "M": 192}, "seed": 0, "loss": "mse", "lmbda": 0.0130,
        "data": {"crop": 256}, "batch_size": 8, "total_steps": 10, "mesh": (("data", -1),),
        "optim": {"lr": 1e-4, "warmup_steps": 0, "decay_steps": (1000,), "clip_norm": 1.0, "aux_lr": 1e-3}})
    mlicpp = load_config(str(ROOT / "configs" / "mlicpp.py") + ":runlocal")
    return [("mbt2018-mean N=128 M=192, batch 8, 256^2", mean), ("mlicpp runlocal, batch 4, 128^2", mlicpp)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, help="a checkout of the tree to compare with")
    p.add_argument("--image", default=str(SHARED / "datasets" / "kodak" / "kodim01.png"))
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--train-rounds", type=int, default=7)
    p.add_argument("--only", help="run only the entries whose label contains this")
    p.add_argument("--output")
    args = p.parse_args()
    import importlib

    import numpy as np
    from codec_overhead import _ordered, _zoo_random, fixture_model, import_before
    from common import write
    from jaxlic import assets
    from jaxlic.codec import Codec
    from jaxlic.export import load_model
    from jaxlic.io import read_image
    from jaxlic.training.trainer import Trainer
    image = read_image(args.image)
    result = {"before": str(pathlib.Path(args.before).resolve()), "image": os.path.basename(args.image),
              "codecs": {}, "train_steps": {}}
    with tempfile.TemporaryDirectory() as tmp:
        before_codec, before_export = import_before(args.before, tmp)
        before_trainer = importlib.import_module("jaxlic_before.training.trainer")
        codecs = [("mbt2018-mean 0.0067 (shipped)", lambda: assets.path("mbt2018-mean-cpu-0.0067")),
                  ("mbt2018 q5, random (wavefront)", lambda: _zoo_random(tmp, "mbt2018", 5)),
                  ("mlicpp (fixture)", lambda: fixture_model(tmp, "mlicpp")),
                  ("stf-zigzag (fixture)", lambda: fixture_model(tmp, "stf_zigzag"))]
        for label, make in codecs:
            if args.only and args.only not in label:
                continue
            path = make()
            fns = {"this tree": codec_ops(Codec(*_ordered(load_model(path))), image),
                   "before": codec_ops(before_codec.Codec(*_ordered(before_export.load_model(path))), image)}
            result["codecs"][label] = entry = paired(fns, args.rounds, label)
            _print(label, entry)
        for label, config in train_configs():
            if args.only and args.only not in label:
                continue
            images = np.random.default_rng(0).integers(
                0, 256, (config.batch_size, config.data.crop, config.data.crop, 3), np.uint8)
            fns = {"this tree": train_ops(Trainer, config, images),
                   "before": train_ops(before_trainer.Trainer, config, images)}
            result["train_steps"][label] = entry = paired(fns, args.train_rounds, label)
            _print(label, entry)
    previous = pathlib.Path(args.output or ROOT / "benchmarks" / "results" / "tree_speed.json")
    if args.only and previous.exists():  # the other entries stay as they were measured
        import json
        old = json.loads(previous.read_text())
        for key in ("codecs", "train_steps"):
            result[key] = {**old.get(key, {}), **result[key]}
    write(result, args.output, "tree_speed.json")


def _print(label, entry):
    med, pr, rg = entry["median_s"], entry["median_paired_ratio"], entry["paired_ratio_range"]
    print(label + ": " + "; ".join(
        f"{op} {med['this tree'][op]:.3f} s vs {med['before'][op]:.3f} s (paired {pr[op]:.3f}x, "
        f"{rg[op][0]:.2f}-{rg[op][1]:.2f})" for op in pr))


if __name__ == "__main__":
    main()
