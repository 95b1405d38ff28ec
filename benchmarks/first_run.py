"""The main job as a new user meets it: a fresh clone, (optionally) a fresh environment, empty caches.

    python benchmarks/first_run.py [--install] [--update-results]

Clones this repository's HEAD into a temporary folder, optionally makes a venv there with README's set-up
command (``--install``: its wall time is recorded too), then runs README's main job
(``python eval.py --images $JAXLIC_SHARED/datasets/kodak --out out/kodak``) twice with one empty cache folder
(``JAXLIC_CACHE_DIR``: JAX's compilation cache and the JPEG / WebP anchors): the first run computes everything,
the second reads the caches. Writes benchmarks/results/first_run.json; ``--update-results`` also copies the
run's results.json, bd_rate.json and rd.png to benchmarks/results/kodak_shipped_*.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import write  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--install", action="store_true", help="a fresh venv with README's set-up command (minutes)")
    p.add_argument("--update-results", action="store_true")
    p.add_argument("--json", default=None, help="default: benchmarks/results/first_run.json")
    args = p.parse_args()
    shared = pathlib.Path(os.environ.get("JAXLIC_SHARED", ROOT.parent / "shared")).resolve()
    with tempfile.TemporaryDirectory(prefix="jaxlic-first-run-") as tmp:
        tmp = pathlib.Path(tmp)
        clone = tmp / "jaxlic"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True,
                                text=True).stdout.strip()
        runs = []
        python = sys.executable
        env = {**os.environ, "JAXLIC_CACHE_DIR": str(tmp / "cache"), "JAXLIC_SHARED": str(shared)}
        if args.install:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True)
            subprocess.run([str(tmp / "venv" / "bin" / "pip"), "install", "-q", "-c", ".ci/constraints/latest.txt",
                            "-e", ".[test]"], cwd=clone, check=True)
            runs.append({"name": "set-up: venv + pip install (latest environment)", "wall_s": time.perf_counter() - t0})
            python = str(tmp / "venv" / "bin" / "python")
        else:  # this interpreter's packages, the clone's code
            env["PYTHONPATH"] = str(clone)
        for name in ("main job, first run (empty caches)", "main job, second run (caches filled)"):
            t0 = time.perf_counter()
            out = subprocess.run([python, "eval.py", "--images", str(shared / "datasets" / "kodak"), "--out",
                                  "out/kodak", "--quiet"], cwd=clone, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if out.returncode:
                sys.exit(out.stdout + out.stderr)
            print(f"{name}: {wall:.1f} s\n{out.stdout}")
            runs.append({"name": name, "wall_s": wall, "report": out.stdout.strip().splitlines()})
        write({"commit": commit, "installed": args.install, "runs": runs}, args.json, "first_run.json")
        if args.update_results:
            res = ROOT / "benchmarks" / "results"
            for src, dst in (("results.json", "kodak_shipped_results.json"), ("bd_rate.json", "kodak_shipped_bd_rate.json"),
                             ("rd.png", "rd_kodak.png")):
                shutil.copyfile(clone / "out" / "kodak" / src, res / dst)
            print(f"updated {res}/kodak_shipped_results.json, kodak_shipped_bd_rate.json, rd_kodak.png")


if __name__ == "__main__":
    main()
