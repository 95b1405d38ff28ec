"""A training loop of your own from jaxlic's parts: a registered model, the RD loss, optax. (``train.py`` does
this at scale: sharding, checkpoints, schedules, validation; this is the loop to start a notebook from.)

    python examples/train_loop.py IMAGE_FOLDER [steps]      # e.g. ../shared/datasets/bsds500/train
"""
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxlic

folder, steps = pathlib.Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 300
images = [jaxlic.read_image(str(p)) for p in sorted(folder.glob("*.jpg"))[:64] + sorted(folder.glob("*.png"))[:64]]
model = jaxlic.model("mbt2018-mean", N=32, M=48)            # any name from jaxlic.models()
variables = model.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
params, constants = variables["params"], {k: v for k, v in variables.items() if k != "params"}
tx = optax.adam(1e-3)
opt_state = tx.init(params)


@jaxlic.jit  # jax.jit with the XLA:CPU options jaxlic's trainer uses (faster convolutions on CPU)
def step(params, opt_state, x, rng):
    def loss_fn(p):
        v = {"params": p, **constants}
        out = model.apply(v, x, training=True, rng=rng)    # noise for the rates, rounding (STE) for the synthesis
        loss, metrics = jaxlic.rd_loss(x, out, lmbda=0.0130)
        return loss + model.apply(v, method="aux_loss"), metrics  # + the factorized prior's quantiles
    grads, metrics = jax.grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, metrics


rng = np.random.default_rng(0)
for i in range(steps):
    crops = []
    for k in rng.integers(0, len(images), 8):                # random 64 x 64 crops, batch 8
        img = images[k]
        y, x = rng.integers(0, img.shape[0] - 63), rng.integers(0, img.shape[1] - 63)
        crops.append(img[y:y + 64, x:x + 64])
    params, opt_state, m = step(params, opt_state, jnp.asarray(np.stack(crops), jnp.float32) / 255, jax.random.key(i))
    if i % 50 == 0 or i == steps - 1:
        print(f"step {i:4d}: loss {float(m['loss']):.3f}, bpp {float(m['bpp']):.3f}, PSNR {float(m['psnr']):.2f} dB")

codec = jaxlic.Codec("mbt2018-mean", {"params": params, **constants}, {"N": 32, "M": 48})  # tables frozen here
data = codec.compress(images[0])
print(f"{len(data)} bytes ({8 * len(data) / images[0][..., 0].size:.3f} bpp), "
      f"PSNR {float(jaxlic.psnr(images[0], codec.decompress(data))):.2f} dB on the first image")
