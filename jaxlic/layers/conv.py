"""Convolutions in NHWC with PyTorch's padding, output-size and channel-order conventions.

Kernels are stored HWIO (``Conv``) and (kH, kW, in, out) (``ConvTranspose``); the converter in
``jaxlic.convert`` maps PyTorch's layouts onto these.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlic.layers.init import torch_conv_bias_init, torch_conv_kernel_init

Array = jax.Array
_DN = ("NHWC", "HWIO", "NHWC")


class Conv(nn.Module):
    """``torch.nn.Conv2d`` with symmetric padding ``kernel_size // 2`` unless given.

    JAX's 'SAME' pads (0, 1) for even inputs at stride 2; PyTorch pads both sides, so padding is explicit.
    """

    features: int
    kernel_size: int = 3
    stride: int = 1
    padding: int | None = None
    use_bias: bool = True
    precision: Any = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k = self.kernel_size
        pad = k // 2 if self.padding is None else self.padding
        fan_in = x.shape[-1] * k * k
        kernel = self.param("kernel", torch_conv_kernel_init(fan_in), (k, k, x.shape[-1], self.features))
        if k == 1 and pad == 0 and self.stride == 1:
            # a matrix product: XLA:CPU's 1x1 convolution is 2x (and more) slower, forward and gradient (XLA_CPU.md)
            y = jnp.einsum("...c,co->...o", x, kernel[0, 0].astype(x.dtype), precision=self.precision)
        elif self.stride > 1:
            y = strided_conv(x, kernel.astype(x.dtype), self.stride, pad, self.precision)
        else:
            y = conv2d(x, kernel.astype(x.dtype), 1, pad, self.precision)
        if self.use_bias:
            y = y + self.param("bias", torch_conv_bias_init(fan_in), (self.features,)).astype(x.dtype)
        return y


def conv2d(x: Array, kernel: Array, stride: int = 1, pad: int = 0, precision=None) -> Array:
    """NHWC x HWIO convolution with symmetric padding: ``lax.conv_general_dilated`` in this module's layout."""
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), ((pad, pad), (pad, pad)),
                                        dimension_numbers=_DN, precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def strided_conv(x: Array, kernel: Array, stride: int, pad: int, precision=None) -> Array:
    """A stride-``s`` convolution (HWIO kernel, symmetric padding) whose input gradient XLA:CPU computes as a
    stride-1 convolution: the gradient is a transposed convolution, which XLA:CPU runs as an input-dilated
    convolution at a third of its usual speed (5x5, stride 2, 128 channels at 128^2, batch 8: 458 ms against
    200 ms for the phase form, ``benchmarks/layers.py``). On CPU the gradient takes ``conv_transpose``'s phase form
    (``lax.platform_dependent``; elsewhere XLA's own). The function and the kernel gradient are XLA's own;
    forward-mode differentiation (``jax.jvp``) is not defined through it."""
    return conv2d(x, kernel, stride, pad, precision)


def _strided_conv_fwd(x, kernel, stride, pad, precision):
    return conv2d(x, kernel, stride, pad, precision), (x, kernel)


def _strided_conv_bwd(stride, pad, precision, residuals, g):
    x, kernel = residuals
    (dkernel,) = jax.vjp(lambda b: conv2d(x, b, stride, pad, precision), kernel)[1](g)
    out_hw = x.shape[1:3]

    def xla(g, kernel):
        return jax.vjp(lambda a: conv2d(a, kernel, stride, pad, precision), x)[1](g)[0]
    if not _phase_form_fits(stride, g.shape[1:3], out_hw):
        return xla(g, kernel), dkernel

    def phase(g, kernel):
        return conv_transpose(g, kernel.transpose(0, 1, 3, 2), stride, pad, out_hw, precision)
    return jax.lax.platform_dependent(g, kernel, cpu=phase, default=xla), dkernel


strided_conv.defvjp(_strided_conv_fwd, _strided_conv_bwd)


def pixel_shuffle(x: Array, r: int) -> Array:
    """PyTorch ``PixelShuffle(r)`` on NHWC: input channel ``c*r*r + r*dy + dx`` -> output (c, r*h+dy, r*w+dx).

    TF's ``depth_to_space`` uses ``(dy*r + dx)*C + c`` instead, which would scramble converted weights.
    """
    b, h, w, c = x.shape
    oc = c // (r * r)
    x = x.reshape(b, h, w, oc, r, r)
    x = x.transpose(0, 1, 4, 2, 5, 3)
    return x.reshape(b, h * r, w * r, oc)


