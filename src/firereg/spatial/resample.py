"""Resampling of images and displacement fields between grids of the same field of view.

Because displacements are stored in normalized units (DESIGN.md, convention 2), a field keeps its
values when it moves to a finer or coarser grid: resizing is plain (bi/tri)linear interpolation
with ``align_corners=True``. This is how the paper's non-rigid field, computed on the encoder's
1/4-resolution features, reaches the image resolution (end of §3.6).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

__all__ = ["resize_field", "resize_image"]


def _interp_mode(ndim: int) -> str:
    return {2: "bilinear", 3: "trilinear"}[ndim]


def _resize(image: Tensor, size: Sequence[int], caller: str) -> Tensor:
    ndim = image.dim() - 2
    if ndim not in (2, 3) or len(size) != ndim:
        raise ValueError(
            f"{caller}: expected (N, C, *S) with 2 or 3 spatial dims and a size of the same "
            f"length, got image {tuple(image.shape)} and size {tuple(size)}"
        )
    size = tuple(int(s) for s in size)
    if tuple(image.shape[2:]) == size:
        return image
    return F.interpolate(image, size=size, mode=_interp_mode(ndim), align_corners=True)


def resize_image(image: Tensor, size: Sequence[int]) -> Tensor:
    """Linearly resample ``(N, C, *S_in)`` onto ``(N, C, *size)`` over the same field of view."""
    return _resize(image, size, "resize_image")


def resize_field(field: Tensor, size: Sequence[int]) -> Tensor:
    """Resample a displacement field ``(N, d, *S_in)`` (normalized units) to ``(N, d, *size)``.

    The values are not rescaled: a displacement of 0.1 means 5% of the field of view on any grid.
    """
    if field.dim() < 4 or field.shape[1] != field.dim() - 2:
        raise ValueError(
            f"resize_field: expected a displacement field (N, d, *S) with d spatial dims, got "
            f"{tuple(field.shape)}"
        )
    return _resize(field, size, "resize_field")
