"""Training input: random crops from a local image folder or any TFDS dataset in array_record form (a local-folder
dataset built by ``jaxlic build-dataset``, ``clic``, ``div2k``, ...), read by grain without TensorFlow.

Each host reads its own slice of the records and produces its part of the global batch; the iterator's state is a
small dict saved with checkpoints, so a resumed run continues the same data stream.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import grain
import ml_collections
import numpy as np
from PIL import Image

from jaxlic.errors import UserError
from jaxlic.io import list_images, read_image

log = logging.getLogger(__name__)
SMALL = ("pad", "skip")


class RandomCrop:
    """A random crop (and optional horizontal flip) of ``load(record)``. Images smaller than the crop are
    edge-padded, or, with ``small="skip"``, give None (filtered out downstream)."""

    def __init__(self, load: Callable[[Any], np.ndarray], crop: int, flip: bool, small: str = "pad",
                 warn: bool = True):
        self.load, self.crop, self.flip, self.small = load, crop, flip, small
        self._warned = not warn

    def __call__(self, record, rng: np.random.Generator):
        img = self.load(record)
        c = self.crop
        h, w = img.shape[:2]
        if h < c or w < c:
            if not self._warned:  # sources without a size index (TFDS) learn of small images only here
                log.warning("an image of %dx%d is smaller than the %d crop: %s", w, h, c,
                            "skipped (data.small='skip')" if self.small == "skip" else "edge-padded")
                self._warned = True
            if self.small == "skip":
                return None
            img = np.pad(img, ((0, max(c - h, 0)), (0, max(c - w, 0)), (0, 0)), mode="edge")
            h, w = img.shape[:2]
        y, x = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
        out = img[y:y + c, x:x + c]
        if self.flip and rng.random() < 0.5:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)


def _folder_records(d: ml_collections.ConfigDict):
    files = [str(f) for p in d.paths for f in list_images(p)]
    sizes = {f: Image.open(f).size for f in files}  # headers only
    small = [f for f in files if min(sizes[f]) < d.crop]
    if small:
        log.warning("%s %d of %d images smaller than the %d crop", "skipping" if d.small == "skip" else
                    "edge-padding", len(small), len(files), d.crop)
        if d.small == "skip":
            files = [f for f in files if min(sizes[f]) >= d.crop]
            if not files:
                raise UserError(f"every image in {list(d.paths)} is smaller than the {d.crop} crop")
    return files, read_image


def tfds_source(name: str, split: str, data_dir: str | None = None, manual_dir: str | None = None):
    """A TFDS dataset as a random-access source. With ``manual_dir`` a missing dataset is prepared from the
    archives there (array_record); otherwise it must already be prepared in array_record form."""
    import tensorflow_datasets as tfds
    kwargs = {}
    if manual_dir:
        kwargs = dict(download=True, builder_kwargs={"file_format": "array_record"},
                      download_and_prepare_kwargs={"download_config": tfds.download.DownloadConfig(
                          manual_dir=manual_dir)})
    try:
        return tfds.data_source(name, split=split, data_dir=data_dir, **({"download": False} | kwargs))
    except (tfds.core.registered.DatasetNotFoundError, AssertionError, FileNotFoundError, ValueError,
            NotImplementedError) as e:
        raise UserError(
            f"TFDS dataset {name!r} (split {split!r}) is not prepared in array_record form under "
            f"{data_dir or '~/tensorflow_datasets'} ({str(e).splitlines()[0]}); prepare it with: tfds build {name.split('/')[0]} "
            f"--file_format=array_record --data_dir=... [--manual_dir=...], or set data.manual_dir; "
            f"for a local folder: jaxlic build-dataset NAME --split train=DIR --data-dir ...") from None


def _tfds_records(d: ml_collections.ConfigDict):
    source = tfds_source(d.name, d.split, d.get("data_dir") or None, d.get("manual_dir") or None)
    key = d.get("image_key", "image")
    return source, lambda record: np.asarray(record[key], np.uint8)


def train_dataset(d: ml_collections.ConfigDict, local_batch: int, seed: int, process_index: int = 0,
                  process_count: int = 1) -> grain.IterDataset:
    """Batches of uint8 crops (local_batch, crop, crop, 3) for this host, reshuffled every epoch.

    ``d``: the config's ``data`` (source "folder": paths; source "tfds": name, split, data_dir, manual_dir,
    image_key), crop, flip, small ("pad" | "skip").
    """
    if d.small not in SMALL:
        raise UserError(f"data.small must be one of {SMALL}, got {d.small!r}")
    if d.source == "folder":
        records, load = _folder_records(d)
    elif d.source == "tfds":
        records, load = _tfds_records(d)
    else:
        raise UserError(f"data.source must be 'folder' or 'tfds', got {d.source!r}")
    ds = grain.MapDataset.source(records)[process_index::process_count]
    if len(ds) == 0:
        raise UserError(f"host {process_index} of {process_count} gets no images from {len(records)}")
    # An endless stream whose element k is fixed by (seed, k) alone: the shuffle permutes within each epoch with
    # a seed of its own (index // len), so neither the run length nor a resume with other ``steps`` changes it.
    ds = ds.shuffle(seed=seed).repeat()
    ds = ds.random_map(RandomCrop(load, d.crop, d.flip, d.small, warn=d.source != "folder"),
                       seed=seed + 1 + process_index)
    it = ds.to_iter_dataset()
    if d.small == "skip":
        it = it.filter(lambda x: x is not None)
    return it.batch(local_batch, drop_remainder=True)
