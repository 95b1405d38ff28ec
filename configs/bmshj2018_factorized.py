"""Factorized prior, Balle et al. 2018 (CompressAI bmshj2018-factorized).

Qualities 1-8: N, M = 128, 192 (q1-5), 192, 320 (q6-8).
Lambdas (MSE, lmbda * 255^2 * MSE + bpp): 0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800 for
q1-8; with loss=ms-ssim (lmbda * (1 - MS-SSIM) + bpp): 2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.00.

CompressAI's recipe (its model-zoo page): 4-5M steps on 256^2 patches cropped from Vimeo-90K, batch 16 or 32,
Adam 1e-4 for about 1-2M steps, then the learning rate halved whenever the evaluation loss plateaus (patience
20 epochs); aux loss with its own Adam (1e-3); gradients clipped at 1.0. Here (GPU or TPU; a 2-core CPU does
not get far):

    python train.py --config configs/bmshj2018_factorized.py:quality=3 --workdir out/bmshj2018_factorized_q3
        # data.paths: image folders (e.g. Vimeo-90K's frames)
    python train.py --config configs/bmshj2018_factorized.py:quality=3,loss=ms-ssim --workdir out/bmshj2018_factorized_q3_msssim

No run of this recipe has been made with jaxlic yet (no accelerator time); converted CompressAI checkpoints
(``jaxlic convert``) give the published models. Quick local run: ``configs/bmshj2018_factorized.py:runlocal``; tiny (tests):
``configs/bmshj2018_factorized.py:tiny``. Any field can be overridden: ``--config.batch_size=8``, ...
"""
import os

from jaxlic.training.config import zoo_config

SHARED = os.environ.get("JAXLIC_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))


def get_config(arg=None):
    return zoo_config("bmshj2018-factorized", arg, SHARED, dict(N=8, M=12))
