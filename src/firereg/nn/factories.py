"""Layer factories keyed by the number of spatial dimensions, so model code is written once."""

from __future__ import annotations

from torch import nn

__all__ = ["conv", "instance_norm", "check_ndim"]

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_INSTANCE_NORM = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}


def check_ndim(ndim: int, caller: str) -> int:
    """Return ``ndim`` if it is 2 or 3, else raise a ``ValueError`` naming ``caller``."""
    if ndim not in (2, 3):
        raise ValueError(f"{caller}: ndim must be 2 or 3, got {ndim!r}")
    return ndim


def conv(
    ndim: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int | None = None,
    padding_mode: str = "zeros",
    bias: bool = True,
) -> nn.Module:
    """An ``ndim``-D convolution; ``padding`` defaults to ``kernel_size // 2`` (same size)."""
    check_ndim(ndim, "conv")
    if padding is None:
        padding = kernel_size // 2
    return _CONV[ndim](in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                       padding_mode=padding_mode, bias=bias)


def instance_norm(ndim: int, channels: int) -> nn.Module:
    """Instance normalisation with a learned scale and shift."""
    check_ndim(ndim, "instance_norm")
    return _INSTANCE_NORM[ndim](channels, affine=True)
