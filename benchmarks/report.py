"""Every measured table in README.md and docs/ is written by this script from benchmarks/results/*.json.

    python benchmarks/report.py            # rewrite the generated blocks in place
    python benchmarks/report.py --check    # exit 1 (and name them) where a page differs from what the JSON gives

A page marks a generated block with ``<!-- report: NAME -->`` ... ``<!-- /report -->``; NAME is a function below
(its JSON files in its docstring). Edit the JSON (by rerunning the benchmark), never the table.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PAGES = ("README.md", "docs/models.md", "docs/format.md", "docs/training.md", "docs/benchmarks.md", "docs/XLA_CPU.md")
GIB = 1 << 30
_BLOCK = re.compile(r"(<!-- report: ([\w-]+) -->\n)(.*?)(<!-- /report -->)", re.S)


def _load(name: str):
    with open(RESULTS / name) as f:
        return json.load(f)


def _table(headers, rows) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _e(v: float) -> str:
    """A relative error as 1.2e-6 (0 as 0)."""
    return "0" if v == 0 else f"{v:.1e}".replace("e-0", "e-")


def _pct(v: float, digits: int = 1) -> str:
    return f"{100 * v:+.{digits}f} %"


# --- README ---------------------------------------------------------------------------------------------------
PAPERS = {  # not measured: what each model is (README's model table)
    "bmshj2018-factorized": ("Ballé et al. 2018, factorized prior", "CompressAI"),
    "bmshj2018-hyperprior": ("Ballé et al. 2018, scale hyperprior", "CompressAI"),
    "mbt2018-mean": ("Minnen et al. 2018, mean-scale hyperprior", "CompressAI"),
    "mbt2018": ("Minnen et al. 2018, joint autoregressive (wavefront codec)", "CompressAI"),
    "cheng2020-anchor": ("Cheng et al. 2020 (wavefront codec)", "CompressAI"),
    "cheng2020-attn": ("Cheng et al. 2020 with attention (wavefront codec)", "CompressAI"),
    "cheng2020-anchor-checkerboard": ("Cheng et al. 2020 + He et al. 2021 checkerboard", "CompressAI"),
    "elic2022-official": ("He et al. 2022, ELIC", "CompressAI"),
    "elic2022-chandelier": ("ELIC, Chandelier's re-implementation", "CompressAI"),
    "bmshj2018-hyperprior-vbr": ("Kamisli et al. 2024, variable-rate scale hyperprior (any rate, one model)",
                                 "CompressAI"),
    "mbt2018-mean-vbr": ("Kamisli et al. 2024, variable-rate mean-scale hyperprior", "CompressAI"),
    "mbt2018-vbr": ("Kamisli et al. 2024, variable-rate joint autoregressive model (wavefront forward and codec)",
                    "CompressAI"),
    "cwam": ("Mudgal & Liu 2024, cross window-based attention", "`prmudgal/CWAM_IC_ISVC`"),
    "stf-zigzag": ("Shen & Liu 2023, Swin transforms + zigzag chunk context", "`stm233/image-compression-with-swin-transformer`"),
    "mlicpp": ("Jiang & Wang 2023, MLIC++ (current and Old modules)", "`JiangWeibeta/MLIC`"),
    "tcm": ("Liu et al. 2023, TCM: Transformer-CNN mixture blocks + Swin-attention channel slices",
            "`jmliu206/LIC_TCM`"),
    "hpcm": ("Li et al. 2025, HPCM (Base, Large): hierarchical progressive context, generalized Gaussian",
             "`lyq133/LIC-HPCM`"),
}


def models() -> str:
    """parity.json: per registered model, the worst max relative error of the forward and of the real codec."""
    fx = _load("parity.json")["fixtures"]
    rows = []
    for name, (paper, code) in PAPERS.items():
        errs = [f["max_relative_error"] for f in fx.values() if f["model"] == name]
        fwd = max(v for e in errs for k, v in e.items() if not k.startswith("codec_"))
        codec = [v for e in errs for k, v in e.items() if k.startswith("codec_")]
        rows.append((f"`{name}`", paper, code, _e(fwd), _e(max(codec)) if codec else "symbols identical",
                     "yes"))
    return _table(("name", "paper", "official code", "forward max rel. error", "codec max rel. error",
                   "converts official checkpoints"), rows)


def kodak_shipped() -> str:
    """kodak_shipped_results.json, kodak_shipped_bd_rate.json: the shipped models on Kodak (eval.py)."""
    r = _load("kodak_shipped_results.json")
    res = r["results"]
    names = sorted(re.findall(r"mbt2018-mean-cpu-[\d.]+(?=\.npz)", r["description"]))
    rows = [(f"`{n}`", f"{res['bpp'][i]:.4f}", f"{res['estimated_bpp'][i]:.4f}", f"{res['psnr-rgb'][i]:.2f}",
             f"{res['ms-ssim-rgb'][i]:.4f}", f"{res['encoding_time'][i]:.3f} / {res['decoding_time'][i]:.3f}")
            for i, n in enumerate(names)]
    out = _table(("model", "bpp (files)", "bpp (estimate)", "PSNR-RGB", "MS-SSIM", "encode / decode s"), rows)
    bd = _load("kodak_shipped_bd_rate.json")
    return out + "\nBD-rate (PSNR) of this curve: " + ", ".join(f"{_pct(v / 100)} vs {k}" for k, v in bd.items()) + "\n"


def first_run() -> str:
    """first_run.json: the main job from a fresh clone (empty compilation and anchor caches), then again."""
    r = _load("first_run.json")
    rows = [(run["name"], f"{run['wall_s']:.0f} s") for run in r["runs"]]
    return _table(("from a fresh clone" + (" (pip's download cache warm)" if r["installed"] else ""), "wall time"),
                  rows)


# --- docs/models.md -------------------------------------------------------------------------------------------
def parity() -> str:
    """parity.json: max relative error of every output, per fixture (float32, precision HIGHEST)."""
    fx = _load("parity.json")["fixtures"]
    rows = []
    for name, f in fx.items():
        e = f["max_relative_error"]
        fwd = ", ".join(f"{k} {_e(v)}" for k, v in e.items() if not k.startswith("codec_"))
        codec = ", ".join(f"{k[6:]} {_e(v)}" for k, v in e.items() if k.startswith("codec_")) or "—"
        cfg = ", ".join(f"{k}={v}" for k, v in f["config"].items() if k in ("N", "M", "slice_num", "embed_dim",
                                                                              "old_g_s"))
        rows.append((f"`{name}`", f"`{f['model']}` ({cfg})", fwd, codec))
    return _table(("fixture", "model (reduced width)", "forward", "real codec"), rows)


# --- docs/format.md -------------------------------------------------------------------------------------------
def crossplatform() -> str:
    """crossplatform.json: the index checks and the repair on 24 Kodak images under a simulated platform."""
    d = _load("crossplatform.json")
    rows = []
    for name, m in d["models"].items():
        s = m["simulated"]
        o = s["outcomes"]
        off = " / ".join(str(o[f"off {x}"]["exact"]) for x in ("1e-07", "1e-06", "1e-05"))
        on = min(o[f"on {x}"]["exact"] for x in ("1e-07", "1e-06", "1e-05"))
        above = sum(o[f"on {x}"]["mismatch"] for x in ("0.0001", "0.001"))
        wrong = sum(v["wrong"] for v in o.values())
        n = o["off 1e-07"]["exact"] + o["off 1e-07"]["mismatch"] + o["off 1e-07"]["wrong"]
        rows.append((name, f"{s['mean_bpp']:.3f}", f"{s['side_info_overhead_pct']['mean']:.3f} % "
                     f"(max {s['side_info_overhead_pct']['max']:.3f} %)", off, f"{on} of {n} exact",
                     f"IndexMismatch {above} of {2 * n}", wrong))
    return _table(("model", "bpp", "checks + repair", "repair off: exact at drift 1e-7 / 1e-6 / 1e-5",
                   "repair on (1e-5), drift up to 1e-5", "drift 1e-4, 1e-3", "wrong images"), rows)


def codec_overhead() -> str:
    """codec_overhead.json: this tree against the one before the cross-platform work, rounds alternating."""
    d = _load("codec_overhead.json")
    rows = []
    for name, m in d["models"].items():
        t, b = m["median_s"]["this tree"], m["median_s"]["before"]
        p, r = m["median_paired_ratio"], m["ratio_of_medians"]
        rows.append((name, m["rounds"], f"{t['compress']:.3f} / {t['decompress']:.3f} s",
                     f"{b['compress']:.3f} / {b['decompress']:.3f} s", f"{p['compress']:.3f}x / {p['decompress']:.3f}x",
                     f"{r['compress']:.3f}x / {r['decompress']:.3f}x"))
    return _table(("model", "rounds", "this tree", "before", "paired ratio", "ratio of medians"), rows)


def tree_speed() -> str:
    """tree_speed.json: this tree against an earlier checkout, codecs and training steps, rounds alternating."""
    d = _load("tree_speed.json")
    rows = []
    for kind, entries in (("codec", d["codecs"]), ("training step", d["train_steps"])):
        for name, m in entries.items():
            for op, ratio in m["median_paired_ratio"].items():
                lo, hi = m["paired_ratio_range"][op]
                rows.append((name, op if kind == "codec" else kind, m["rounds"],
                             f"{m['median_s']['this tree'][op]:.3f} s", f"{m['median_s']['before'][op]:.3f} s",
                             f"{ratio:.3f}x ({lo:.2f}-{hi:.2f})"))
    return _table(("model", "what", "rounds", "this tree", "before", "paired ratio (range)"), rows)


# --- docs/training.md -----------------------------------------------------------------------------------------
def precision() -> str:
    """precision_*.json: float32 then bfloat16, the same data and seed (means of the first / last 10 % of steps)."""
    rows = []
    for path in sorted(RESULTS.glob("precision_*.json")):
        d = json.loads(path.read_text())
        f, b, rel = d["runs"]["float32"], d["runs"]["bfloat16"], d["bf16_vs_f32_last"]
        rows.append((f"`{d['config']}`", f["steps"], f"{f['first']['loss']:.1f} -> {f['last']['loss']:.2f}",
                     f"{b['first']['loss']:.1f} -> {b['last']['loss']:.2f}",
                     f"loss {_pct(rel['loss'])}, bpp {_pct(rel['bpp'])}, PSNR {_pct(rel['psnr'])}"))
    return _table(("config", "steps", "float32 RD loss", "bf16 RD loss", "bf16 vs float32 at the end"), rows)


def _scale(model):
    return _load(f"scale_{model}.json")["configs"]


def scale_params() -> str:
    """scale_mlicpp.json, scale_stf.json: parameters + Adam state per device, exact from the shardings."""
    rows = []
    for model, label in (("mlicpp", "MLIC++"), ("stf", "Shen & Liu")):
        by = {}
        for c in _scale(model):
            by.setdefault(c["fsdp"], c["param_opt_bytes_per_device"])
        rows.append((label, *(f"{by[k] / GIB:.2f} GiB" for k in (1, 2, 4, 8))))
    return _table(("model", "replicated", "fsdp 2", "fsdp 4", "fsdp 8"), rows)


def _temps(configs, key):
    cells = {}
    for c in configs:
        if c["temp_bytes_per_device"] is not None:
            cells[(key(c), c["dtype"], c["remat"])] = f"{c['temp_bytes_per_device'] / GIB:.2f} GiB"
    return cells


_MODES = (("float32", False), ("float32", True), ("bfloat16", False), ("bfloat16", True))
_MODE_NAMES = ("float32", "float32 + remat", "bf16", "bf16 + remat")


def scale_stf() -> str:
    """scale_stf.json: compiled step temporaries per device, batch 8 per device, 256^2, 8 simulated devices."""
    cells = _temps(_scale("stf"), lambda c: c["fsdp"])
    rows = [("replicated" if f == 1 else f"fsdp {f}", *(cells.get((f, *m), "") for m in _MODES)) for f in (1, 2, 4, 8)]
    return _table(("Shen & Liu, 256^2", *_MODE_NAMES), rows)


def scale_mlicpp() -> str:
    """scale_mlicpp.json: compiled step temporaries per device at fsdp 8."""
    configs = [c for c in _scale("mlicpp") if c["fsdp"] == 8]
    cells = _temps(configs, lambda c: (c["crop"], c["batch_per_device"]))
    keys = sorted({k[0] for k in cells}, key=lambda k: (k[0], -k[1]))
    rows = [(f"{crop}^2" + ("" if b == 8 else f", batch {b} per device"), *(cells.get(((crop, b), *m), "")
                                                                           for m in _MODES)) for crop, b in keys]
    return _table(("MLIC++, fsdp 8", *_MODE_NAMES), rows)


# --- docs/benchmarks.md ---------------------------------------------------------------------------------------
def coders() -> str:
    """coders.json: 1M symbols, per-symbol scale indexes over the 64 standard scale tables."""
    rows = [(r["coder"], f"{r['encode_msym_s']:.1f}", f"{r['decode_msym_s']:.1f}", f"{r['bits_per_symbol']:.4f}",
             f"{100 * r['overhead_vs_model']:.2f} %") for r in _load("coders.json")["rows"]]
    return _table(("coder", "encode Msym/s", "decode Msym/s", "bits/symbol", "overhead vs model"), rows)


def layers() -> str:
    """layers.json: milliseconds, jit-compiled, after warm-up, against PyTorch with 2 threads."""
    d = _load("layers.json")
    f = lambda v: "" if v is None else f"{v:.1f}"
    rows = [(r["layer"], "x".join(map(str, r["input"])), f(r["jax_forward_ms"]), f(r["jax_grad_ms"]),
             f(r.get("xla_default_forward_ms")), f(r.get("xla_default_grad_ms")),
             f(r.get("torch_forward_ms")), f(r.get("torch_grad_ms"))) for r in d["rows"]]
    return _table(("layer", "input (NHWC)", "JAX fwd", "JAX grad", "XLA default fwd", "XLA default grad",
                   f"PyTorch {d['torch']} fwd", "PyTorch grad"), rows)


def train_step() -> str:
    """train_step*.json: one training step, alternating between jaxlic and the PyTorch code, medians; GFLOP/s
    from XLA's cost analysis against the measured float32 peak."""
    rows = []
    for name in ("train_step.json", "train_step_mlicpp.json"):
        d = _load(name)
        theirs = "" if "ratio" not in d else \
            f"{d['compressai_s_per_step']:.2f} (torch {d['torch']}, {d['torch_threads']} threads)"
        ratio = "" if "ratio" not in d else \
            f"**{d['ratio']:.2f}x** (paired {d['paired_ratio_min']:.2f}-{d['paired_ratio_max']:.2f})"
        rows.append((f"{d['model']}, batch {d['batch']}, {d['crop']}^2", f"{d['jaxlic_s_per_step']:.2f}",
                     f"{d['jaxlic_images_per_s']:.2f}",
                     f"{d['jaxlic_gflops']:.0f} ({d['fraction_of_peak']:.0%} of {d['fp32_peak_gflops']:.0f})",
                     theirs, ratio))
    return _table(("model", "jaxlic s/step", "images/s", "GFLOP/s (of fp32 peak)", "PyTorch s/step",
                   "PyTorch's time / jaxlic's"), rows)


