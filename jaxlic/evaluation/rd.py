"""Evaluate a codec on a folder of images: real bits (file sizes), estimated bits (likelihoods), PSNR, times."""
from __future__ import annotations

import csv
import json
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from jaxlic.codec import Codec, pad_to_multiple
from jaxlic.evaluation.metrics import ms_ssim, psnr
from jaxlic.io import read_image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


def list_images(folder) -> list[pathlib.Path]:
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise ValueError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return files


def evaluate(codec: Codec, folder, coder: str = "constriction", progress: bool = True) -> list[dict]:
    forward = jax.jit(lambda v, x: codec.model.apply(v, x))
    rows = []
    for path in tqdm(list_images(folder), desc="images", unit="img", disable=not progress):
        img = read_image(str(path))
        h, w = img.shape[:2]
        t0 = time.perf_counter()
        data = codec.compress(img, coder)
        t1 = time.perf_counter()
        rec = codec.decompress(data)
        t2 = time.perf_counter()
        x = pad_to_multiple(img[None].astype(np.float32) / 255.0, codec.model.downsampling)
        lik = forward(codec.variables, jnp.asarray(x))["likelihoods"]
        est_bits = sum(float(-np.log2(np.asarray(l, np.float64)).sum()) for l in jax.tree_util.tree_leaves(lik))
        rows.append({"image": path.name, "height": h, "width": w, "bytes": len(data),
                     "bpp": 8 * len(data) / (h * w), "estimated_bpp": est_bits / (h * w),
                     "psnr-rgb": float(psnr(img, rec)), "ms-ssim-rgb": _ms_ssim(img, rec),
                     "encoding_time": t1 - t0, "decoding_time": t2 - t1})
    return rows


def _ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    try:
        return float(ms_ssim(a[None].astype(np.float32), b[None].astype(np.float32), 255.0)[0])
    except ValueError:  # too small for 5 scales
        return float("nan")


def _mean(values):
    """Mean over the images where the metric is defined; None (JSON null) where it is defined for none."""
    v = [x for x in values if not np.isnan(x)]
    return float(np.mean(v)) if v else None


def write_results(rows: list[dict], out_dir, name: str, description: str) -> dict:
    """CompressAI-style results JSON (means over images) and a per-image CSV."""
    os.makedirs(out_dir, exist_ok=True)
    keys = ["bpp", "estimated_bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"]
    results = {"name": name, "description": description,
               "results": {k: [_mean([r[k] for r in rows])] for k in keys}}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(out_dir, "per_image.csv"), "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    return results
