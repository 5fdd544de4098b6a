"""Coordinate frames: voxel indices, normalized [-1, 1] coordinates and world millimetres.

Conventions (DESIGN.md, "Conventions"):

* **voxel** coordinates are indices in *array-axis order*: for a tensor ``(N, C, X, Y, Z)`` read
  from NIfTI, a voxel point is ``(i, j, k)`` along ``(X, Y, Z)``.
* **normalized** coordinates lie in ``[-1, 1]`` with ``align_corners=True`` (-1 and +1 are the
  centres of the first and last voxels) and list their components in the order
  :func:`torch.nn.functional.grid_sample` reads them, which is the *reverse* of the array axes:
  component 0 runs along the last spatial axis.
* **world** coordinates are millimetres in the NIfTI (RAS+) frame, always 3 components, reached
  from voxels through the image's 4x4 NIfTI affine. A 2D image is the plane ``k = 0`` of it.

All matrices are homogeneous: a map from a ``p``-D frame to a ``q``-D frame is ``(q+1, p+1)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "identity_grid",
    "normalized_from_voxel",
    "voxel_from_normalized",
    "world_from_voxel",
    "voxel_from_world",
    "world_from_normalized",
    "normalized_from_world",
    "transform_points",
]


def _check_size(size: Sequence[int], caller: str) -> tuple[int, ...]:
    size = tuple(int(s) for s in size)
    if len(size) not in (2, 3) or any(s < 1 for s in size):
        raise ValueError(f"{caller}: expected a 2D or 3D spatial size of positive ints, got {size}")
    return size


def identity_grid(
    size: Sequence[int],
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Normalized coordinates of every voxel centre of a grid.

    Args:
        size: spatial size ``(*S)`` in array-axis order, 2 or 3 entries.

    Returns:
        ``(1, *S, ndim)`` sampling grid in the layout ``grid_sample`` expects (components reversed
        with respect to the array axes), with ``align_corners=True`` semantics.
    """
    size = _check_size(size, "identity_grid")
    axes = [torch.linspace(-1.0, 1.0, s, dtype=dtype, device=device) if s > 1
            else torch.full((1,), -1.0, dtype=dtype, device=device) for s in size]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack(mesh[::-1], dim=-1).unsqueeze(0)


def normalized_from_voxel(
    size: Sequence[int], *, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Homogeneous ``(ndim+1, ndim+1)`` matrix from voxel indices to normalized coordinates.

    ``n_c = 2 v_a / (S_a - 1) - 1`` with ``a = ndim - 1 - c`` (component order reversed). An axis of
    size 1 maps its only index 0 to -1, as :func:`identity_grid` does.
    """
    size = _check_size(size, "normalized_from_voxel")
    ndim = len(size)
    m = torch.zeros(ndim + 1, ndim + 1, dtype=dtype)
    for c in range(ndim):
        a = ndim - 1 - c
        m[c, a] = 2.0 / max(size[a] - 1, 1)
        m[c, ndim] = -1.0
    m[ndim, ndim] = 1.0
    return m


def voxel_from_normalized(
    size: Sequence[int], *, dtype: torch.dtype = torch.float64
) -> Tensor:
    """Inverse of :func:`normalized_from_voxel`, ``(ndim+1, ndim+1)``."""
    return torch.linalg.inv(normalized_from_voxel(size, dtype=dtype))


def _nifti_affine(affine: Tensor | Sequence, caller: str) -> Tensor:
    a = torch.as_tensor(affine, dtype=torch.float64)
    if a.shape != (4, 4):
        raise ValueError(f"{caller}: expected a 4x4 NIfTI affine, got shape {tuple(a.shape)}")
    if not torch.isfinite(a).all():
        raise ValueError(f"{caller}: the NIfTI affine holds non-finite values")
    return a


def _world_from_voxel(affine: Tensor | Sequence, ndim: int, caller: str) -> Tensor:
    a = _nifti_affine(affine, caller)
    if ndim == 3:
        return a.clone()
    if ndim == 2:
        return a[:, [0, 1, 3]].clone()
    raise ValueError(f"{caller}: ndim must be 2 or 3, got {ndim}")


def world_from_voxel(affine: Tensor | Sequence, ndim: int) -> Tensor:
    """Homogeneous ``(4, ndim+1)`` matrix from voxel indices to world millimetres.

    For ``ndim == 3`` it is the NIfTI affine itself. For ``ndim == 2`` the image is the slice
    ``k = 0`` of the affine, so the third voxel column drops out.
    """
    return _world_from_voxel(affine, ndim, "world_from_voxel")


def _voxel_from_world(affine: Tensor | Sequence, ndim: int, caller: str) -> Tensor:
    w = _world_from_voxel(affine, ndim, caller)
    linear, offset = w[:3, :ndim], w[:3, ndim]
    inv_linear = torch.linalg.pinv(linear)  # (ndim, 3)
    m = torch.zeros(ndim + 1, 4, dtype=w.dtype)
    m[:ndim, :3] = inv_linear
    m[:ndim, 3] = -inv_linear @ offset
    m[ndim, 3] = 1.0
    return m


def voxel_from_world(affine: Tensor | Sequence, ndim: int) -> Tensor:
    """Homogeneous ``(ndim+1, 4)`` matrix from world millimetres to voxel indices.

    Exact inverse for 3D. For 2D it is the least-squares projection onto the image plane, exact for
    points that lie in the plane.
    """
    return _voxel_from_world(affine, ndim, "voxel_from_world")


def world_from_normalized(affine: Tensor | Sequence, size: Sequence[int]) -> Tensor:
    """Homogeneous ``(4, ndim+1)`` matrix from normalized coordinates to world millimetres."""
    size = _check_size(size, "world_from_normalized")
    return _world_from_voxel(affine, len(size), "world_from_normalized") @ voxel_from_normalized(size)


def normalized_from_world(affine: Tensor | Sequence, size: Sequence[int]) -> Tensor:
    """Homogeneous ``(ndim+1, 4)`` matrix from world millimetres to normalized coordinates."""
    size = _check_size(size, "normalized_from_world")
    return normalized_from_voxel(size) @ _voxel_from_world(affine, len(size), "normalized_from_world")


def transform_points(matrix: Tensor, points: Tensor) -> Tensor:
    """Apply a homogeneous ``(q+1, p+1)`` matrix to points ``(..., p)``, giving ``(..., q)``."""
    p = matrix.shape[-1] - 1
    if points.shape[-1] != p:
        raise ValueError(
            f"transform_points: matrix {tuple(matrix.shape)} maps {p}-D points, "
            f"got points of shape {tuple(points.shape)}"
        )
    matrix = matrix.to(points.dtype)
    return points @ matrix[:-1, :p].transpose(-1, -2) + matrix[:-1, p]
