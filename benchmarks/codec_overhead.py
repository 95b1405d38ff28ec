"""What the codec's cross-platform safety costs in time: this tree against a checkout from before it.

    git worktree add /tmp/before 8d2d01f   # the last commit before issue 13's codec changes
    python benchmarks/codec_overhead.py --before /tmp/before [--rounds 3] [--repeats 5]

Each model is timed in one process per tree (its own compilation, excluded), compress and decompress of kodim01
alternated ``repeats`` times; the two trees' processes alternate for ``rounds`` rounds, so the machine's drifts
hit both alike. Reported: medians over all of a tree's runs, and their ratio. Models: the shipped mean-scale
model (0.0067) and MLIC++ with the ``mlicpp`` parity fixture's weights (N=64, M=96, three slices). Writes
``benchmarks/results/codec_overhead.json``.
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

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

_CHILD = """
import json, sys, time
import numpy as np
import jaxlic
from jaxlic.codec import Codec
from jaxlic.export import load_model
from PIL import Image
n, c, m, v, t = load_model(sys.argv[1])
codec = Codec(n, m, v, t, c)
img = np.asarray(Image.open(sys.argv[2]).convert("RGB"))
data = codec.compress(img)
codec.decompress(data)  # compiles
out = {"tree": jaxlic.__file__, "compress": [], "decompress": [], "bytes": len(data)}
for _ in range(int(sys.argv[3])):
    t0 = time.perf_counter(); data = codec.compress(img); t1 = time.perf_counter()
    codec.decompress(data); t2 = time.perf_counter()
    out["compress"].append(t1 - t0); out["decompress"].append(t2 - t1)
print(json.dumps(out))
"""


def _mlicpp_fixture(tmp: str) -> str:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jaxlic.export import save_model
    from jaxlic.registry import detect_model, get_spec
    shared = pathlib.Path(os.environ.get("JAXLIC_SHARED", ROOT.parent / "shared"))
    with np.load(shared / "fixtures" / "mlicpp" / "weights.npz") as f:
        sd = {k: f[k] for k in f.files}
    name, config = detect_model(sd)
    spec = get_spec(name)
    model = spec.build(**config)
    template = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
    variables = spec.convert(sd, template)
    path = os.path.join(tmp, "mlicpp_fixture.npz")
    save_model(path, name, config, variables, model.build_tables(variables))
    return path


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, help="a checkout of the tree to compare with")
    p.add_argument("--image", default=os.path.join(os.environ.get("JAXLIC_SHARED", ROOT.parent / "shared"),
                                                   "datasets", "kodak", "kodim01.png"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--output")
    args = p.parse_args()
    from common import write
    from tqdm import tqdm
    from jaxlic import assets
    trees = {"this tree": str(ROOT), "before": str(pathlib.Path(args.before).resolve())}
    result = {"before": trees["before"], "image": os.path.basename(args.image), "rounds": args.rounds,
              "repeats": args.repeats, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        models = {"mbt2018-mean 0.0067": assets.path("mbt2018-mean-cpu-0.0067"), "mlicpp (fixture)": _mlicpp_fixture(tmp)}
        for label, path in models.items():
            runs = {k: {"compress": [], "decompress": []} for k in trees}
            for _ in tqdm(range(args.rounds), desc=label):
                for tree, src in trees.items():
                    env = {**os.environ, "PYTHONPATH": src, "JAX_PLATFORMS": "cpu"}
                    q = subprocess.run([sys.executable, "-c", _CHILD, path, args.image, str(args.repeats)],
                                       capture_output=True, text=True, env=env, cwd=tmp, check=True)
                    r = json.loads(q.stdout.strip().splitlines()[-1])
                    assert r["tree"].startswith(src), (r["tree"], src)
                    for k in ("compress", "decompress"):
                        runs[tree][k] += r[k]
                    runs[tree]["bytes"] = r["bytes"]
            med = {t: {k: statistics.median(v[k]) for k in ("compress", "decompress")} for t, v in runs.items()}
            entry = {"median_s": med, "bytes": {t: v["bytes"] for t, v in runs.items()},
                     "ratio": {k: med["this tree"][k] / med["before"][k] for k in ("compress", "decompress")}}
            result["models"][label] = entry
            print(f"{label}: compress {med['this tree']['compress']:.3f} s vs {med['before']['compress']:.3f} s "
                  f"({entry['ratio']['compress']:.3f}x), decompress {med['this tree']['decompress']:.3f} s vs "
                  f"{med['before']['decompress']:.3f} s ({entry['ratio']['decompress']:.3f}x); bytes "
                  f"{entry['bytes']}")
    write(result, args.output, "codec_overhead.json")


if __name__ == "__main__":
    main()
