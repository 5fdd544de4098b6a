"""An image in memory that keeps its place in the world."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

__all__ = ["Image", "normal_axis", "one_slice_layout"]


def normal_axis(affine: np.ndarray) -> int:
    """The world axis (0: R-L, 1: A-P, 2: S-I) nearest the normal of a 2D image's plane ``k = 0``.

    2 for an axial slice, 1 for a coronal one, 0 for a sagittal one; an oblique slice goes to the
    nearest. The small margin makes ties (a plane at 45 degrees) fall the same way for grids of
    one plane whose affines differ by rounding (an image and its model grid).
    """
    linear = np.asarray(affine, dtype=np.float64)[:3, :2]
    normal = np.abs(np.cross(linear[:, 0], linear[:, 1]))
    normal = normal / max(float(np.linalg.norm(normal)), 1e-300)
    if normal[2] >= max(normal[0], normal[1]) - 1e-6:
        return 2
    return 1 if normal[1] >= normal[0] - 1e-6 else 0


def one_slice_layout(data: np.ndarray, affine: np.ndarray, *,
                     axis: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A 2D image's ``(X, Y, ...)`` data and affine stored as a one-slice 3D volume, its slice axis
    at ``axis``, by default :func:`normal_axis` (a coronal slice as ``(X, 1, Y, ...)``, a sagittal
    one as ``(1, X, Y, ...)``, an axial one as ``(X, Y, 1, ...)``): the same world grid, which ITK
    reads in 3D."""
    axis = normal_axis(affine) if axis is None else axis
    columns = [0, 1]
    columns.insert(axis, 2)
    affine = np.asarray(affine, dtype=np.float64)[:, [*columns, 3]]
    return np.expand_dims(data, axis), affine


@dataclass(frozen=True)
class Image:
    """Voxel data with its voxel -> world (NIfTI, RAS+ millimetres) affine.

    Attributes:
        data: ``(X, Y)`` for 2D, ``(X, Y, Z)`` for 3D, with a trailing time axis ``T`` for a
            series (a cine). Spatial axes come first, in NIfTI voxel order ``(i, j, k)``.
        affine: ``(4, 4)`` float64 voxel -> world matrix. A 2D image is the plane ``k = 0``.
        ndim: number of spatial axes, 2 or 3.
        source: where it came from (a path), used in error messages.
    """

    data: np.ndarray
    affine: np.ndarray
    ndim: int
    source: str | None = None

    def __post_init__(self) -> None:
        affine = np.asarray(self.affine, dtype=np.float64)
        object.__setattr__(self, "affine", affine)
        where = self.source or "Image"
        if self.ndim not in (2, 3):
            raise ValueError(f"{where}: ndim must be 2 or 3, got {self.ndim}")
        if affine.shape != (4, 4) or not np.isfinite(affine).all():
            raise ValueError(f"{where}: the affine must be a finite 4x4 matrix")
        if self.data.ndim not in (self.ndim, self.ndim + 1):
            raise ValueError(f"{where}: a {self.ndim}D image needs {self.ndim} spatial axes and "
                             f"at most one time axis, got data of shape {self.data.shape}")

    @property
    def is_series(self) -> bool:
        """True when the data has a time axis after the spatial ones."""
        return self.data.ndim == self.ndim + 1

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.data.shape[: self.ndim])

    @property
    def num_frames(self) -> int:
        return int(self.data.shape[-1]) if self.is_series else 1

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size in mm along each spatial axis (lengths of the affine's columns)."""
        return tuple(float(np.linalg.norm(self.affine[:3, a])) for a in range(self.ndim))

    def frame(self, t: int) -> Image:
        """Frame ``t`` of a series as a still image."""
        if not self.is_series:
            raise ValueError(f"{self.source or 'Image'}: not a series")
        return replace(self, data=self.data[..., t])

    def with_data(self, data: np.ndarray) -> Image:
        """The same grid with other voxel values (same spatial shape)."""
        if tuple(data.shape[: self.ndim]) != self.spatial_shape:
            raise ValueError(f"{self.source or 'Image'}: new data {data.shape} does not fit the grid "
                             f"{self.spatial_shape}")
        return replace(self, data=data)

    def tensor(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """``(1, 1, *S)`` for a still image, ``(T, 1, *S)`` for a series (one batch item per frame)."""
        data = torch.as_tensor(np.ascontiguousarray(self.data))
        data = data.movedim(-1, 0).unsqueeze(1) if self.is_series else data[None, None]
        return data.to(dtype)
