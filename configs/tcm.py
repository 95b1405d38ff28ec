"""TCM (Liu, Sun & Katto 2023), rate-distortion trained with the official recipe; a CPU-sized ``runlocal``.

The released MSE models (the official README's table), one command each:

    | N   | lambda                                        |
    |-----|-----------------------------------------------|
    | 128 | 0.05                                          |
    | 64  | 0.05, 0.025, 0.013, 0.0067, 0.0035, 0.0025    |

    python train.py --config configs/tcm.py:N=64,lmbda=0.013 --workdir out/tcm_64_0013

N is half the paper's C (64 / 96 / 128: small / middle / large). Loss ``lambda * 255^2 * MSE + bpp`` (the official
``RateDistortionLoss``; ``loss=ms-ssim``: ``lambda * (1 - MS-SSIM) + bpp``).

Official recipe (jmliu206/LIC_TCM, README and ``train.py``): random 256^2 crops (no flips), batch 8, Adam 1e-4,
aux Adam 1e-3 on the quantiles, gradient-norm clip 1.0, 50 epochs with the learning rate x0.1 after epochs 45
and 48 (``--epochs 50 --lr_epoch 45 48``), drop-path rate 0. The repository names no training set;
``epoch_images`` (default 300,000) / batch 8 steps make an epoch here. Data: ``--config.data.source=tfds
--config.data.name=...`` or image folders in ``data.paths``. Crops must be multiples of 128 of at least 256 (the
official windows; ``jaxlic.models.tcm``).

``runlocal`` (a check that it all works on a 2-core CPU, not a useful model): N=32, M=160, 256^2 crops of BSDS500,
batch 2, Adam 3e-4 with 50 warm-up steps and x0.1 at 90 %, 300 steps. ``tiny``: the tests' preset.
"""
import os

from jaxlic.training.config import base_config, make_runlocal, make_tiny, parse_arg

SHARED = os.environ.get("JAXLIC_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))

RELEASED = {128: (0.05,), 64: (0.05, 0.025, 0.013, 0.0067, 0.0035, 0.0025)}
RUNLOCAL = dict(N=32, M=160, z_ch=96, head_dims=(8, 16, 16, 16, 16, 8), hyper_head_dim=16, atten_dim=64,
                cc_widths=(112, 64))
TINY = dict(N=8, M=20, z_ch=8, head_dims=(4, 4, 8, 8, 4, 4), hyper_head_dim=4, atten_dim=8, atten_head_dim=4,
            cc_widths=(8, 8))


def get_config(arg=None):
    a = parse_arg(arg, N=64, lmbda=0.013, loss="mse", epoch_images=300_000, steps=0, runlocal=False, tiny=False)
    c = base_config("tcm", {"N": a.N}, SHARED)
    c.loss = a.loss
    c.lmbda = a.lmbda
    c.data.flip = False          # the official pipeline crops only
    c.data.crop = 256
    c.batch_size = 8
    epoch = max(a.epoch_images // c.batch_size, 1)
    c.total_steps = a.steps or 50 * epoch
    c.optim.lr = 1e-4
    c.optim.decay_steps = (45 * epoch, 48 * epoch)
    c.optim.clip_norm = 1.0
    c.optim.aux_lr = 1e-3
    c.ckpt_every = 10_000
    if a.runlocal:
        make_runlocal(c, RUNLOCAL, SHARED, a.steps or 300)
        c.data.crop = c.evals.val.crop = 256
        c.batch_size = 2
    if a.tiny:
        make_tiny(c, TINY, a.steps)
        c.data.crop = c.evals.val.crop = 256
    return c
