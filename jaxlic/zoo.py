"""CompressAI's image-model zoo: the architecture size of each quality and the lambda it was trained with.

Sizes are CompressAI's (``compressai/zoo/image.py``: ``cfgs``); CompressAI publishes no weights for
``cheng2020-anchor-checkerboard`` and the two ELIC models, so their qualities take the papers' size (N=192;
N=192, M=320) at every rate, as He et al. 2021 / 2022 train them. Lambdas are CompressAI's training points
(MSE: ``lmbda * 255^2 * mse + bpp``; MS-SSIM: ``lmbda * (1 - ms_ssim) + bpp``).
"""
from __future__ import annotations

from jaxlic.errors import UserError

_small, _big = (128, 192), (192, 320)
QUALITIES: dict[str, dict[int, dict]] = {
    "bmshj2018-factorized": {q: dict(zip("NM", _small if q <= 5 else _big)) for q in range(1, 9)},
    "bmshj2018-hyperprior": {q: dict(zip("NM", _small if q <= 5 else _big)) for q in range(1, 9)},
    "mbt2018-mean": {q: dict(zip("NM", _small if q <= 4 else _big)) for q in range(1, 9)},
    "mbt2018": {q: dict(zip("NM", (192, 192) if q <= 4 else _big)) for q in range(1, 9)},
    "cheng2020-anchor": {q: {"N": 128 if q <= 3 else 192} for q in range(1, 7)},
    "cheng2020-attn": {q: {"N": 128 if q <= 3 else 192} for q in range(1, 7)},
    "cheng2020-anchor-checkerboard": {q: {"N": 192} for q in range(1, 7)},
    "elic2022-official": {q: {"N": 192, "M": 320} for q in range(1, 9)},
    "elic2022-chandelier": {q: {"N": 192, "M": 320} for q in range(1, 9)},
    # CWAM's official zoo table ("invcompress"): q1-3 128, q5-7 192, q8 320; it lists quality 3 twice and
    # lacks 4, which takes 192 here (its lambda, 0.0483, is the rate at which Cheng's table moves to 192)
    "cwam": {q: {"N": 128 if q <= 3 else 320 if q == 8 else 192} for q in range(1, 9)},
}
# the smallest sizes of each zoo architecture, for tests (``configs/compressai.py:model=NAME,tiny``)
TINY: dict[str, dict] = {
    "bmshj2018-factorized": {"N": 8, "M": 12}, "bmshj2018-hyperprior": {"N": 8, "M": 12},
    "mbt2018-mean": {"N": 8, "M": 12}, "mbt2018": {"N": 8, "M": 12},
    "cheng2020-anchor": {"N": 8}, "cheng2020-attn": {"N": 8}, "cheng2020-anchor-checkerboard": {"N": 8},
    "elic2022-official": {"N": 8, "M": 16, "groups": (2, 2, 4, 8)},
    "elic2022-chandelier": {"N": 8, "M": 16, "groups": (2, 2, 4, 8)},
    "bmshj2018-hyperprior-vbr": {"N": 8, "M": 12}, "mbt2018-mean-vbr": {"N": 8, "M": 12},
    "mbt2018-vbr": {"N": 8, "M": 12},
}
# the variable-rate models: one size (CompressAI's zoo cfgs), every rate from one model
VARIABLE_RATE = {"bmshj2018-hyperprior-vbr": {"N": 192, "M": 320, "vr_entbttlnck": True},
                 "mbt2018-mean-vbr": {"N": 192, "M": 320, "vr_entbttlnck": True},
                 "mbt2018-vbr": {"N": 192, "M": 320}}
MSE_LAMBDAS = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483, 7: 0.0932, 8: 0.1800}
MS_SSIM_LAMBDAS = {1: 2.40, 2: 4.58, 3: 8.73, 4: 16.64, 5: 31.73, 6: 60.50, 7: 115.37, 8: 220.00}
# CWAM's released MSE models (its README), trained as qualities 1-6 (its experiments exp_01 ... exp_06)
CWAM_MSE_LAMBDAS = {1: 0.0045, 2: 0.00975, 3: 0.0175, 4: 0.0483, 5: 0.09, 6: 0.14}


def published_config(model: str, quality: int) -> dict:
    """The architecture size CompressAI uses for ``model`` at ``quality``."""
    if model not in QUALITIES:
        raise UserError(f"no quality table for {model!r}; models with one: {sorted(QUALITIES)}")
    if quality not in QUALITIES[model]:
        raise UserError(f"{model} has qualities {sorted(QUALITIES[model])}, not {quality}")
    return dict(QUALITIES[model][quality])


def lmbda(quality: int, loss: str = "mse") -> float:
    table = MSE_LAMBDAS if loss == "mse" else MS_SSIM_LAMBDAS
    if quality not in table:
        raise UserError(f"quality must be one of {sorted(table)}, got {quality}")
    return table[quality]
