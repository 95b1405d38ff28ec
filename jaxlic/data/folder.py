"""Random crops from local image folders, read by grain (no TensorFlow needed).

Each host reads its own slice of the file list; the iterator state is a small dict saved with checkpoints,
so a resumed run continues the same data stream.
"""
from __future__ import annotations

import logging
import os
from typing import Sequence

import grain
import numpy as np
from PIL import Image

from jaxlic.evaluation.rd import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)


def list_image_files(paths: Sequence[str]) -> list[str]:
    files = []
    for p in paths:
        if not os.path.isdir(p):
            raise ValueError(f"training image folder not found: {p}")
        files += sorted(os.path.join(p, f) for f in os.listdir(p) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise ValueError(f"no images in {list(paths)}")
    return files


def _load(path: str) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), np.uint8)


class RandomCrop:
    """Random crop (and optional horizontal flip); images smaller than the crop are edge-padded."""

    def __init__(self, crop: int, flip: bool):
        self.crop, self.flip = crop, flip

    def __call__(self, path: str, rng: np.random.Generator) -> np.ndarray:
        img = _load(path)
        c = self.crop
        h, w = img.shape[:2]
        if h < c or w < c:
            img = np.pad(img, ((0, max(c - h, 0)), (0, max(c - w, 0)), (0, 0)), mode="edge")
            h, w = img.shape[:2]
        y, x = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        out = img[y:y + c, x:x + c]
        if self.flip and rng.random() < 0.5:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)


def folder_dataset(paths: Sequence[str], crop: int, local_batch: int, seed: int, flip: bool = True,
                   small: str = "pad", process_index: int = 0, process_count: int = 1) -> grain.IterDataset:
    """Batches of uint8 crops (local_batch, crop, crop, 3) for this host, shuffled across epochs."""
    files = list_image_files(paths)
    sizes = {f: Image.open(f).size for f in files}
    too_small = [f for f in files if min(sizes[f]) < crop]
    if too_small:
        if small == "skip":
            files = [f for f in files if f not in set(too_small)]
            log.warning("skipping %d of %d images smaller than the %d crop", len(too_small), len(sizes), crop)
        elif small == "pad":
            log.warning("edge-padding %d of %d images smaller than the %d crop", len(too_small), len(sizes), crop)
        else:
            raise ValueError(f"data.small must be 'pad' or 'skip', got {small!r}")
    files = files[process_index::process_count]
    if not files:
        raise ValueError(f"host {process_index} of {process_count} gets no images")
    ds = grain.MapDataset.source(files).repeat(1_000_000 // len(files) + 1).shuffle(seed=seed)
    ds = ds.random_map(RandomCrop(crop, flip), seed=seed + 1 + process_index)
    return ds.batch(local_batch, drop_remainder=True).to_iter_dataset()
