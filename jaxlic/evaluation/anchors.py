"""Reference curves: published Kodak points (../shared/docs/DESIGN.md, from the official repositories and
CompressAI's published results) and JPEG / WebP computed with Pillow on the images being evaluated."""
from __future__ import annotations

import io

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
    """Mean bpp, PSNR-RGB (and MS-SSIM when ``ms_ssim_fn`` is given) over the images at each quality, in the
    CompressAI results layout (lists ordered by quality)."""
    qualities = QUALITIES[codec] if qualities is None else qualities
    out = {"quality": list(qualities), "bpp": [], "psnr-rgb": [], "ms-ssim-rgb": []}
    for q in tqdm(qualities, desc=codec, unit="quality", disable=not progress):
        bpp, ps, ms = [], [], []
        for img in images:
            n, rec = pillow_roundtrip(img, codec, q)
            bpp.append(8 * n / (img.shape[0] * img.shape[1]))
            ps.append(float(psnr(img, rec)))
            if ms_ssim_fn is not None:
                ms.append(ms_ssim_fn(img, rec))
        out["bpp"].append(float(np.mean(bpp)))
        out["psnr-rgb"].append(float(np.mean(ps)))
        out["ms-ssim-rgb"].append(float(np.nanmean(ms)) if ms and not np.all(np.isnan(ms)) else None)
    return {"name": f"{_LABELS[codec]} (Pillow)", "description": f"Pillow {Image.__version__} defaults, "
            f"qualities {list(qualities)}", "results": out}
