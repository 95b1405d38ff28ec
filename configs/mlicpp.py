"""MLIC++ (Jiang & Wang 2023), rate-distortion trained; the official recipe and a CPU-sized ``runlocal``.

The twelve official models, one command each (``quality`` 1..6 picks the official lambda of the loss):

    | q | MSE lambda | MS-SSIM lambda |
    |---|------------|----------------|
    | 1 | 0.0018     | 2.40           |
    | 2 | 0.0035     | 4.58           |
    | 3 | 0.0067     | 8.73           |
    | 4 | 0.0130     | 16.64          |
    | 5 | 0.0250     | 31.73          |
    | 6 | 0.0483     | 60.50          |

    python train.py --config configs/mlicpp.py:quality=3 --workdir out/mlicpp_mse_q3
    python train.py --config configs/mlicpp.py:quality=3,loss=ms-ssim --workdir out/mlicpp_msssim_q3

Official recipe (JiangWeibeta/MLIC, ``MLIC++/playground/train.sh`` and the released lambda=0.0250 logs):
N=192, M=320, 10 slices (83,501,408 parameters); Adam 1e-4, aux Adam 1e-3 on the quantiles, gradient-norm clip
1.0; global batch 32 (4 GPUs x 8, DDP); random crops without flips from MLIC-Train-100K (94,637 images); 256^2
crops first, then 512^2 (the logs show 256^2 up to about step 2.0M, 384^2 to 2.5M, 512^2 to the end); learning
rate x0.1 at about step 2.9M (MultiStepLR, epoch-based in the official code); about 3.0M steps in total. The
larger crops are a second stage of the same run, resumed from its workdir:

    python train.py --config configs/mlicpp.py:quality=5,steps=2000000 --workdir out/mlicpp_mse_q5
    python train.py --config configs/mlicpp.py:quality=5 --config.data.crop=512 --workdir out/mlicpp_mse_q5

Data: ``--config.data.source=tfds --config.data.name=...`` (e.g. a ``jaxlic build-dataset`` of the training
folders). On this repository's 2-core CPU the full recipe is out of reach (a 256^2 batch of 32 is minutes per
step); ``runlocal`` is the check that it all works:

    python train.py --config configs/mlicpp.py:runlocal --workdir out/mlicpp_runlocal
    jaxlic export out/mlicpp_runlocal out/mlicpp_runlocal.npz
    python eval.py --checkpoint out/mlicpp_runlocal.npz --images ../shared/datasets/kodak --out out/eval_mlicpp

``runlocal``: the fixture's reduced width (N=64, M=96, 3 slices of 32: 10.5M parameters, the context modules'
hard-coded widths dominate), 128^2 crops of BSDS500 train (validation: 8 test images), batch 4, Adam 3e-4 with
50 warm-up steps and x0.1 at 90%, 600 steps. Measured on this repository's 2-core CPU (jax 0.10.2): 6 min wall;
training RD loss 186.2 (first 25 steps) -> 6.88 (step 600), validation loss 19.2 (step 100) -> 9.1; eval.py on
Kodak with real files: 0.2563 bpp (estimate 0.2559), 22.33 dB PSNR-RGB, MS-SSIM 0.809
(``benchmarks/results/mlicpp_runlocal_kodak_results.json``). A check that it all works, not a useful model.
"""
import os

from jaxlic.errors import UserError
from jaxlic.training.config import base_config, make_runlocal, make_tiny, parse_arg

SHARED = os.environ.get("JAXLIC_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))

LAMBDAS = {"mse": (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483),
           "ms-ssim": (2.40, 4.58, 8.73, 16.64, 31.73, 60.50)}


def get_config(arg=None):
    a = parse_arg(arg, quality=4, lmbda=0.0, loss="mse", steps=0, runlocal=False, tiny=False)
    if a.loss not in LAMBDAS:
        raise UserError(f"loss must be one of {sorted(LAMBDAS)}, got {a.loss!r}")
    if not 1 <= a.quality <= 6:
        raise UserError(f"quality must be 1..6, got {a.quality}")
    c = base_config("mlicpp", dict(N=192, M=320, slice_num=10, context_window=5, old_g_s=False, old_lrp=False),
                    SHARED)
    c.loss = a.loss
    c.lmbda = a.lmbda or LAMBDAS[a.loss][a.quality - 1]
    c.data.flip = False          # the official pipeline crops only
    c.batch_size = 32
    c.total_steps = a.steps or 3_000_000
    c.optim.lr = 1e-4
    c.optim.decay_steps = (2_900_000,)
    c.optim.clip_norm = 1.0
    c.optim.aux_lr = 1e-3
    c.ckpt_every = 10_000

    if a.runlocal:
        make_runlocal(c, dict(N=64, M=96, slice_num=3, context_window=5, old_g_s=False, old_lrp=False), SHARED,
                      a.steps or 600)
    if a.tiny:  # tests: the smallest MLIC++ the official modules allow (slices of 32 channels)
        make_tiny(c, dict(N=16, M=64, slice_num=2, context_window=5, old_g_s=False, old_lrp=False), a.steps)
    return c
