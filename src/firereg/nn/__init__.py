"""n-D layer factories and blocks."""

from firereg.nn.blocks import ConvBlock, ResBlock, UpsampleConvBlock, activation
from firereg.nn.factories import check_ndim, conv, instance_norm

__all__ = ["ConvBlock", "ResBlock", "UpsampleConvBlock", "activation", "check_ndim", "conv",
           "instance_norm"]
