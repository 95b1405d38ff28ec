"""The evaluation behind ``eval.py``: checkpoints -> real files -> RD curve, anchors, BD-rates, plot, report."""
from __future__ import annotations

import json
import os

from jaxlic.evaluation import anchors as anchor_lib
from jaxlic.evaluation.bdrate import bd_rate
from jaxlic.evaluation.plot import rd_plot
from jaxlic.evaluation.rd import curve, evaluate, load_images, ms_ssim_rgb_batch, write_results


def run(codecs, images_dir, out, coder, label, anchors, published, progress=True, visuals=False) -> str:
    """Evaluates ``codecs`` ((checkpoint, ``jaxlic.Codec``) pairs: one RD curve, loaded by the caller) on the
    images in ``images_dir`` with real files, computes the
    Pillow ``anchors`` on the same images (cached per image set and Pillow version), BD-rates against them and,
    for Kodak (``published="auto"``) or on request, the published points; writes everything to ``out`` and
    returns the printed report. ``visuals``: also the pictures of ``jaxlic.evaluation.visuals`` for the middle
    checkpoint of the curve (the default model of the shipped ones), under ``out/visuals/``."""
    images = load_images(images_dir)
    checkpoints = [ck for ck, _ in codecs]
    codecs = [c for _, c in codecs]
    points, rows, names = [], [], set()
    for ck, codec in zip(checkpoints, codecs):
        names.add(codec.name)
        r = evaluate(codec, images, coder, progress=progress, desc=os.path.basename(ck))
        points.append(r)
        rows += [{"checkpoint": ck, **x} for x in r]
    label = label or "/".join(sorted(names))
    results = curve(points, label, f"{coder} coder; checkpoints {checkpoints}; images {images_dir}")
    write_results(results, rows, out)

    curves = {}
    for a in anchors:
        curves[a] = anchor_lib.cached_pillow_curve([im for _, im in images], a, ms_ssim_fn=ms_ssim_rgb_batch,
                                                   progress=progress)
        os.makedirs(os.path.join(out, "anchors"), exist_ok=True)
        with open(os.path.join(out, "anchors", f"{a}.json"), "w") as f:
            json.dump(curves[a], f, indent=2)
    kodak = sorted(n for n, _ in images) == [f"kodim{i:02d}.png" for i in range(1, 25)]
    if published == "yes" or (published == "auto" and kodak):
        for n, (bpp, ps) in anchor_lib.PUBLISHED_KODAK.items():
            curves[n] = {"name": n, "results": {"bpp": list(bpp), "psnr-rgb": list(ps)}}
    r = results["results"]
    bd = {k: bd_rate(c["results"]["bpp"], c["results"]["psnr-rgb"], r["bpp"], r["psnr-rgb"])
          for k, c in curves.items()}
    with open(os.path.join(out, "bd_rate.json"), "w") as f:
        json.dump(bd, f, indent=2)
    rd_plot(os.path.join(out, "rd.png"), [results] + list(curves.values()),
            f"{label} on {os.path.basename(os.path.normpath(images_dir))} ({len(images)} images)",
            dashed=tuple(anchor_lib.PUBLISHED_KODAK))

    page = None
    if visuals:
        from jaxlic.evaluation.visuals import write_visuals
        middle = len(codecs) // 2
        page = write_visuals(codecs[middle], images, out, os.path.join(out, "rd.png"),
                             os.path.basename(str(checkpoints[middle])).removesuffix(".npz"),
                             [a for a in ("jpeg", "webp") if a in anchors] or ["jpeg", "webp"], progress)

    lines = [f"{'checkpoint':34s} {'bpp':>7s} {'est.bpp':>7s} {'PSNR':>7s} {'MS-SSIM':>8s} {'enc s':>6s} "
             f"{'dec s':>6s}"]
    for ck, pts in zip(checkpoints, points):
        m = curve([pts], "", "")["results"]
        ms = m["ms-ssim-rgb"][0]
        lines.append(f"{os.path.basename(ck)[:34]:34s} {m['bpp'][0]:7.4f} {m['estimated_bpp'][0]:7.4f} "
                     f"{m['psnr-rgb'][0]:7.2f} {'—' if ms is None else f'{ms:.5f}':>8s} "
                     f"{m['encoding_time'][0]:6.3f} {m['decoding_time'][0]:6.3f}")
    lines.append("BD-rate (PSNR) of " + label + ": " + ", ".join(
        f"{k} {'n/a (no overlap)' if v is None else f'{v:+.2f}%'}" for k, v in bd.items()))
    lines.append(f"wrote {out}/results.json, per_image.csv, bd_rate.json, rd.png"
                 + (", anchors/" if anchors else "") + (f"; visuals: {page}" if page else ""))
    return "\n".join(lines)
