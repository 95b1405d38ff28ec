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
from jaxlic.io import read_image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(peak ** 2 / mse))


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
                     "psnr-rgb": psnr(img, rec), "encoding_time": t1 - t0, "decoding_time": t2 - t1})
    return rows


def write_results(rows: list[dict], out_dir, name: str, description: str) -> dict:
    """CompressAI-style results JSON (means over images) and a per-image CSV."""
    os.makedirs(out_dir, exist_ok=True)
    keys = ["bpp", "estimated_bpp", "psnr-rgb", "encoding_time", "decoding_time"]
    results = {"name": name, "description": description,
               "results": {k: [float(np.mean([r[k] for r in rows]))] for k in keys}}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(out_dir, "per_image.csv"), "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    return results