def cli() -> str:
    """cli.json, cli_mbt2018_q5.json: each run a fresh process; the first with an empty compilation cache."""
    rows = []
    for f, label in (("cli.json", "mbt2018-mean"), ("cli_mbt2018_q5.json", "mbt2018 q5 (wavefront)")):
        d = _load(f)
        w = d["warm_split"]
        for op in ("compress", "decompress"):
            rows.append((f"`jaxlic {op}`, {label}", f"{d[f'{op}_first_run_s']:.2f} s", f"{d[f'{op}_second_run_s']:.2f} s",
                         f"{w['imports_s']:.2f} / {w['load_s']:.2f} / {w[f'{op}_trace_and_cache_s']:.2f} / "
                         f"{w[f'{op}_compute_s']:.2f} s"))
    return _table(("", "first run", "second run", "second run: imports / load / trace + cache / compute"), rows)


def zoo() -> str:
    """zoo_*.json: published size, random weights, kodim01, against CompressAI in its own process, medians."""
    rows = []
    for path in sorted(RESULTS.glob("zoo_*.json")):
        d = json.loads(path.read_text())
        c, r = d["compressai"], d["ratios"]
        y = d["decompress_split"]["y"]
        label = f"`{d['model']}` q{d['quality']}" + (f" (level {d['rate']['level']})" if "rate" in d else "")
        # forward and peak RSS: measured since the variable-rate models (older files have neither)
        fwd = lambda x: f"{x['forward_s']:.2f} s" if "forward_s" in x else "-"
        mem = lambda x: f"{x['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in x else "-"
        steps = f"{y['steps']} step" + ("s" if y["steps"] > 1 else "")
        rows.append((f"{label}, jaxlic", fwd(d), f"{d['compress_s']:.2f} s", f"{d['decompress_s']:.2f} s",
                     f"{d['synthesis_s']:.2f} s", f"{d['context_s']:.2f} s", mem(d),
                     f"{steps} x {1000 * y['network_s'] / y['steps']:.1f} + {1000 * y['coder_s'] / y['steps']:.1f} ms"))
        rows.append((f"{label}, CompressAI", fwd(c), f"{c['compress_s']:.2f} s", f"{c['decompress_s']:.2f} s",
                     f"{c['synthesis_s']:.2f} s", f"{c['context_s']:.2f} s", mem(c),
                     "one position at a time" if y["steps"] > 1 else "all at once"))
        rows.append(("ratio", f"{r['forward_s']:.1f}x" if "forward_s" in r else "", f"{r['compress_s']:.1f}x",
                     f"{r['decompress_s']:.1f}x", "", f"{r['context_s']:.1f}x", "", ""))
    return _table(("", "forward", "compress", "decompress", "g_s", "context", "peak RSS",
                   "y steps (decoder): network + coder"), rows)


