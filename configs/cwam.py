"""CWAM (Mudgal & Liu 2024), rate-distortion trained with the official recipe; a CPU-sized ``runlocal``.

The six released MSE models, one command each (``quality`` picks the official lambda and N):

    | q | MSE lambda | N   |
    |---|------------|-----|
    | 1 | 0.0045     | 128 |
    | 2 | 0.00975    | 128 |
    | 3 | 0.0175     | 128 |
    | 4 | 0.0483     | 192 |
    | 5 | 0.09       | 192 |
    | 6 | 0.14       | 192 |

    python train.py --config configs/cwam.py:quality=3 --workdir out/cwam_q3

Loss ``lambda * 255^2 * MSE + bpp`` (``examples/train.py``). N per quality is the official zoo table
(``invcompress``: q1-3 128, q5-7 192, q8 320); it has no entry for quality 4, which takes 192 here. The README's
example command trains quality 1 with lambda 0.00475; the released model says 0.0045, used here.

Official recipe (prmudgal/CWAM_IC_ISVC, README and ``codes/examples/train.py``): 300k images chosen at random from
OpenImages, random 256^2 crops (no flips), batch 8, Adam 1e-4, aux Adam 1e-3 on the quantiles, gradient-norm clip
1.0, 600 epochs with the learning rate x0.1 after epochs 450 and 550 (MultiStepLR). Epochs become steps here:
``epoch_images`` (default 300,000) / batch 8 = 37,500 steps an epoch, 22.5M steps in all, decays at 16.875M and
20.625M. Data: ``--config.data.source=tfds --config.data.name=...`` or image folders in ``data.paths``.

``runlocal`` (a check that it all works on a 2-core CPU, not a useful model): N=64, 128^2 crops of BSDS500,
batch 4, Adam 3e-4 with 50 warm-up steps and x0.1 at 90 %, 300 steps. ``tiny``: the tests' preset.
"""
import os

from jaxlic.errors import UserError
from jaxlic.training.config import base_config, make_runlocal, make_tiny, parse_arg
from jaxlic.zoo import CWAM_MSE_LAMBDAS, published_config

SHARED = os.environ.get("JAXLIC_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))


def get_config(arg=None):
    a = parse_arg(arg, quality=3, lmbda=0.0, epoch_images=300_000, steps=0, runlocal=False, tiny=False)
    if a.quality not in CWAM_MSE_LAMBDAS and not a.lmbda:
        raise UserError(f"CWAM has released lambdas for qualities {sorted(CWAM_MSE_LAMBDAS)}; for quality "
                        f"{a.quality} give lmbda=")
    c = base_config("cwam", published_config("cwam", a.quality), SHARED)
    c.loss = "mse"
    c.lmbda = a.lmbda or CWAM_MSE_LAMBDAS[a.quality]
    c.data.flip = False          # the official pipeline crops only
    c.data.crop = 256
    c.batch_size = 8
    epoch = max(a.epoch_images // c.batch_size, 1)
    c.total_steps = a.steps or 600 * epoch
    c.optim.lr = 1e-4
    c.optim.decay_steps = (450 * epoch, 550 * epoch)
    c.optim.clip_norm = 1.0
    c.optim.aux_lr = 1e-3
    c.ckpt_every = 10_000
    if a.runlocal:
        make_runlocal(c, dict(N=64), SHARED, a.steps or 300)
    if a.tiny:
        make_tiny(c, dict(N=8), a.steps)
    return c
