"""Reading images for compression and writing decoded ones, with clear messages for bad input."""
from __future__ import annotations

import os
import pathlib
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from jaxlic.errors import UserError


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


class ImageReadError(UserError):
    pass


class OutputPathError(UserError):
    """An output path that cannot be written (a folder, a missing folder), found before any work is done."""


def check_output_path(path: str) -> None:
    if os.path.isdir(path):
        raise OutputPathError(f"{path} is a folder; give a file name (for example {os.path.join(path, 'out')}...)")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise OutputPathError(f"cannot write {path}: folder {os.path.dirname(path) or parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputPathError(f"cannot write {path}: folder {os.path.dirname(path) or parent} is not writable")


def read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ImageReadError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path} is a folder, not a file") from None
    except OSError as e:
        raise ImageReadError(f"cannot read {path}: {e.strerror}") from None


def list_images(folder) -> list[pathlib.Path]:
    """The images directly in a folder, sorted by name."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise UserError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise UserError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
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


def _atomic_write(path: str, write) -> None:
    """``write(tmp)`` then rename onto ``path``: a reader never sees half a file, and nothing is left behind
    when writing fails (the error names ``path``, not the temporary file)."""
    check_output_path(path)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise OutputPathError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_image(path: str, image: np.ndarray) -> None:
    """Writes atomically; the format follows the extension (PNG by default)."""
    ext = os.path.splitext(path)[1].lower() or ".png"
    fmt = Image.registered_extensions().get(ext, "PNG")
    _atomic_write(path, lambda tmp: Image.fromarray(np.asarray(image, np.uint8), "RGB").save(tmp, format=fmt))


def write_bytes(path: str, data: bytes) -> None:
    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)
    _atomic_write(path, write)
