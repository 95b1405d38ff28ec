"""Layers with PyTorch-compatible numerics that avoid XLA:CPU's slow paths (see docs/XLA_CPU.md)."""
from jaxlic.layers.conv import Conv, ConvTranspose, SubpelConv, pixel_shuffle, conv_transpose_phase_kernel
from jaxlic.layers.gdn import GDN
from jaxlic.layers.blocks import ResidualBlock, ResidualBlockWithStride, ResidualBlockUpsample

__all__ = [
    "Conv", "ConvTranspose", "SubpelConv", "pixel_shuffle", "conv_transpose_phase_kernel", "GDN",
    "ResidualBlock", "ResidualBlockWithStride", "ResidualBlockUpsample",
]
