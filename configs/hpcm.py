"""HPCM (Li et al. 2025), rate-distortion trained with the official recipe; a CPU-sized ``runlocal``.

The released models (the official README; Base and Large each):

    | MSE lambda | MS-SSIM lambda |
    |------------|----------------|
    | 0.0018     | 2.4            |
    | 0.0035     | 4.58           |
    | 0.0067     | 8.73           |
    | 0.013      | 16.64          |
    | 0.025      | 31.73          |
    | 0.0483     | 60.5           |

    python train.py --config configs/hpcm.py:lmbda=0.013 --workdir out/hpcm_0013
    python train.py --config configs/hpcm.py:large,loss=ms-ssim,lmbda=16.64 --workdir out/hpcm_large_msssim

Loss ``lambda * 255^2 * MSE + bpp`` (the official ``RateDistortionLoss``; ``loss=ms-ssim``: ``lambda * (1 - MS-SSIM)
+ bpp``).

Official recipe (lyq133/LIC-HPCM, README and ``train.py``): Flickr2W (20,745 images), random 256^2 crops with
horizontal and vertical flips, batch 32, Adam over every parameter (z's learned prior included: no auxiliary
loss), gradient-norm clip 1.0, 3001 epochs at 1e-4, 3e-5 from epoch 2750, 1e-5 from 2850, 1e-6 from 2950.
Epochs become steps here: ``epoch_images`` (default 20,745) / batch 32 per epoch. jaxlic's pipeline flips
horizontally only. Data: ``--config.data.source=tfds --config.data.name=...`` or image folders in ``data.paths``.
Crops must be multiples of 256 (``jaxlic.models.hpcm``).

``runlocal`` (a check that it all works on a 2-core CPU, not a useful model): M=64, N=64, widths 32/48/64, 256^2
crops of BSDS500, batch 2, Adam 3e-4 with 50 warm-up steps and x0.1 at 90 %, 300 steps. ``tiny``: the tests'
preset.
"""
import os

from jaxlic.training.config import base_config, make_runlocal, make_tiny, parse_arg

SHARED = os.environ.get("JAXLIC_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))

MSE_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483)
MS_SSIM_LAMBDAS = (2.4, 4.58, 8.73, 16.64, 31.73, 60.5)
LARGE = dict(deep=8, prior_depths=(2, 2, 4, 3))
RUNLOCAL = dict(M=64, N=64, widths=(32, 48, 64), hyper_width=64, heads=8)
TINY = dict(M=16, N=8, widths=(8, 8, 16), hyper_width=8, deep=1, prior_depths=(1, 1, 1, 1), heads=4)


def get_config(arg=None):
    a = parse_arg(arg, lmbda=0.013, loss="mse", large=False, epoch_images=20_745, steps=0, runlocal=False,
                  tiny=False)
    c = base_config("hpcm", dict(LARGE) if a.large else {}, SHARED)
    c.loss = a.loss
    c.lmbda = a.lmbda
    c.data.crop = 256
    c.batch_size = 32
    epoch = max(a.epoch_images // c.batch_size, 1)
    c.total_steps = a.steps or 3001 * epoch
    c.optim.lr = 1e-4
    c.optim.decay_steps = (2750 * epoch, 2850 * epoch, 2950 * epoch)
    c.optim.decay_factors = (0.3, 1 / 3, 0.1)
    c.optim.clip_norm = 1.0
    c.ckpt_every = 10_000
    if a.runlocal:
        make_runlocal(c, RUNLOCAL, SHARED, a.steps or 300)
        c.optim.decay_factors = ()
        c.data.crop = c.evals.val.crop = 256
        c.batch_size = 2
    if a.tiny:
        make_tiny(c, TINY, a.steps)
        c.optim.decay_factors = ()
        c.data.crop = c.evals.val.crop = 256
    return c
