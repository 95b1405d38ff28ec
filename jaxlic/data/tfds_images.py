"""A TFDS builder for local image folders (array_record, readable by ``tfds.data_source`` + grain without TF).

    jaxlic build-dataset bsds500 --data-dir ~/tensorflow_datasets \\
        --split train=../shared/datasets/bsds500/train --split train=../shared/datasets/bsds500/test

gives the dataset ``local_images/bsds500`` that a config reads with ``data.source="tfds"``, exactly as it reads a
public TFDS dataset such as ``clic`` or ``div2k``.
"""
from __future__ import annotations

import io
import logging
from typing import Mapping, Sequence

import tensorflow_datasets as tfds
from PIL import Image

from jaxlic.errors import UserError
from jaxlic.io import list_images, read_image

log = logging.getLogger(__name__)
VERSION = "1.0.0"


class LocalImages(tfds.core.GeneratorBasedBuilder):
    """Images of local folders, one TFDS split per named group of folders; the config name names the dataset."""

    VERSION = tfds.core.Version(VERSION)

    def __init__(self, *, folders: Mapping[str, Sequence[str]] | None = None, **kwargs):
        self._folders = dict(folders or {})
        super().__init__(**kwargs)

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, description="Images of local folders (jaxlic build-dataset).",
            features=tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(None, None, 3)),
                                                 "name": tfds.features.Text()}))

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(dirs) for split, dirs in self._folders.items()}

    def _generate_examples(self, dirs):
        for d in dirs:
            for f in list_images(d):
                yield str(f), {"image": _rgb_file(f), "name": f.name}


def _rgb_file(path):
    """The file itself when it is an 8-bit RGB PNG/JPEG (its bytes are stored as they are); otherwise a PNG of the
    image converted as the CLI converts it (grey, palette, alpha, 16-bit). TFDS would need TensorFlow to encode
    arrays, but not to store encoded bytes."""
    with Image.open(path) as im:
        if im.mode == "RGB" and im.format in ("PNG", "JPEG"):
            return str(path)
    buf = io.BytesIO()
    Image.fromarray(read_image(str(path))).save(buf, format="PNG")
    buf.seek(0)
    return buf


def build(name: str, folders: Mapping[str, Sequence[str]], data_dir: str) -> str:
    """Writes ``local_images/<name>`` (array_record) under data_dir; returns the TFDS name to read it by."""
    if not name.replace("_", "").replace("-", "").isalnum():
        raise UserError(f"dataset name must be letters, digits, '-' or '_', got {name!r}")
    builder = LocalImages(folders=folders, config=tfds.core.BuilderConfig(name=name, version=VERSION),
                          data_dir=data_dir, file_format="array_record")
    if builder.is_prepared():
        log.warning("%s already exists in %s; not rebuilt", builder.info.full_name, data_dir)
    builder.download_and_prepare()
    return f"local_images/{name}"
