"""Jacobian of a transform, by central finite differences on its sampling grid."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from firereg.spatial.affine import is_affine
from firereg.spatial.transform import check_transform, sampling_grid

__all__ = ["jacobian_matrix", "jacobian_determinant"]


def _jacobian(transform: Tensor, size: Sequence[int] | None, caller: str) -> Tensor:
    check_transform(transform, caller)
    if is_affine(transform) and size is None:
        raise ValueError(f"{caller}: an affine transform needs the size of the grid to evaluate on")
    grid = sampling_grid(transform, size)  # (N, *S, d)
    spatial = grid.shape[1:-1]
    d = len(spatial)
    columns = []
    for a in range(d):
        dim = d - a  # tensor dim of normalized axis a in (N, *S, d): spatial axis d-1-a, offset 1
        n = spatial[d - 1 - a]
        if n < 2:
            raise ValueError(f"{caller}: every axis needs 2 or more voxels, got {tuple(spatial)}")
        spacing = 2.0 / (n - 1)
        columns.append(torch.gradient(grid, spacing=spacing, dim=dim, edge_order=1)[0])
    return torch.stack(columns, dim=-1)


def jacobian_matrix(transform: Tensor, size: Sequence[int] | None = None) -> Tensor:
    """``d phi / d p`` at every voxel, as ``(N, *S, d, d)``.

    Entry ``[..., c, a]`` is the derivative of component ``c`` of ``phi`` along normalized axis
    ``a`` (both in ``grid_sample`` order). Central differences inside, one-sided at the border.
    When the moving and fixed grids have the same shape, this equals the Jacobian in voxel units.

    Args:
        transform: affine ``(N, d, d+1)`` or displacement ``(N, d, *S)``.
        size: grid to evaluate on (needed for an affine).
    """
    return _jacobian(transform, size, "jacobian_matrix")

def jacobian_determinant(transform: Tensor, size: Sequence[int] | None = None) -> Tensor:
    """Determinant of :func:`jacobian_matrix`, ``(N, *S)``; <= 0 marks folding."""
    return torch.linalg.det(_jacobian(transform, size, "jacobian_determinant"))
