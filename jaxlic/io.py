"""Reading images for compression and writing decoded ones, with clear messages for bad input."""
from __future__ import annotations

import os
import pathlib
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


class ImageReadError(ValueError):
    pass


def list_images(folder) -> list[pathlib.Path]:
    """The images directly in a folder, sorted by name."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise ValueError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return files


def read_image(path: str) -> np.ndarray:
    """Any image Pillow reads, as (H, W, 3) uint8 RGB; warns when information is dropped."""
    try:
        with Image.open(path) as im:
            im.load()
            img = im.copy()
    except FileNotFoundError:
        raise ImageReadError(f"no such file: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageReadError(f"cannot read {path} as an image: {e}") from None
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, np.float64)
        if mode == "F":
            warnings.warn(f"{path}: floating-point image clipped to [0, 255] and rounded to 8 bits")
            a = np.clip(np.round(a), 0, 255)
        elif a.max(initial=0) > 255:
            warnings.warn(f"{path}: {mode} ({'16' if mode.startswith('I;16') else '32'}-bit) image reduced to 8 bits")
            a = np.round(a / (65535.0 if a.max() <= 65535 else a.max()) * 255.0)
        a = a.astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=-1)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        warnings.warn(f"{path}: alpha channel dropped ({mode})")
    elif mode == "P":
        warnings.warn(f"{path}: palette image converted to RGB")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        warnings.warn(f"{path}: {mode} image converted to RGB")
    elif mode == "1":
        warnings.warn(f"{path}: 1-bit image converted to 8-bit RGB")
    a = np.asarray(img.convert("RGB"), np.uint8)
    if a.ndim != 3 or min(a.shape[:2]) < 1:
        raise ImageReadError(f"{path}: empty image")
    return a


def write_image(path: str, image: np.ndarray) -> None:
    """Writes atomically (temporary file + rename); the format follows the extension (PNG by default)."""
    ext = os.path.splitext(path)[1].lower() or ".png"
    fmt = Image.registered_extensions().get(ext, "PNG")
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        Image.fromarray(np.asarray(image, np.uint8), "RGB").save(tmp, format=fmt)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_bytes(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