def versus_official() -> str:
    """tcm_N*.json, hpcm_*.json (benchmarks/versus.py): the official initialisation converted, kodim01, medians."""
    rows = []
    for path in sorted(RESULTS.glob("tcm_N*.json")) + sorted(RESULTS.glob("hpcm_*.json")):
        d = json.loads(path.read_text())
        o, r = d["official"], d["ratios"]
        label = f"TCM N={d['config']['N']}" if d["model"] == "tcm" else f"HPCM {d['variant']}"
        for who, x in (("jaxlic", d), (f"official (torch {o['torch']})", o)):
            rows.append((f"{label}, {who}", f"{x['forward_s']:.2f} s", f"{x['compress_s']:.2f} s",
                         f"{x['decompress_s']:.2f} s", f"{x['bytes']:,}", f"{x['peak_rss_mb']:.0f} MB"))
        rows.append(("ratio", f"{r['forward_s']:.2f}x", f"{r['compress_s']:.2f}x", f"{r['decompress_s']:.2f}x", "",
                     ""))
    return _table(("", "forward", "compress", "decompress", "bytes", "peak RSS"), rows)


def cwam() -> str:
    """cwam_N*.json: random weights, kodim01, against the official code, medians."""
    rows = []
    for path in sorted(RESULTS.glob("cwam_N*.json"), key=lambda p: int(p.stem[6:])):
        d = json.loads(path.read_text())
        o, r = d["official"], d["ratios"]
        g_a = d["compress_split"]["analysis"]["network_s"]
        g_s = d["decompress_split"]["synthesis"]["network_s"]
        rows.append((f"N={d['N']}, jaxlic", f"{d['forward_s']:.2f} s", f"{d['compress_s']:.2f} s",
                     f"{d['decompress_s']:.2f} s", f"{g_a:.2f} / {g_s:.2f} s", f"{d['decompress_context_s']:.2f} s"))
        rows.append((f"N={d['N']}, official", f"{o['forward_s']:.2f} s", f"{o['compress_s']:.2f} s",
                     f"{o['decompress_s']:.2f} s", f"{o['g_a_s']:.2f} / {o['g_s_s']:.2f} s",
                     f"{o['decompress_context_s']:.2f} s"))
        rows.append(("ratio", f"{r['forward_s']:.1f}x", f"{r['compress_s']:.1f}x", f"{r['decompress_s']:.1f}x", "",
                     f"{r['decompress_context_s']:.0f}x"))
    return _table(("", "forward", "compress", "decompress", "g_a / g_s", "context (decompress - g_s)"), rows)


