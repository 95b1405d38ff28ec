"""Mean-scale hyperprior (CompressAI mbt2018-mean layout), rate-distortion trained.

The shipped models (``jaxlic/assets``; preset ``cpu``: N=64, M=96, 128^2 BSDS500 crops, batch 16, Adam 5e-4 with
200 warm-up steps, x0.1 at 85%), trained on this repository's machine: 2-core x86-64 CPU, no GPU, jax 0.10.2:

    python train.py --config configs/mbt2018_mean.py:cpu,lmbda=0.0067,steps=9000 --workdir out/cpu_0067
        # 9000 steps, 66 min wall (42.9 images/s), from scratch. (It was started with steps=5000, stopped by
        # SIGTERM at step 3431 and resumed with steps=9000: the same learning rates and data stream up to there,
        # so the same run.)
    python train.py --config configs/mbt2018_mean.py:cpu,lmbda=0.0018,steps=1500,finetune \
        --config.init_from=out/cpu_0067/model.npz --workdir out/cpu_0018
        # 1500 steps from the 0.0067 model (Adam 2e-4), 19 min wall (run alongside the next one)
    python train.py --config configs/mbt2018_mean.py:cpu,lmbda=0.0250,steps=1500,finetune \
        --config.init_from=out/cpu_0067/model.npz --workdir out/cpu_0250          # 19 min wall
    jaxlic export out/cpu_0067/model.npz jaxlic/assets/mbt2018-mean-cpu-0.0067.npz --half   # and the others

Results on Kodak (python eval.py; real files, constriction coder; bpp / PSNR-RGB):
    0.0018: 0.1833 / 26.99 dB, 0.0067: 0.3988 / 29.33 dB, 0.0250: 0.6440 / 30.74 dB;
    BD-rate -29.4% vs JPEG (Pillow), +28.5% vs WebP (Pillow).

CompressAI's recipe (full width N=128, M=192, 256^2 crops, batch 8, Adam 1e-4; needs a GPU):
    python train.py --config configs/mbt2018_mean.py:lmbda=0.0130 --workdir out/mbt_0130
Quick local run: ``configs/mbt2018_mean.py:runlocal``. Tiny (tests): ``configs/mbt2018_mean.py:tiny``.
Any field can be overridden: ``--config.batch_size=16``, ``--config.data.source=tfds``, ...
"""
import os

from jaxlic.training.config import base_config, make_tiny, parse_arg

SHARED = os.environ.get("JAXLIC_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))


def get_config(arg=None):
    a = parse_arg(arg, lmbda=0.0130, runlocal=False, cpu=False, finetune=False, tiny=False, N=128, M=192,
                  loss="mse", steps=0)
    c = base_config("mbt2018-mean", dict(N=a.N, M=a.M), SHARED)
    c.loss = a.loss
    c.lmbda = a.lmbda

    if a.cpu:
        # The shipped models (jaxlic/assets): a narrower model (N=64, M=96: 1.75M parameters, 3.5 MB in float16)
        # trained briefly on a 2-core CPU. 128^2 crops go through XLA:CPU ~1.5x faster per pixel than 256^2;
        # a higher learning rate with warm-up makes the short schedule count.
        c.model_config = dict(N=64, M=96)
        c.data.crop = 128
        c.batch_size = 16
        c.total_steps = a.steps or 5000
        c.optim.lr = 5e-4
        c.optim.warmup_steps = 200
        c.optim.decay_steps = (int(c.total_steps * 0.85),)
        c.log_every = 50
        c.ckpt_every = 500
        if a.finetune:  # from another lambda's model (config.init_from): gentler, fresh Adam state
            c.optim.lr = 2e-4
            c.optim.warmup_steps = 100
    if a.runlocal:
        c.data.crop = 128
        c.batch_size = 4
        c.total_steps = a.steps or 2000
        c.optim.decay_steps = (int(c.total_steps * 0.9),)
        c.log_every = 50
        c.ckpt_every = 500
    if a.tiny:
        make_tiny(c, dict(N=8, M=12), a.steps)
    return c
