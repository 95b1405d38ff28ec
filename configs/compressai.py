"""CompressAI's image zoo, one config for all of it: ``configs/compressai.py:model=NAME,quality=Q``.

Models (``model=``): bmshj2018-factorized, bmshj2018-hyperprior, mbt2018-mean, mbt2018, cheng2020-anchor,
cheng2020-attn, cheng2020-anchor-checkerboard, elic2022-official, elic2022-chandelier. ``quality=Q`` picks
CompressAI's architecture size of that quality and its lambda (``jaxlic/zoo.py``, the one table of both):

    MSE, lmbda * 255^2 * MSE + bpp:     0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800 (q1-8)
    loss=ms-ssim, lmbda * (1 - MS-SSIM) + bpp: 2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 220.00

(cheng2020: qualities 1-6; ``lmbda=`` overrides the lambda.) The variable-rate models (``model=bmshj2018-hyperprior-vbr``,
``mbt2018-mean-vbr``, ``mbt2018-vbr``; N=192, M=320, ``docs/models/vbr.md``) take no quality: one model learns every rate, each batch
at a random one of its eight levels with that level's MSE lambda (``config.rate_lambdas``, the eight above), the
level logged with each step. CompressAI's recipe (its model-zoo page): 4-5M steps
on 256^2 patches cropped from Vimeo-90K, batch 16 or 32, Adam 1e-4 for about 1-2M steps, then the learning rate
halved whenever the evaluation loss plateaus (patience 20 epochs); aux loss with its own Adam (1e-3); gradients
clipped at 1.0. Here (GPU or TPU; a 2-core CPU does not get far):

    python train.py --config configs/compressai.py:model=mbt2018,quality=3 --workdir out/mbt2018_q3
        # data.paths: image folders (e.g. Vimeo-90K's frames)
    python train.py --config configs/compressai.py:model=mbt2018,quality=3,loss=ms-ssim --workdir out/mbt2018_q3_ms

No run of this recipe has been made with jaxlic yet (no accelerator time); converted CompressAI checkpoints
(``jaxlic.load`` / ``jaxlic convert``) give the published models. Quick local run: ``...,runlocal``; tiny (tests):
``...,tiny``. Any field can be overridden: ``--config.batch_size=8``, ... The mean-scale model's CPU recipe, which
trained the shipped models, is ``configs/mbt2018_mean.py``.
"""
import os

from jaxlic.training.config import zoo_config

SHARED = os.environ.get("JAXLIC_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))


def get_config(arg=None):
    return zoo_config(arg, SHARED)