def cwam_parts() -> str:
    """cwam_N128.json: each part of the transforms alone, seconds, jaxlic / official."""
    t = _load("cwam_N128.json")["transform_parts"]
    parts = {}
    for side in ("jaxlic", "official"):
        for g in ("g_a", "g_s"):
            for r in t[side][g]:
                parts.setdefault(r["part"], {})[(side, g)] = r["s"]
    cell = lambda p, g: (f"{p[('jaxlic', g)]:.2f} / {p[('official', g)]:.2f}"
                         if ("jaxlic", g) in p and ("official", g) in p else "")
    return _table(("part (N=128)", "g_a", "g_s"), [(name, cell(p, "g_a"), cell(p, "g_s")) for name, p in parts.items()])


def stf_speed() -> str:
    """stf.json: the official size, the same random weights on both sides, kodim01, medians."""
    d = _load("stf.json")
    o = d["official"]
    rows = [("jaxlic", f"{d['forward_s']:.2f} s", f"{d['compress_s']:.2f} s", f"{d['decompress_s']:.2f} s",
             f"{d['forward_peak_rss_mb'] / 1000:.2f} GB forward, {d['peak_rss_mb'] / 1000:.2f} GB with the codec"),
            ("official", f"{o['forward_s']:.2f} s", "none upstream", "none upstream", f"{o['peak_rss_mb'] / 1000:.2f} GB"),
            ("ratio", f"{d['ratios']['forward_s']:.2f}x", "", "", "")]
    return _table(("", "forward", "compress", "decompress", "peak RSS"), rows)