class SubpelConv(nn.Module):
    """``subpel_conv3x3``: Conv2d(in, out*r^2, 3, padding 1) followed by PixelShuffle(r)."""

    features: int
    r: int = 2
    kernel_size: int = 3
    precision: Any = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        y = Conv(self.features * self.r ** 2, self.kernel_size, precision=self.precision, name="conv")(x)
        return pixel_shuffle(y, self.r)


def _phase_taps(kernel_size: int, stride: int, padding: int) -> tuple[int, int, np.ndarray]:
    """For each output phase d and input offset t, the transposed-conv kernel tap k = d + p - s*t (or -1).

    PyTorch: out[s*m + d] = sum_t x[m + t] * w[d + p - s*t]; the valid t form a small window, so the
    transposed conv equals a stride-1 conv over x producing s outputs per position.
    """
    t_min = math.ceil((padding - kernel_size + 1) / stride)
    t_max = (stride - 1 + padding) // stride
    taps = np.full((stride, t_max - t_min + 1), -1, np.int32)
    for d in range(stride):
        for e, t in enumerate(range(t_min, t_max + 1)):
            k = d + padding - stride * t
            if 0 <= k < kernel_size:
                taps[d, e] = k
    return t_min, t_max, taps


def conv_transpose_phase_kernel(kernel: Array, stride: int, padding: int) -> tuple[Array, tuple[int, int]]:
    """Rearranges a (k, k, in, out) transposed-conv kernel into a stride-1 conv kernel with s*s*out outputs.

    Output channel order is (dy, dx, c), matching ``_depth_to_space_phase``. Returns the kernel and the
    symmetric-free padding (left, right) to apply to the input.
    """
    k, _, cin, cout = kernel.shape
    t_min, t_max, taps = _phase_taps(k, stride, padding)
    n = taps.shape[1]
    # Gather with a zero tap appended at index k so invalid taps read zeros (static indices, cheap gradient).
    padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))
    idx = np.where(taps < 0, k, taps)  # (s, n)
    g = padded[idx[:, None, :, None], idx[None, :, None, :]]  # (s_y, s_x, n_y, n_x, in, out)
    g = g.transpose(2, 3, 4, 0, 1, 5).reshape(n, n, cin, stride * stride * cout)
    return g, (-t_min, t_max)


def _phase_form_fits(stride: int, in_hw, out_hw) -> bool:
    # the phase form yields stride * input rows and columns (the padding keeps the input's size) to crop from
    return all(o <= i * stride for i, o in zip(in_hw, out_hw))


# from this many output channels on, XLA:CPU runs the s*s phases faster as separate convolutions without the zero
# taps (128 channels at 64^2, batch 8: forward 222 -> 189 ms, gradient 676 -> 528 ms); below it, narrow
# convolutions lose more than the zero taps cost (3 channels: 59 -> 231 ms). 64 channels: a tie.
EXACT_PHASES_MIN_FEATURES = 96


def conv_transpose(x: Array, kernel: Array, stride: int, padding: int, out_hw: tuple[int, int],
                   precision=None) -> Array:
    """``ConvTranspose2d`` (kernel (k, k, in, out), no bias) cropped to ``out_hw``, as one stride-1 convolution
    emitting the s*s output phases and a depth-to-space (``conv_transpose_phase_kernel``); on CPU, with
    ``EXACT_PHASES_MIN_FEATURES`` outputs or more, one convolution per phase with only its own taps."""
    together = functools.partial(_phases_together, stride=stride, padding=padding, out_hw=out_hw, precision=precision)
    if kernel.shape[-1] < EXACT_PHASES_MIN_FEATURES:
        return together(x, kernel)
    apart = functools.partial(_phases_apart, stride=stride, padding=padding, out_hw=out_hw, precision=precision)
    return jax.lax.platform_dependent(x, kernel, cpu=apart, default=together)


