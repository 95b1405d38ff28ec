"""Reference curves: published Kodak points (docs/DESIGN.md; from the official repositories and
CompressAI's published results) and JPEG / WebP computed with Pillow on the images being evaluated."""
from __future__ import annotations

import hashlib
import io
import json
import os

import numpy as np
from PIL import Image
from tqdm import tqdm

from jaxlic.evaluation.metrics import psnr

# Kodak, mean bpp / mean PSNR-RGB
PUBLISHED_KODAK = {
    "VTM": ((0.112, 0.246, 0.491, 0.875, 1.431), (28.49, 31.20, 34.26, 37.42, 40.42)),
    "BPG 4:4:4": ((0.161, 0.352, 0.685, 1.200), (28.68, 31.59, 34.86, 38.26)),
    "JPEG (published)": ((0.221, 0.508, 1.037, 1.572), (23.78, 29.04, 32.79, 35.24)),
}

# Pillow qualities spanning ~0.2-3 bpp on Kodak-like photos
QUALITIES = {"jpeg": (5, 10, 20, 30, 50, 70, 85, 95), "webp": (2, 5, 10, 25, 50, 75, 90, 98)}
_FORMATS = {"jpeg": "JPEG", "webp": "WEBP"}
_LABELS = {"jpeg": "JPEG", "webp": "WebP"}


def pillow_roundtrip(img: np.ndarray, codec: str, quality: int) -> tuple[int, np.ndarray]:
    """(bytes, decoded RGB uint8) with Pillow's default settings (JPEG: 4:2:0 subsampling; WebP: lossy)."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=_FORMATS[codec], quality=quality)
    n = buf.tell()
    buf.seek(0)
    with Image.open(buf) as im:
        return n, np.asarray(im.convert("RGB"))


def pillow_curve(images: list[np.ndarray], codec: str, qualities=None, ms_ssim_fn=None,
                 progress: bool = True) -> dict:
    """Mean bpp, PSNR-RGB (and MS-SSIM when ``ms_ssim_fn(images, reconstructions) -> values`` is given, called
    once per quality) over the images at each quality, in the CompressAI results layout (lists by quality)."""
    qualities = QUALITIES[codec] if qualities is None else qualities
    out = {"quality": list(qualities), "bpp": [], "psnr-rgb": [], "ms-ssim-rgb": []}
    for q in tqdm(qualities, desc=codec, unit="quality", disable=not progress):
        sizes, recs = zip(*(pillow_roundtrip(img, codec, q) for img in images))
        out["bpp"].append(float(np.mean([8 * n / (img.shape[0] * img.shape[1]) for n, img in zip(sizes, images)])))
        out["psnr-rgb"].append(float(np.mean([float(psnr(img, rec)) for img, rec in zip(images, recs)])))
        ms = np.asarray(ms_ssim_fn(list(images), list(recs)), np.float64) if ms_ssim_fn is not None else None
        out["ms-ssim-rgb"].append(float(np.nanmean(ms)) if ms is not None and not np.all(np.isnan(ms)) else None)
    return {"name": f"{_LABELS[codec]} (Pillow)", "description": f"Pillow {Image.__version__} defaults, "
            f"qualities {list(qualities)}", "results": out}


def anchor_cache_dir() -> str:
    base = os.environ.get("JAXLIC_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "jaxlic")
    return os.path.join(base, "anchors")


def cached_pillow_curve(images: list[np.ndarray], codec: str, qualities=None, ms_ssim_fn=None,
                        progress: bool = True, cache_dir: str | None = None) -> dict:
    """``pillow_curve``, computed once per image set: keyed by the images' pixels, the codec, the qualities,
    the Pillow version and whether MS-SSIM is included (a changed image or Pillow computes it anew)."""
    qualities = QUALITIES[codec] if qualities is None else tuple(qualities)
    h = hashlib.sha256(json.dumps([codec, list(qualities), Image.__version__, ms_ssim_fn is not None]).encode())
    for img in images:
        h.update(str(img.shape).encode())
        h.update(np.ascontiguousarray(img).tobytes())
    path = os.path.join(cache_dir or anchor_cache_dir(), f"{codec}-{h.hexdigest()[:24]}.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        pass
    result = pillow_curve(images, codec, qualities, ms_ssim_fn, progress)
    tmp = f"{path}.tmp{os.getpid()}"
    try:  # a cache that cannot be written only costs time
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "w") as f:
            json.dump(result, f)
        os.replace(tmp, path)
    except OSError:
        pass
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return result
