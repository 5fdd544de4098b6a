"""Preprocessing as in §4.1, with its exact inverse.

``preprocess`` puts an image on a *model grid*: oriented RAS+, isotropic spacing (1.28 mm by
default, as in the paper), a shape divisible by 4 (the encoder downsamples twice), centred on the
original field of view, with intensities mapped robustly to [-1, 1]. Orientation, spacing and
crop/pad are one resampling through world coordinates (:func:`firereg.spatial.grid_to_grid_affine`),
so nothing is interpolated twice, and the same matrices map any result back to the original grid
(:meth:`Preprocessed.to_original`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import torch
from torch import Tensor

from firereg.data.image import Image
from firereg.spatial import grid_to_grid_affine, warp, warp_labels

__all__ = [
    "PreprocessConfig",
    "Preprocessed",
    "preprocess",
    "model_grid",
    "resample_image",
    "resample_labels",
    "canonical_directions",
    "MAX_MODEL_VOXELS",
]

# The largest model grid a registration builds (e.g. 320^3 voxels). The network's features take
# hundreds of bytes per voxel, so a bigger grid (a typo in --spacing, say) is refused before
# anything is allocated rather than running out of memory.
MAX_MODEL_VOXELS = 2**25


@dataclass(frozen=True)
class PreprocessConfig:
    """Settings of :func:`preprocess`.

    Attributes:
        spacing: isotropic voxel size of the model grid in mm (paper: 1.28).
        multiple: every model-grid size is a multiple of this (4: two stride-2 convolutions).
        min_size: smallest model-grid size per axis (20, :data:`firereg.model.MIN_SIZE`).
        shape: a fixed model-grid shape (cropped or padded about the centre), or None for the
            smallest multiple of ``multiple`` that covers the field of view.
        percentiles: intensities at these percentiles map to -1 and +1; values beyond are clipped.
        orient: reorient to the closest RAS+ axes first (no interpolation of its own).
    """

    spacing: float = 1.28
    multiple: int = 4
    min_size: int = 20
    shape: tuple[int, ...] | None = None
    percentiles: tuple[float, float] = (0.5, 99.5)
    orient: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.spacing, int | float) and math.isfinite(self.spacing)
                and self.spacing > 0):
            raise ValueError(f"PreprocessConfig.spacing must be a positive number of mm, got "
                             f"{self.spacing!r}")
        if not isinstance(self.multiple, int) or self.multiple < 1:
            raise ValueError(f"PreprocessConfig.multiple must be a positive int, got {self.multiple!r}")
        if self.shape is not None:
            shape = tuple(int(s) for s in self.shape)
            object.__setattr__(self, "shape", shape)
            if any(s % self.multiple or s < self.min_size for s in shape):
                raise ValueError(f"PreprocessConfig.shape must hold multiples of {self.multiple} "
                                 f"of at least {self.min_size}, got {shape}")
        lo, hi = self.percentiles
        if not 0.0 <= lo < hi <= 100.0:
            raise ValueError(f"PreprocessConfig.percentiles must satisfy 0 <= lo < hi <= 100, got "
                             f"{self.percentiles!r}")


def canonical_directions(affine: np.ndarray, ndim: int) -> np.ndarray:
    """Unit direction (4x4, no scaling) of the closest RAS+ axis order of ``affine``'s grid.

    Returns a 4x4 whose first ``ndim`` columns are the image's own axis directions (oblique ones
    stay oblique), permuted and flipped so that each points along +R, +A or +S as closely as
    possible. For 2D the third column is the slice normal.
    """
    linear = affine[:3, :3]
    unit = linear / np.linalg.norm(linear, axis=0, keepdims=True)
    if ndim == 2:
        # keep the slice normal last: orient only the in-plane axes
        normal = np.cross(unit[:, 0], unit[:, 1])
        unit = np.stack([unit[:, 0], unit[:, 1], normal], axis=1)
        ornt = nib.orientations.io_orientation(np.block([[unit, np.zeros((3, 1))],
                                                         [np.zeros((1, 3)), np.ones((1, 1))]]))
        in_plane = sorted(range(2), key=lambda a: int(ornt[a, 0]))
        cols = [unit[:, a] * (1 if ornt[a, 1] > 0 else -1) for a in in_plane]
        normal = np.cross(cols[0], cols[1])
        out = np.stack([cols[0], cols[1], normal], axis=1)
    else:
        ornt = nib.orientations.io_orientation(affine)
        out = np.zeros((3, 3))
        for axis in range(3):
            target, flip = int(ornt[axis, 0]), ornt[axis, 1]
            out[:, target] = unit[:, axis] * flip
    result = np.eye(4)
    result[:3, :3] = out
    return result


def model_grid(image: Image, config: PreprocessConfig) -> tuple[tuple[int, ...], np.ndarray]:
    """Shape and 4x4 affine of the model grid for ``image`` (see :class:`PreprocessConfig`).

    The grid is isotropic at ``config.spacing`` mm, has ``image``'s axis directions (RAS+ order
    when ``config.orient``), and shares the centre of ``image``'s field of view.
    """
    d = image.ndim
    shape = np.asarray(image.spatial_shape)
    directions = canonical_directions(image.affine, d) if config.orient else _own_directions(image)
    # extent of the field of view along each original axis, in mm, mapped onto the new axes
    extent_world = np.abs(directions[:3, :3].T @ (image.affine[:3, :d] @ np.diag(shape)))
    extent = extent_world.sum(axis=1)[:d]
    if config.shape is not None:
        if len(config.shape) != d:
            raise ValueError(f"{image.source or 'image'}: PreprocessConfig.shape {config.shape} is "
                             f"not {d}D")
        new_shape = np.asarray(config.shape)
    else:
        covering = np.maximum(np.round(extent / config.spacing - 1e-6), 1)
        new_shape = np.maximum(config.min_size,
                               np.ceil(covering / config.multiple) * config.multiple)
    voxels = float(np.prod(new_shape.astype(np.float64)))
    if voxels > MAX_MODEL_VOXELS:
        raise ValueError(f"{image.source or 'image'}: a model grid of shape "
                         f"{tuple(int(s) for s in new_shape)} at {config.spacing:g} mm would have "
                         f"{voxels:,.0f} voxels, more than the {MAX_MODEL_VOXELS:,} allowed; use a "
                         "larger spacing")
    new_shape = new_shape.astype(int)
    centre_voxel = np.append((shape - 1) / 2.0, [0.0] * (3 - d))
    centre_world = image.affine[:3, :3] @ centre_voxel + image.affine[:3, 3]
    affine = directions.copy()
    affine[:3, :d] *= config.spacing
    if d == 2:  # keep the plane's own slice thickness on the normal
        affine[:3, 2] *= float(np.linalg.norm(image.affine[:3, 2]))
    new_centre_voxel = np.append((new_shape - 1) / 2.0, [0.0] * (3 - d))
    affine[:3, 3] = centre_world - affine[:3, :3] @ new_centre_voxel
    return tuple(int(s) for s in new_shape), affine


def _own_directions(image: Image) -> np.ndarray:
    unit = image.affine[:3, :3] / np.linalg.norm(image.affine[:3, :3], axis=0, keepdims=True)
    out = np.eye(4)
    out[:3, :3] = unit
    return out


def _theta(src_shape, src_affine, dst_shape, dst_affine, dtype) -> Tensor:
    return grid_to_grid_affine(src_shape, src_affine, dst_shape, dst_affine).to(dtype)


def resample_image(data: Tensor, src_shape, src_affine, dst_shape, dst_affine) -> Tensor:
    """Linearly resample ``(N, C, *src_shape)`` onto another grid in world coordinates.

    Voxels of the destination outside the source field of view get 0.
    """
    theta = _theta(src_shape, src_affine, dst_shape, dst_affine, data.dtype)
    return warp(data, theta.expand(data.shape[0], -1, -1), size=dst_shape)


def resample_labels(labels: Tensor, src_shape, src_affine, dst_shape, dst_affine) -> Tensor:
    """Label-aware resampling of ``(N, 1, *src_shape)`` integer labels onto another grid."""
    theta = _theta(src_shape, src_affine, dst_shape, dst_affine, torch.float32)
    return warp_labels(labels, theta.expand(labels.shape[0], -1, -1), size=dst_shape)


@dataclass(frozen=True)
class Preprocessed:
    """An image on its model grid, with what is needed to go back.

    Attributes:
        image: the preprocessed image (float32 in [-1, 1]) on the model grid, with its affine.
        original_shape, original_affine: the input grid.
        intensity_range: the input intensities ``(lo, hi)`` that map to -1 and +1.
    """

    image: Image
    original_shape: tuple[int, ...]
    original_affine: np.ndarray
    intensity_range: tuple[float, float]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.image.spatial_shape

    def tensor(self) -> Tensor:
        """``(1, 1, *S)`` (still image) or ``(T, 1, *S)`` (series) float32 on the model grid."""
        return self.image.tensor()

    def labels_to_model_grid(self, labels: Image) -> Tensor:
        """Bring a label map of the original grid onto the model grid: ``(1 or T, 1, *S)`` int64."""
        if labels.spatial_shape != self.original_shape or not np.allclose(
                labels.affine, self.original_affine, atol=1e-4):
            raise ValueError(f"{labels.source or 'labels'}: the label map's grid "
                             f"{labels.spatial_shape} does not match its image's "
                             f"{self.original_shape} (shape or affine differ)")
        return resample_labels(labels.tensor(torch.int64), self.original_shape,
                               self.original_affine, self.shape, self.image.affine)

    def to_original(self, data: Tensor, *, labels: bool = False) -> Tensor:
        """Resample ``(N, C, *S)`` from the model grid back onto the original grid, in world
        coordinates: ``(N, C, *original_shape)``. Use ``labels=True`` for label maps."""
        fn = resample_labels if labels else resample_image
        return fn(data, self.shape, self.image.affine, self.original_shape, self.original_affine)

    def denormalize(self, data: Tensor) -> Tensor:
        """Map [-1, 1] intensities back to the input's range (exact for unclipped values)."""
        lo, hi = self.intensity_range
        return (data + 1.0) * 0.5 * (hi - lo) + lo


