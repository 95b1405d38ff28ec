"""What the codec's cross-platform safety costs in time: this tree against a checkout from before it.

    git worktree add /tmp/before 8d2d01f   # the last commit before issue 13's codec changes
    python benchmarks/codec_overhead.py --before /tmp/before [--rounds 15] [--mlicpp-rounds 6]

Both trees run in one process: the other tree's ``jaxlic`` is imported as ``jaxlic_before`` (a copy with its
imports renamed). Each round compresses and decompresses kodim01 once with each tree, the order alternating
between rounds, so the machine's drifts hit both alike. Separate processes for the two trees, as this
benchmark first ran, differed by up to 10 % between runs of the same tree (memory placement, which cores), as
much as the effect measured. Reported per model: each tree's median, and the median of the rounds' paired
ratios. Models: the shipped mean-scale model (0.0067), MLIC++ with the ``mlicpp`` parity fixture's weights
(N=64, M=96), mbt2018 at quality 5 with random weights (the wavefront codec: 141 steps on kodim01, where per-step
costs show most) and MLIC++ at its published size with random weights (kernels x 2, as in ``crossplatform.py``;
``--no-full`` leaves it out). Writes ``benchmarks/results/codec_overhead.json``.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def import_before(tree: str, tmp: str):
    """The other tree's package as ``jaxlic_before`` (its absolute imports renamed in a temporary copy)."""
    import importlib
    dst = pathlib.Path(tmp) / "before_pkg" / "jaxlic_before"
    shutil.copytree(pathlib.Path(tree) / "jaxlic", dst, ignore=shutil.ignore_patterns("__pycache__"))
    pattern = re.compile(r"^(\s*)(from|import)\s+jaxlic\b", re.M)
    for path in dst.rglob("*.py"):
        path.write_text(pattern.sub(r"\1\2 jaxlic_before", path.read_text()))
    sys.path.insert(0, str(dst.parent))
    return importlib.import_module("jaxlic_before.codec"), importlib.import_module("jaxlic_before.export")


def fixture_model(tmp: str, fixture: str) -> str:
    """A parity fixture's official weights, converted and saved as a model file (this tree's converter)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jaxlic.export import save_model
    from jaxlic.registry import detect_model, get_spec
    shared = pathlib.Path(os.environ.get("JAXLIC_SHARED", ROOT.parent / "shared"))
    with np.load(shared / "fixtures" / fixture / "weights.npz") as f:
        sd = {k: f[k] for k in f.files}
    name, config = detect_model(sd)
    spec = get_spec(name)
    model = spec.build(**config)
    template = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
    variables = spec.convert(sd, template)
    path = os.path.join(tmp, f"{fixture}.npz")
    save_model(path, name, config, variables, model.build_tables(variables))
    return path


def _zoo_random(tmp: str, name: str, quality: int) -> str:
    """A zoo model at the published size of ``quality``, random weights (its default initialisation)."""
    import jax
    import jax.numpy as jnp
    from jaxlic.export import save_model
    from jaxlic.registry import get_spec
    from jaxlic.zoo import published_config
    spec = get_spec(name)
    config = {**spec.defaults, **published_config(name, quality)}
    model = spec.build(**config)
    variables = jax.device_get(jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 64, 64, 3), jnp.float32)))
    path = os.path.join(tmp, f"{name}_q{quality}.npz")
    save_model(path, name, config, variables, model.build_tables(variables))
    return path


def compare(codecs: dict, image, rounds: int, label: str) -> dict:
    """Rounds of compress + decompress with each codec, the order alternating; medians and paired ratios."""
    from tqdm import tqdm
    files = {tree: codec.compress(image) for tree, codec in codecs.items()}  # compiles
    for tree, codec in codecs.items():
        codec.decompress(files[tree])
    runs = {tree: {"compress": [], "decompress": []} for tree in codecs}
    order = list(codecs)
    for r in tqdm(range(rounds), desc=label):
        for tree in (order if r % 2 == 0 else order[::-1]):
            t0 = time.perf_counter()
            files[tree] = codecs[tree].compress(image)
            t1 = time.perf_counter()
            codecs[tree].decompress(files[tree])
            runs[tree]["compress"].append(t1 - t0)
            runs[tree]["decompress"].append(time.perf_counter() - t1)
    ops = ("compress", "decompress")
    med = {t: {k: statistics.median(v[k]) for k in ops} for t, v in runs.items()}
    paired = {k: statistics.median(a / b for a, b in zip(runs["this tree"][k], runs["before"][k])) for k in ops}
    return {"rounds": rounds, "median_s": med, "runs_s": runs, "bytes": {t: len(f) for t, f in files.items()},
            "ratio_of_medians": {k: med["this tree"][k] / med["before"][k] for k in ops},
            "median_paired_ratio": paired}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, help="a checkout of the tree to compare with")
    p.add_argument("--image", default=os.path.join(os.environ.get("JAXLIC_SHARED", ROOT.parent / "shared"),
                                                   "datasets", "kodak", "kodim01.png"))
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--mlicpp-rounds", type=int, default=6, help="rounds for MLIC++ at full size")
    p.add_argument("--no-full", action="store_true", help="leave out MLIC++ at its published size")
    p.add_argument("--only", help="run only the models whose label contains this; the JSON keeps the others' "
                                  "earlier entries")
    p.add_argument("--output")
    args = p.parse_args()
    from common import write
    from crossplatform import mlicpp_random
    from jaxlic import assets
    from jaxlic.codec import Codec
    from jaxlic.export import load_model
    from jaxlic.io import read_image
    image = read_image(args.image)
    result = {"before": str(pathlib.Path(args.before).resolve()), "image": os.path.basename(args.image),
              "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        before_codec, before_export = import_before(args.before, tmp)
        models = [("mbt2018-mean 0.0067", assets.path("mbt2018-mean-cpu-0.0067"), args.rounds),
                  ("mlicpp (fixture)", fixture_model(tmp, "mlicpp"), args.rounds),
                  ("mbt2018 q5, random (wavefront: 141 steps)", _zoo_random(tmp, "mbt2018", 5), args.rounds)]
        if args.only:
            models = [m for m in models if args.only in m[0]]
        if not args.no_full and (not args.only or args.only in "mlicpp full size"):
            path, gain, _ = mlicpp_random(tmp, args.image)
            models.append((f"mlicpp full size, random (kernel gain {gain})", path, args.mlicpp_rounds))
        for label, path, rounds in models:
            codecs = {"this tree": Codec(*_ordered(load_model(path))),
                      "before": before_codec.Codec(*_ordered(before_export.load_model(path)))}
            entry = compare(codecs, image, rounds, label)
            del codecs
            result["models"][label] = entry
            med, pr = entry["median_s"], entry["median_paired_ratio"]
            print(f"{label}: compress {med['this tree']['compress']:.3f} s vs {med['before']['compress']:.3f} s "
                  f"(paired {pr['compress']:.3f}x), decompress {med['this tree']['decompress']:.3f} s vs "
                  f"{med['before']['decompress']:.3f} s (paired {pr['decompress']:.3f}x); bytes {entry['bytes']}")
    previous = pathlib.Path(args.output or ROOT / "benchmarks" / "results" / "codec_overhead.json")
    if args.only and previous.exists():
        import json
        result["models"] = {**json.loads(previous.read_text())["models"], **result["models"]}
    write(result, args.output, "codec_overhead.json")


def _ordered(loaded):
    name, config, model, variables, tables = loaded
    return name, model, variables, tables, config


if __name__ == "__main__":
    main()
