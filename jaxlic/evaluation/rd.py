"""Evaluate a codec on a folder of images: real bits (file sizes), estimated bits (likelihoods), PSNR, times."""
from __future__ import annotations

import copy
import csv
import json
import os
import time

import jax
import numpy as np
from tqdm import tqdm

from jaxlic.evaluation.metrics import ms_ssim, psnr
from jaxlic.io import list_images, read_image

_ms_ssim_255 = jax.jit(lambda a, b: ms_ssim(a, b, 255.0))


def load_images(folder) -> list[tuple[str, np.ndarray]]:
    return [(p.name, read_image(str(p))) for p in list_images(folder)]


def named_images(source) -> list[tuple[str, np.ndarray]]:
    """(name, (H, W, 3) uint8) pairs from a folder, a path, or a list of paths, arrays or (name, array) pairs."""
    if isinstance(source, (str, os.PathLike)):
        return load_images(source) if os.path.isdir(source) else [(os.path.basename(source), read_image(str(source)))]
    out = []
    for k, item in enumerate(source):
        if isinstance(item, (str, os.PathLike)):
            out.append((os.path.basename(item), read_image(str(item))))
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            out.append((item[0], np.asarray(item[1])))
        else:
            out.append((f"image{k:03d}", np.asarray(item)))
    if not out:
        raise ValueError("no images to evaluate")
    return out


def evaluate(codec, images: list[tuple[str, np.ndarray]], coder: str | None = None,
             progress: bool = True, desc: str = "images") -> list[dict]:
    """Per image: real bpp (the file), estimated bpp (likelihoods), PSNR-RGB and MS-SSIM of the decoded 8-bit
    image, encode and decode seconds. ``codec``: a ``jaxlic.Codec``; ``coder`` overrides its coder."""
    if coder is not None and coder != codec.coder:
        codec = copy.copy(codec)
        codec.coder = coder
    for shape in {img.shape for _, img in images}:  # compile outside the timed region, once per image size
        codec.decompress(codec.compress(np.zeros(shape, np.uint8)))
    rows = []
    for name, img in tqdm(images, desc=desc, unit="img", disable=not progress):
        h, w = img.shape[:2]
        t0 = time.perf_counter()
        data = codec.compress(img)
        t1 = time.perf_counter()
        rec = codec.decompress(data)
        t2 = time.perf_counter()
        rows.append({"image": name, "height": h, "width": w, "bytes": len(data),
                     "bpp": 8 * len(data) / (h * w), "estimated_bpp": float(codec.forward(img).bpp),
                     "psnr-rgb": float(psnr(img, rec)), "ms-ssim-rgb": ms_ssim_rgb(img, rec),
                     "encoding_time": t1 - t0, "decoding_time": t2 - t1})
    return rows


def ms_ssim_rgb(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two (H, W, 3) uint8 images; NaN when they are too small for 5 scales."""
    try:
        return float(_ms_ssim_255(a[None].astype(np.float32), b[None].astype(np.float32))[0])
    except ValueError:  # too small for 5 scales
        return float("nan")


def ms_ssim_rgb_batch(a: list[np.ndarray], b: list[np.ndarray]) -> list[float]:
    """``ms_ssim_rgb`` of many pairs, one batched call per image size (Kodak has two)."""
    out = [float("nan")] * len(a)
    by_shape: dict[tuple, list[int]] = {}
    for i, img in enumerate(a):
        by_shape.setdefault(img.shape, []).append(i)
    for shape, idx in by_shape.items():
        try:
            v = _ms_ssim_255(np.stack([a[i] for i in idx]).astype(np.float32),
                             np.stack([b[i] for i in idx]).astype(np.float32))
        except ValueError:  # too small for 5 scales
            continue
        for i, x in zip(idx, np.asarray(v)):
            out[i] = float(x)
    return out


def _mean(values):
    """Mean over the images where the metric is defined; None (JSON null) where it is defined for none."""
    v = [x for x in values if not np.isnan(x)]
    return float(np.mean(v)) if v else None


KEYS = ("bpp", "estimated_bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time")


def curve(points: list[list[dict]], name: str, description: str) -> dict:
    """CompressAI-style results: per metric, the mean over images of each RD point, points sorted by bpp."""
    means = sorted(({k: _mean([r[k] for r in rows]) for k in KEYS} for rows in points), key=lambda m: m["bpp"])
    return {"name": name, "description": description, "results": {k: [m[k] for m in means] for k in KEYS}}


def write_results(results: dict, rows: list[dict], out_dir) -> None:
    """results.json (CompressAI format) and per_image.csv."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(out_dir, "per_image.csv"), "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
