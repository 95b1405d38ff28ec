"""ELIC, He et al. 2022 (CompressAI elic2022-official).

Qualities 1-8: N, M = 192, 320, groups 16, 16, 32, 64, M - 128 (CompressAI publishes no weights for it; the paper's size).
Lambdas (MSE, lmbda * 255^2 * MSE + bpp): 0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800 for
q1-8; with loss=ms-ssim (lmbda * (1 - MS-SSIM) + bpp): 2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.00.

CompressAI's recipe (its model-zoo page): 4-5M steps on 256^2 patches cropped from Vimeo-90K, batch 16 or 32,
Adam 1e-4 for about 1-2M steps, then the learning rate halved whenever the evaluation loss plateaus (patience
20 epochs); aux loss with its own Adam (1e-3); gradients clipped at 1.0. Here (GPU or TPU; a 2-core CPU does
not get far):

    python train.py --config configs/elic2022_official.py:quality=3 --workdir out/elic2022_official_q3
        # data.paths: image folders (e.g. Vimeo-90K's frames)
    python train.py --config configs/elic2022_official.py:quality=3,loss=ms-ssim --workdir out/elic2022_official_q3_msssim

No run of this recipe has been made with jaxlic yet (no accelerator time); converted CompressAI checkpoints
(``jaxlic convert``) give the published models. Quick local run: ``configs/elic2022_official.py:runlocal``; tiny (tests):
``configs/elic2022_official.py:tiny``. Any field can be overridden: ``--config.batch_size=8``, ...
"""
import os

from jaxlic.training.config import zoo_config

SHARED = os.environ.get("JAXLIC_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))


def get_config(arg=None):
    return zoo_config("elic2022-official", arg, SHARED, dict(N=8, M=16, groups=(2, 2, 4, 8)))