def _phases_together(x, kernel, stride, padding, out_hw, precision):
    s, b = stride, x.shape[0]
    g, (pl, pr) = conv_transpose_phase_kernel(kernel, s, padding)
    y = jax.lax.conv_general_dilated(x, g, (1, 1), ((pl, pr), (pl, pr)), dimension_numbers=_DN, precision=precision)
    n_out, features = y.shape[1], kernel.shape[-1]
    y = y.reshape(b, n_out, y.shape[2], s, s, features).transpose(0, 1, 3, 2, 4, 5)
    y = y.reshape(b, n_out * s, y.shape[3] * s, features)
    return y[:, :out_hw[0], :out_hw[1]]


def _phases_apart(x, kernel, stride, padding, out_hw, precision):
    """Phase (dy, dx) at input position m is sum over its valid offsets e of x[m + t_min + e] * kernel[taps[., e]];
    the valid offsets of a phase are contiguous, so each phase is a 'VALID' convolution over a slice."""
    s, (b, h, w, _) = stride, x.shape
    t_min, t_max, taps = _phase_taps(kernel.shape[0], s, padding)
    xp = jnp.pad(x, ((0, 0), (-t_min, t_max), (-t_min, t_max), (0, 0)))
    valid = [np.flatnonzero(taps[d] >= 0) for d in range(s)]
    rows = []
    for dy in range(s):
        cols = []
        for dx in range(s):
            ey, ex = valid[dy], valid[dx]
            if not len(ey) or not len(ex):  # no tap reaches this phase (stride above the kernel size)
                cols.append(jnp.zeros((b, h, w, kernel.shape[-1]), x.dtype))
                continue
            k = kernel[taps[dy, ey][:, None], taps[dx, ex][None, :]]
            part = xp[:, ey[0]:ey[-1] + h, ex[0]:ex[-1] + w]
            cols.append(jax.lax.conv_general_dilated(part, k, (1, 1), ((0, 0), (0, 0)), dimension_numbers=_DN,
                                                     precision=precision))
        rows.append(jnp.stack(cols, 3))  # (b, h, w, dx, c)
    y = jnp.stack(rows, 2).reshape(b, h * s, w * s, kernel.shape[-1])  # (b, h, dy, w, dx, c)
    return y[:, :out_hw[0], :out_hw[1]]


class ConvTranspose(nn.Module):
    """``torch.nn.ConvTranspose2d(in, out, k, stride, padding, output_padding)`` in sub-pixel (phase) form.

    A direct ``lax.conv_transpose`` kernel gradient is 20-50x slower on XLA:CPU; one stride-1 conv that
    emits the s*s output phases followed by a depth-to-space computes exactly the same function.
    """

    features: int
    kernel_size: int = 5
    stride: int = 2
    padding: int | None = None
    output_padding: int | None = None
    use_bias: bool = True
    precision: Any = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k, s = self.kernel_size, self.stride
        p = k // 2 if self.padding is None else self.padding
        op = s - 1 if self.output_padding is None else self.output_padding
        b, h, w, cin = x.shape
        # PyTorch's ConvTranspose2d initialises with fan_in computed from weight.size(1) * k * k = out * k * k.
        fan_in = self.features * k * k
        kernel = self.param("kernel", torch_conv_kernel_init(fan_in), (k, k, cin, self.features))
        oh, ow = (h - 1) * s - 2 * p + k + op, (w - 1) * s - 2 * p + k + op
        if not _phase_form_fits(s, (h, w), (oh, ow)):
            raise ValueError(f"ConvTranspose(k={k}, s={s}, p={p}, output_padding={op}) is not supported "
                             "in phase form (output larger than stride * input)")
        y = conv_transpose(x, kernel.astype(x.dtype), s, p, (oh, ow), self.precision)
        if self.use_bias:
            y = y + self.param("bias", torch_conv_bias_init(fan_in), (self.features,)).astype(x.dtype)
        return y


class DepthwiseConv(nn.Module):
    """``Conv2d(C, C, k, padding=k//2, groups=C)`` as a sum of k*k shifted slices times per-channel weights:
    XLA:CPU's grouped convolution (``feature_group_count=C``) is ~20x slower forward and ~30x in the gradient
    (docs/XLA_CPU.md). Kernel stored (k, k, 1, C), the converter's ``conv`` layout of PyTorch's (C, 1, k, k)."""

    kernel_size: int = 3
    use_bias: bool = True
    precision: Any = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k, c = self.kernel_size, x.shape[-1]
        kernel = self.param("kernel", torch_conv_kernel_init(k * k), (k, k, 1, c)).astype(x.dtype)
        p = k // 2
        h, w = x.shape[1:3]
        xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        y = sum(xp[:, dy:dy + h, dx:dx + w, :] * kernel[dy, dx, 0] for dy in range(k) for dx in range(k))
        if self.use_bias:
            y = y + self.param("bias", torch_conv_bias_init(k * k), (c,)).astype(x.dtype)
        return y


