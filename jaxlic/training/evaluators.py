"""Evaluators declared in the config (big_vision style): ``config.evals`` maps a name to one evaluator's
settings, ``type`` naming its kind (``EVALUATORS``). Each runs every ``every`` steps and at the end of a run; its
metrics go to the history, metrics.jsonl and TensorBoard prefixed with its name (``val_loss``, ``val_bpp``, ...).
One evaluator may set ``best=True``: the checkpoint with its lowest loss is kept in WORKDIR/best. An evaluator
without images (empty ``paths``) is off: do not validate on the test set (Kodak) you report on.

    c.evals.val = dict(type="rd", paths=("../shared/datasets/bsds500/test",), crop=256, max_images=8,
                       every=5000, best=True)
"""
from __future__ import annotations

import ml_collections
import numpy as np

from jaxlic.errors import UserError
from jaxlic.io import list_images, read_image


def rd_defaults(**over) -> dict:
    """The settings of an ``rd`` evaluator, ``over`` replacing the defaults."""
    return {**dict(type="rd", paths=(), crop=256, max_images=0, every=5000, best=False), **over}


class RDLoss:
    """The evaluation-mode rate-distortion loss (rounding, as when coding) and its terms on centre crops of the
    images in ``paths`` (edge-padded when smaller), in global batches split over hosts like training."""

    def __init__(self, name: str, cfg, trainer):
        self.name, self.cfg, self.trainer = name, cfg, trainer
        self.every, self.best = int(cfg.every), bool(cfg.get("best", False))
        m = trainer.model.downsampling
        if cfg.crop % m:
            raise UserError(f"evals.{name}.crop {cfg.crop} must be a multiple of {m} for {trainer.c.model} (its "
                            "latents' downsampling)")
        self._images = None

    def images(self) -> np.ndarray:
        if self._images is None:
            self._images = centre_crops(self.cfg, self.trainer.c.batch_size)
        return self._images

    def run(self, variables) -> dict[str, float]:
        import jax
        t = self.trainer
        images, b, lb, pi = self.images(), t.c.batch_size, t.local_batch, jax.process_index()
        sums = {}
        for i in range(0, len(images), b):
            local = images[i + pi * lb:i + (pi + 1) * lb]
            m = jax.device_get(t._eval(variables, jax.make_array_from_process_local_data(t.batch_sharding, local)))
            sums = {k: sums.get(k, 0.0) + float(v) for k, v in m.items()}
        return {f"{self.name}_{k}": v / (len(images) // b) for k, v in sums.items()}


EVALUATORS = {"rd": RDLoss}


def centre_crops(v, batch_size: int) -> np.ndarray:
    """Centre crops (edge-padded when smaller) of the folders in ``v.paths``, a whole number of global batches
    (images are repeated when there are fewer than one batch)."""
    files = [f for p in v.paths for f in list_images(p)][:v.get("max_images") or None]
    crops = []
    for f in files:
        img = read_image(str(f))
        h, w = img.shape[:2]
        img = np.pad(img, ((0, max(v.crop - h, 0)), (0, max(v.crop - w, 0)), (0, 0)), mode="edge")
        y, x = (img.shape[0] - v.crop) // 2, (img.shape[1] - v.crop) // 2
        crops.append(img[y:y + v.crop, x:x + v.crop])
    n = max(len(crops) // batch_size, 1) * batch_size
    return np.stack([crops[i % len(crops)] for i in range(n)])


def declared(c: ml_collections.ConfigDict) -> dict:
    """The config's evaluators that have images, name -> settings. Configs written before ``evals`` existed
    declared one validation as ``val`` (paths, crop, max_images) and ``eval_every``; it is read as
    ``evals.val`` with ``best=True``."""
    evals = {k: v for k, v in (c.get("evals") or {}).items()}
    if c.get("val") is not None and c.val.get("paths"):
        evals.setdefault("val", ml_collections.ConfigDict(rd_defaults(
            paths=tuple(c.val.paths), crop=c.val.crop, max_images=c.val.get("max_images", 0),
            every=c.get("eval_every", 5000), best=True)))
    out = {}
    for name, cfg in evals.items():
        cfg = ml_collections.ConfigDict(dict(cfg))
        if cfg.get("type") not in EVALUATORS:
            raise UserError(f"evals.{name}.type must be one of {sorted(EVALUATORS)}, got {cfg.get('type')!r}")
        if cfg.get("paths"):
            out[name] = cfg
    if sum(bool(cfg.get("best")) for cfg in out.values()) > 1:
        raise UserError("at most one evaluator may set best=True (its loss picks WORKDIR/best)")
    return out


def build(c: ml_collections.ConfigDict, trainer) -> list:
    return [EVALUATORS[cfg.type](name, cfg, trainer) for name, cfg in declared(c).items()]