def stf_rate() -> str:
    """stf_runlocal_rate*.json: Shen & Liu runlocal's files against the forward's estimate and the tables' ideal."""
    rows = []
    for f in ("stf_runlocal_rate_128.json", "stf_runlocal_rate.json"):
        d = _load(f)
        per = [i["stream_over_estimate"] for i in d["images"]]
        rows.append((f"{d['crop']}^2", f"{_pct(d['stream_over_estimate'], 2)} ({_pct(min(per), 2)} to "
                     f"{_pct(max(per), 2)} per image)", _pct(d["stream_over_table"], 2), f"{d['escapes']:,}"))
    return _table(("Kodak centre crops", "streams vs estimate", "streams vs the tables' ideal", "escapes"), rows)


def mlicpp_speed() -> str:
    """mlicpp_speed_kodim01.json: the official size, random weights, kodim01, back to back with the official code."""
    d = _load("mlicpp_speed_kodim01.json")
    o = d["official"]
    rows = [(f"compress (median of {len(d['compress_runs_s'])})", f"{d['compress_s']:.2f} s", f"{o['compress_s']:.2f} s",
             f"{d['speedup_compress']:.2f}x"),
            (f"decompress (median of {len(d['decompress_runs_s'])})", f"{d['decompress_s']:.2f} s",
             f"{o['decompress_s']:.2f} s", f"{d['speedup_decompress']:.2f}x")]
    return _table(("", "jaxlic", f"official (torch {o['torch']})", "ratio"), rows)