def _robust_range(data: np.ndarray, percentiles: tuple[float, float], where: str) -> tuple[float, float]:
    lo, hi = (float(v) for v in np.percentile(data, percentiles))
    if not hi > lo:
        lo, hi = float(data.min()), float(data.max())
    if not hi > lo:
        raise ValueError(f"{where}: the image is constant ({lo}); there is nothing to register")
    return lo, hi


def preprocess(image: Image, config: PreprocessConfig | None = None) -> Preprocessed:
    """Resample ``image`` onto its model grid and normalise it to [-1, 1] (§4.1).

    Series (cines) are resampled frame by frame on one grid with one intensity mapping.
    """
    config = config or PreprocessConfig()
    where = image.source or "image"
    lo, hi = _robust_range(np.asarray(image.data, dtype=np.float32), config.percentiles, where)
    shape, affine = model_grid(image, config)
    data = image.tensor(torch.float32)
    # normalise before resampling so that the outside of the field of view becomes -1
    data = ((data - lo) / (hi - lo) * 2.0 - 1.0).clamp(-1.0, 1.0) + 1.0
    resampled = resample_image(data, image.spatial_shape, image.affine, shape, affine) - 1.0
    array = resampled[:, 0].movedim(0, -1).numpy() if image.is_series else resampled[0, 0].numpy()
    out = Image(data=np.ascontiguousarray(array, dtype=np.float32), affine=affine, ndim=image.ndim,
                source=image.source)
    return Preprocessed(image=out, original_shape=image.spatial_shape,
                        original_affine=image.affine.copy(), intensity_range=(lo, hi))
