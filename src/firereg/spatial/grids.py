"""Maps between two voxel grids placed in the same world by their NIfTI affines."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from firereg.spatial.frames import (
    normalized_from_voxel,
    voxel_from_normalized,
    voxel_from_world,
    world_from_voxel,
)

__all__ = ["grid_to_grid_affine"]


def grid_to_grid_affine(
    source_shape: Sequence[int],
    source_affine: Tensor | Sequence,
    target_shape: Sequence[int],
    target_affine: Tensor | Sequence,
) -> Tensor:
    """The affine ``(1, d, d+1)`` in normalized coordinates that samples a *source* grid at the
    world position of every voxel of a *target* grid.

    ``warp(source_image, grid_to_grid_affine(...), size=target_shape)`` resamples an image onto
    the target grid in world coordinates (the mechanism behind reorientation, resampling to a
    spacing and mapping results back to the original grid). ``d`` is ``len(source_shape)``; for
    ``d = 2`` both grids are the ``k = 0`` planes of their 4x4 affines and world points off the
    source plane are projected onto it.

    Args:
        source_shape, target_shape: spatial sizes in array-axis order, same length.
        source_affine, target_affine: 4x4 voxel -> world (NIfTI) matrices.

    Returns:
        ``(1, d, d+1)`` float64 matrix.
    """
    d = len(source_shape)
    if d != len(target_shape):
        raise ValueError(f"grid_to_grid_affine: source {tuple(source_shape)} and target "
                         f"{tuple(target_shape)} differ in dimensionality")
    m = (normalized_from_voxel(source_shape) @ voxel_from_world(source_affine, d)
         @ world_from_voxel(target_affine, d) @ voxel_from_normalized(target_shape))
    return m[:d].unsqueeze(0).to(torch.float64)
