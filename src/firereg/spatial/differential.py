"""Finite-difference operators on dense fields."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["laplacian"]


def laplacian(field: Tensor) -> Tensor:
    """Discrete Laplacian of each channel, in grid-index units, on interior voxels only.

    Uses the ``2*d + 1``-point stencil (``[1, -2, 1]`` along every axis). Only voxels with both
    neighbours along every axis are returned, so a field that is linear in the coordinates
    (an affine displacement) has a Laplacian of exactly 0, with no padding artefacts.

    Args:
        field: ``(N, C, *S)`` with 2 or 3 spatial dims, each at least 3 long.

    Returns:
        ``(N, C, *(S - 2))``.
    """
    d = field.dim() - 2
    if d not in (2, 3) or any(s < 3 for s in field.shape[2:]):
        raise ValueError(f"laplacian: expected (N, C, *S) with 2 or 3 spatial dims of size >= 3, "
                         f"got {tuple(field.shape)}")
    kernel = torch.zeros((3,) * d, dtype=field.dtype, device=field.device)
    centre = (1,) * d
    kernel[centre] = -2.0 * d
    for axis in range(d):
        for offset in (0, 2):
            index = list(centre)
            index[axis] = offset
            kernel[tuple(index)] = 1.0
    c = field.shape[1]
    weight = kernel.expand(c, 1, *kernel.shape).contiguous()
    conv = F.conv2d if d == 2 else F.conv3d
    return conv(field, weight, groups=c)
