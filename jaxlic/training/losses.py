"""Rate-distortion losses."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def bits(likelihoods) -> dict[str, jax.Array]:
    """Total bits per latent (sum of -log2 likelihood), per batch."""
    return {k: jnp.sum(-jnp.log2(v)) for k, v in likelihoods.items()}


def rd_loss(x, out, lmbda: float, distortion: str = "mse"):
    """``lmbda * 255^2 * MSE + bpp`` (CompressAI's RateDistortionLoss); returns (loss, metrics)."""
    n, h, w, _ = x.shape
    b = bits(out["likelihoods"])
    bpp = {f"bpp_{k}": v / (n * h * w) for k, v in b.items()}
    rate = sum(bpp.values())
    mse = jnp.mean(jnp.square(x - out["x_hat"]))
    if distortion != "mse":
        raise ValueError(f"unknown distortion {distortion!r} (this build trains 'mse')")
    loss = lmbda * 255.0 ** 2 * mse + rate
    psnr = -10.0 * jnp.log10(jnp.maximum(mse, 1e-10))
    return loss, {"loss": loss, "bpp": rate, "mse": mse, "psnr": psnr, **bpp}
