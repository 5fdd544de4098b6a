"""Separable Gaussian smoothing of n-D images and fields, on any device."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["gaussian_kernel1d", "gaussian_blur"]


def gaussian_kernel1d(sigma: float, *, dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> Tensor:
    """A normalized 1D Gaussian ``(2r + 1,)`` with ``r = ceil(3 sigma)`` (``sigma`` in voxels)."""
    if not (isinstance(sigma, int | float) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"gaussian_kernel1d: sigma must be a finite number > 0, got {sigma!r}")
    radius = max(1, math.ceil(3.0 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(x: Tensor, sigma: float | tuple[float, ...]) -> Tensor:
    """Blur ``(N, C, *S)`` with a Gaussian of ``sigma`` voxels (one value, or one per spatial axis
    in array order), replicating the border. ``sigma <= 0`` on an axis leaves that axis alone.

    Each axis is one 1D convolution over every line along it, so the cost grows with the kernel
    width, not its volume.
    """
    if x.dim() < 3 or not x.is_floating_point():
        raise ValueError(f"gaussian_blur: expected a floating-point (N, C, *S), got {x.dtype} "
                         f"{tuple(x.shape)}")
    d = x.dim() - 2
    sigmas = (float(sigma),) * d if isinstance(sigma, int | float) else tuple(float(s) for s in sigma)
    if len(sigmas) != d:
        raise ValueError(f"gaussian_blur: {d} spatial axes need {d} sigmas, got {len(sigmas)}")
    out = x
    for axis, s in enumerate(sigmas, start=2):
        if s <= 0:
            continue
        kernel = gaussian_kernel1d(s, dtype=x.dtype, device=x.device)
        radius = (kernel.numel() - 1) // 2
        moved = out.movedim(axis, -1)
        shape = moved.shape
        lines = moved.reshape(-1, 1, shape[-1])
        lines = F.pad(lines, (radius, radius), mode="replicate")
        out = F.conv1d(lines, kernel.view(1, 1, -1)).reshape(shape).movedim(-1, axis)
    return out
