"""Rate-distortion losses."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlic.evaluation.metrics import ms_ssim


def bits(likelihoods) -> dict[str, jax.Array]:
    """Total bits per latent (sum of -log2 likelihood), per batch."""
    return {k: jnp.sum(-jnp.log2(v)) for k, v in likelihoods.items()}


DISTORTIONS = ("mse", "ms-ssim")


def rd_loss(x, out, lmbda: float, distortion: str = "mse"):
    """CompressAI's RateDistortionLoss on images in [0, 1]: ``lmbda * 255^2 * MSE + bpp`` or
    ``lmbda * (1 - MS-SSIM) + bpp``; returns (loss, metrics)."""
    n, h, w, _ = x.shape
    b = bits(out["likelihoods"])
    bpp = {f"bpp_{k}": v / (n * h * w) for k, v in b.items()}
    rate = sum(bpp.values())
    mse = jnp.mean(jnp.square(x - out["x_hat"]))
    psnr = -10.0 * jnp.log10(jnp.maximum(mse, 1e-10))
    metrics = {"bpp": rate, "mse": mse, "psnr": psnr, **bpp}
    if distortion == "mse":
        loss = lmbda * 255.0 ** 2 * mse + rate
    elif distortion == "ms-ssim":
        msssim = jnp.mean(ms_ssim(x, out["x_hat"], max_val=1.0))
        loss = lmbda * (1.0 - msssim) + rate
        metrics["ms_ssim"] = msssim
    else:
        raise ValueError(f"loss must be one of {DISTORTIONS}, got {distortion!r}")
    return loss, {"loss": loss, **metrics}
