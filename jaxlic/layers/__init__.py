"""Layers with PyTorch-compatible numerics that avoid XLA:CPU's slow paths (see docs/XLA_CPU.md)."""
from jaxlic.layers.conv import (Conv, ConvTranspose, DepthwiseConv, SubpelConv, conv_transpose_phase_kernel,
                                pixel_shuffle)
from jaxlic.layers.gdn import GDN
from jaxlic.layers.blocks import ResidualBlock, ResidualBlockWithStride, ResidualBlockUpsample

__all__ = [
    "Conv", "ConvTranspose", "DepthwiseConv", "SubpelConv", "pixel_shuffle", "conv_transpose_phase_kernel", "GDN",
    "ResidualBlock", "ResidualBlockWithStride", "ResidualBlockUpsample",
]
