"""The transformer LIC of Shen & Liu (2023), rate-distortion trained with the official recipe; a CPU-sized
``runlocal``.

    python train.py --config configs/stf.py:lmbda=0.0035 --workdir out/stf_0035

Loss ``lambda * 255^2 * MSE + bpp``: STF's convention, which the published lambda grid follows (0.0018, 0.0035,
0.0067, 0.013, 0.025, 0.0483; the one released checkpoint is 0.0035). The official ``train.py`` computes
``bpp + lambda * MSE`` without the 255^2 factor; its lambdas would then mean something else.

Official recipe (stm233/image-compression-with-swin-transformer, README and ``train.py``): OpenImages (about 300k
training images fetched with ``downloader_openimages.py``), 256^2 crops, batch 32, Adam 1e-4, aux Adam 1e-4 on the
quantiles, gradient-norm clip 1.0, and ReduceLROnPlateau(x0.3, patience 4 epochs) on the validation loss with no
fixed end. jaxlic's schedule is fixed, so ``steps`` (default 2M, about 213 epochs of 300k images) with x0.3 decays at
70 % and 90 % stands in for the plateau schedule. Data: ``--config.data.source=tfds --config.data.name=...`` or
image folders in ``data.paths``. The full model needs an accelerator (417.8M parameters).

``runlocal`` (a check that it all works on a 2-core CPU, not a useful model): a narrow model (embed 16, context
widths 32/24/16/16, 4 channel slices on the 2x2 grid, sliding window 6), 128^2 crops of BSDS500, batch 4, Adam
3e-4 with 50 warm-up steps and x0.1 at 90 %, 300 steps. ``tiny``: the tests' preset.
"""
import os

from jaxlic.training.config import base_config, make_runlocal, make_tiny, parse_arg

SHARED = os.environ.get("JAXLIC_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))

STF_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483)

RUNLOCAL = dict(embed_dim=16, heads=(1, 2, 4, 8), hyper_widths=(112, 96, 80), z_ch=64, num_slices=4,
                max_support=6, context_widths=(32, 24, 16, 16), context_heads=2)
TINY = dict(embed_dim=8, depths=(2, 2, 2, 2), heads=(1, 1, 2, 4), hyper_widths=(48, 40, 36), z_ch=32, num_slices=4,
            max_support=6, context_widths=(8, 8, 8, 8), context_heads=2, mu_depths=(2,), sigma_depths=(2,),
            lrp_depths=(2,))


def get_config(arg=None):
    a = parse_arg(arg, lmbda=0.0035, steps=0, runlocal=False, tiny=False)
    c = base_config("stf-zigzag", {}, SHARED)
    c.loss = "mse"
    c.lmbda = a.lmbda
    c.data.crop = 256
    c.batch_size = 32
    c.total_steps = a.steps or 2_000_000
    c.optim.lr = 1e-4
    c.optim.decay_steps = (int(c.total_steps * 0.7), int(c.total_steps * 0.9))
    c.optim.decay_factor = 0.3
    c.optim.clip_norm = 1.0
    c.optim.aux_lr = 1e-4
    c.ckpt_every = 10_000
    if a.runlocal:
        make_runlocal(c, RUNLOCAL, SHARED, a.steps or 300)
        c.optim.decay_factor = 0.1
    if a.tiny:
        make_tiny(c, TINY, a.steps)
    return c
