"""Image quality metrics in JAX: PSNR and MS-SSIM with ``tf.image.ssim_multiscale``'s conventions."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003


def psnr(a, b, max_val: float = 255.0):
    mse = jnp.mean(jnp.square(jnp.asarray(a, jnp.float32) - jnp.asarray(b, jnp.float32)), axis=(-3, -2, -1))
    return 10.0 * jnp.log10(max_val ** 2 / mse)


def _gaussian(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-x * x / (2.0 * sigma * sigma))
    return (g / g.sum()).astype(np.float32)


def _blur(x, g):
    """Separable Gaussian, VALID, over the last two axes (H, W) of a channels-first stack, as sums of shifted
    slices. XLA:CPU runs a one-channel or depthwise convolution on a slow generic path; these multiply-adds on
    W-contiguous rows are 4-5x faster again than the same on NHWC with 3 channels (Kodak, measured)."""
    k = len(g)
    h, w = x.shape[-2] - k + 1, x.shape[-1] - k + 1
    # the barrier keeps XLA from fusing the two passes, which would recompute the first pass's taps for each of
    # the second's
    y = jax.lax.optimization_barrier(sum(float(g[i]) * x[..., i:i + h, :] for i in range(k)))
    return sum(float(g[j]) * y[..., j:j + w] for j in range(k))


def _ssim_cs(x, y, max_val, g, k1, k2):
    """Mean SSIM and contrast-structure per image and channel of (B, C, H, W): all four blurs in one pass.
    (Co)variances are blurred around each channel's mean, so they do not come from differences of nearly equal
    large numbers (a constant image has contrast-structure 1 exactly)."""
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    ux, uy = jnp.mean(x, axis=(2, 3), keepdims=True), jnp.mean(y, axis=(2, 3), keepdims=True)
    x, y = x - ux, y - uy
    mx, my, bxy, bsq = _blur(jnp.stack([x, y, x * y, x * x + y * y]), g)
    cov2 = 2.0 * (bxy - mx * my)
    var = bsq - mx * mx - my * my
    mx, my = mx + ux, my + uy
    luminance = (2.0 * mx * my + c1) / (mx * mx + my * my + c1)
    cs = (cov2 + c2) / (var + c2)
    return jnp.mean(luminance * cs, axis=(2, 3)), jnp.mean(cs, axis=(2, 3))  # (B, C)


def _downsample(x):
    """2x2 average pooling of (B, C, H, W) after symmetric padding of odd sizes (as tf.image.ssim_multiscale)."""
    h, w = x.shape[2:4]
    x = jnp.pad(x, ((0, 0), (0, 0), (0, h % 2), (0, w % 2)), mode="symmetric")
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


def ms_ssim(x, y, max_val: float = 1.0, weights=MS_SSIM_WEIGHTS, filter_size: int = 11, sigma: float = 1.5,
            k1: float = 0.01, k2: float = 0.03):
    """MS-SSIM per image of (B, H, W, C) batches; images need >= filter_size * 2**(len(weights)-1) pixels a side."""
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    need = filter_size * 2 ** (len(weights) - 1)
    if min(x.shape[1:3]) < need - (2 ** (len(weights) - 1) - 1):
        raise ValueError(f"MS-SSIM with {len(weights)} scales needs images of at least ~{need} pixels a side, "
                         f"got {x.shape[1:3]}")
    g = _gaussian(filter_size, sigma)
    x, y = jnp.moveaxis(x, -1, 1), jnp.moveaxis(y, -1, 1)  # channels first: rows of W are contiguous
    factors = []
    for i in range(len(weights)):
        ssim, cs = _ssim_cs(x, y, max_val, g, k1, k2)
        if i < len(weights) - 1:
            factors.append(jax.nn.relu(cs))
            x, y = _downsample(x), _downsample(y)
    factors.append(jax.nn.relu(ssim))
    stacked = jnp.stack(factors, axis=-1)  # (B, C, scales)
    return jnp.mean(jnp.prod(stacked ** jnp.asarray(weights, jnp.float32), axis=-1), axis=-1)