def context_mask(kernel_size: int, kind: str) -> np.ndarray:
    """CompressAI's masks of a context convolution, (k, k): ``A`` (raster order: the rows above and the
    positions to the left) or ``checkerboard`` (the four-neighbourhood parity: taps with odd dy + dx)."""
    k, c = kernel_size, kernel_size // 2
    m = np.ones((k, k), np.float32)
    if kind == "A":
        m[c, c:] = 0
        m[c + 1:] = 0
    elif kind == "checkerboard":
        dy, dx = np.mgrid[:k, :k]
        m[(dy + dx) % 2 == 0] = 0
    else:
        raise ValueError(f"mask must be 'A' or 'checkerboard', got {kind!r}")
    return m


class MaskedConv(nn.Module):
    """CompressAI's ``MaskedConv2d`` (type A) and ``CheckerboardMaskedConv2d``: a stride-1 conv whose kernel is
    multiplied by a fixed mask, padding k // 2. ``at`` evaluates the type-A one at chosen positions only."""

    in_features: int
    features: int
    kernel_size: int = 5
    mask: str = "A"
    precision: Any = None

    def setup(self):
        k, cin = self.kernel_size, self.in_features
        self.kernel = self.param("kernel", torch_conv_kernel_init(cin * k * k), (k, k, cin, self.features))
        self.bias = self.param("bias", torch_conv_bias_init(cin * k * k), (self.features,))

    def taps(self) -> Array:
        """The kernel's kept taps for ``at``, features x (k * p + p) * C: slicing it inside every wavefront step
        would copy it each time, so a plan computes it once and keeps it in its state. Output-major, so that
        ``at`` multiplies it from the left (docs/XLA_CPU.md: a few positions are the narrow side)."""
        k, p = self.kernel_size, self.kernel_size // 2
        return self.kernel[:p + 1].reshape(-1, self.features)[:(k * p + p) * self.in_features].T

    def _masked(self, dtype):
        return (self.kernel * jnp.asarray(context_mask(self.kernel_size, self.mask))[:, :, None, None]).astype(dtype)

    def __call__(self, x: Array) -> Array:
        p = self.kernel_size // 2
        y = jax.lax.conv_general_dilated(x, self._masked(x.dtype), (1, 1), ((p, p), (p, p)),
                                         dimension_numbers=_DN, precision=self.precision)
        return y + self.bias.astype(x.dtype)

    def at(self, padded: Array, rows: Array, cols: Array, taps: Array | None = None) -> Array:
        """The type-A masked conv at positions (rows, cols) (P each) of the unpadded input, from ``padded``
        (B, H + p, W + 2p, C), the input with p = k // 2 zero rows above and p zero columns each side, feature-
        major: (features, B * P). Only the taps the mask keeps are gathered (in row-major order, the first
        k * p + p). Feature-major because XLA:CPU multiplies a wide matrix by a few columns from the left 1.4-1.6x
        faster than a few rows by it from the right (``benchmarks/wavefront.py``)."""
        if self.mask != "A":
            raise ValueError("MaskedConv.at is for the type-A (raster) mask")
        k, p, c = self.kernel_size, self.kernel_size // 2, self.in_features
        n = k * p + p  # the mask keeps exactly these taps (all ones), so the kernel is read without masking
        window = jax.vmap(lambda i, j: jax.lax.dynamic_slice(padded, (0, i, j, 0), (padded.shape[0], p + 1, k, c)),
                          out_axes=1)(rows, cols)                         # (B, P, p + 1, k, C)
        window = window.reshape(-1, window[0, 0].size)[:, :n * c]         # (B * P, n * C)
        w = (self.taps() if taps is None else taps).astype(padded.dtype)
        y = jnp.einsum("on,qn->oq", w, window, precision=self.precision)
        return y + self.bias.astype(padded.dtype)[:, None]
