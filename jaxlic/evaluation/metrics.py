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
    """Separable Gaussian, VALID, on (B, H, W, C): channels folded into the batch (no depthwise conv, which
    is a slow path on XLA:CPU)."""
    b, h, w, c = x.shape
    y = x.transpose(0, 3, 1, 2).reshape(b * c, h, w, 1)
    k = len(g)
    dn = ("NHWC", "HWIO", "NHWC")
    y = jax.lax.conv_general_dilated(y, jnp.asarray(g).reshape(k, 1, 1, 1), (1, 1), "VALID", dimension_numbers=dn,
                                     precision=jax.lax.Precision.HIGHEST)
    y = jax.lax.conv_general_dilated(y, jnp.asarray(g).reshape(1, k, 1, 1), (1, 1), "VALID", dimension_numbers=dn,
                                     precision=jax.lax.Precision.HIGHEST)
    return y.reshape(b, c, y.shape[1], y.shape[2]).transpose(0, 2, 3, 1)


def _ssim_cs(x, y, max_val, g, k1, k2):
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    mx, my = _blur(x, g), _blur(y, g)
    num0, den0 = 2.0 * mx * my, mx * mx + my * my
    luminance = (num0 + c1) / (den0 + c1)
    num1, den1 = 2.0 * _blur(x * y, g), _blur(x * x + y * y, g)
    cs = (num1 - num0 + c2) / (den1 - den0 + c2)
    return jnp.mean(luminance * cs, axis=(1, 2)), jnp.mean(cs, axis=(1, 2))  # per channel (B, C)


def _downsample(x):
    """2x2 average pooling after symmetric padding of odd sizes (as tf.image.ssim_multiscale)."""
    h, w = x.shape[1:3]
    x = jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="symmetric")
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def ms_ssim(x, y, max_val: float = 1.0, weights=MS_SSIM_WEIGHTS, filter_size: int = 11, sigma: float = 1.5,
            k1: float = 0.01, k2: float = 0.03):
    """MS-SSIM per image of (B, H, W, C) batches; images need >= filter_size * 2**(len(weights)-1) pixels a side."""
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    need = filter_size * 2 ** (len(weights) - 1)
    if min(x.shape[1:3]) < need - (2 ** (len(weights) - 1) - 1):
        raise ValueError(f"MS-SSIM with {len(weights)} scales needs images of at least ~{need} pixels a side, "
                         f"got {x.shape[1:3]}")
    g = _gaussian(filter_size, sigma)
    factors = []
    for i in range(len(weights)):
        ssim, cs = _ssim_cs(x, y, max_val, g, k1, k2)
        if i < len(weights) - 1:
            factors.append(jax.nn.relu(cs))
            x, y = _downsample(x), _downsample(y)
    factors.append(jax.nn.relu(ssim))
    stacked = jnp.stack(factors, axis=-1)  # (B, C, scales)
    return jnp.mean(jnp.prod(stacked ** jnp.asarray(weights, jnp.float32), axis=-1), axis=-1)