def mlicpp_scaling() -> str:
    """mlicpp_scaling.json: each row a fresh process; peak RSS during one call minus RSS just before it."""
    rows = {}
    for r in _load("mlicpp_scaling.json")["scaling"]:
        cell = "skipped" if r.get("s") is None else f"{r['s']:.2f} s, {r['above_model_mb']:.0f} MB"
        rows.setdefault(r["size"], {})[(r["mode"], r["attention"])] = cell
    cols = sorted({k for v in rows.values() for k in v})
    return _table(("size", *(f"{m} ({a})" for m, a in cols)),
                  [(f"{s}^2", *(rows[s].get(c, "") for c in cols)) for s in sorted(rows)])


def wavefront_products() -> str:
    """wavefront_step.json: mbt2018 q5's four context products per wavefront step, by layout (ms per call)."""
    d = _load("wavefront_step.json")
    cols = [k for k in d["rows"][0] if k != "positions"]
    return _table(("positions", *cols), [(r["positions"], *(f"{r[c]:.2f}" for c in cols)) for r in d["rows"]])


GENERATORS = {f.__name__: f for f in (models, kodak_shipped, first_run, parity, crossplatform, codec_overhead, tree_speed,
                                      precision, scale_params, scale_stf, scale_mlicpp, coders, layers, train_step,
                                      cli, zoo, versus_official, cwam, cwam_parts, stf_speed, stf_rate, mlicpp_speed, mlicpp_scaling,
                                      wavefront_products)}


def render(text: str) -> str:
    """The page with every generated block written anew from the JSON."""
    def block(m):
        name = m.group(2)
        if name not in GENERATORS:
            raise KeyError(f"unknown generated block {name!r}; known: {sorted(GENERATORS)}")
        return m.group(1) + GENERATORS[name]() + m.group(4)
    return _BLOCK.sub(block, text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only compare; exit 1 where a page is stale")
    args = p.parse_args(argv)
    stale = []
    for page in PAGES:
        path = ROOT / page
        text = path.read_text()
        new = render(text)
        if new != text:
            stale.append(page)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print("stale generated tables (run python benchmarks/report.py): " + ", ".join(stale))
        return 1
    print(("rewrote " + ", ".join(stale)) if stale and not args.check else "every generated table is current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
