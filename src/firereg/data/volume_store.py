"""Loading, preprocessing and caching of the volumes a dataset reads.

Each (case, modality) is read and preprocessed once per process and kept in memory: registration
datasets are small (a few subjects), and every training step draws from them. A worker process
of a ``DataLoader`` fills its own cache on first use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from firereg.data.image import Image
from firereg.data.io import read_image, read_labels
from firereg.data.preprocessing import PreprocessConfig, Preprocessed, preprocess, resample_labels
from firereg.data.records import Case, CineCase

__all__ = ["ModelVolume", "VolumeStore", "slices_in_slabs"]


@dataclass(frozen=True)
class ModelVolume:
    """A case's modalities and labels on one model grid.

    Attributes:
        images: modality -> ``(1, *S)`` float32 in [-1, 1] (``(T, *S)`` for a cine).
        labels: ``(1, *S)`` int64 on the same grid, or None.
        affine: the model grid's 4x4 affine; native_affine / native_shape: the files' grid.
    """

    images: dict[str, Tensor]
    labels: Tensor | None
    affine: np.ndarray
    native_affine: np.ndarray
    native_shape: tuple[int, ...]


class VolumeStore:
    """Reads and preprocesses cases on demand, once per process."""

    def __init__(self, config: PreprocessConfig | None = None) -> None:
        self.config = config or PreprocessConfig()
        self._cache: dict[str, ModelVolume] = {}

    def brain(self, case: Case, modalities: tuple[str, ...]) -> ModelVolume:
        """All ``modalities`` of a brain case (co-registered files) and its labels, on one grid."""
        key = f"brain:{case.name}:{','.join(modalities)}"
        if key not in self._cache:
            missing = [m for m in modalities if m not in case.images]
            if missing:
                raise ValueError(f"{case.name}: no {', '.join(missing)} image (has "
                                 f"{', '.join(sorted(case.images))})")
            pre: dict[str, Preprocessed] = {m: preprocess(read_image(case.images[m], ndim=3),
                                                          self.config) for m in modalities}
            first = pre[modalities[0]]
            for m in modalities[1:]:
                if pre[m].shape != first.shape or not np.allclose(pre[m].image.affine,
                                                                  first.image.affine, atol=1e-4):
                    raise ValueError(f"{case.name}: {m} is not on the grid of {modalities[0]}; "
                                     "the modalities of a case must be co-registered")
            labels = None
            if case.labels is not None:
                labels = first.labels_to_model_grid(read_labels(case.labels, ndim=3))[0]
            self._cache[key] = ModelVolume(
                images={m: p.tensor()[0] for m, p in pre.items()}, labels=labels,
                affine=first.image.affine, native_affine=first.original_affine,
                native_shape=first.original_shape)
        return self._cache[key]

    def cine_slice(self, case: CineCase, z: int) -> ModelVolume:
        """Slice ``z`` of a cine as a 2D series ``(T, X, Y)`` on its own 2D model grid, with one
        intensity mapping for all phases; labels ``(T, X, Y)`` are 0 where a phase has none."""
        key = f"cine:{case.name}:{z}"
        if key not in self._cache:
            cine = read_image(case.cine, ndim=3, allow_series=True)
            if not 0 <= z < cine.spatial_shape[2]:
                raise ValueError(f"{case.cine}: slice {z} outside 0..{cine.spatial_shape[2] - 1}")
            shift = np.eye(4)
            shift[2, 3] = z
            affine = cine.affine @ shift
            series = Image(cine.data[:, :, z, :], affine, ndim=2, source=str(case.cine))
            pre = preprocess(series, self.config)
            frames = pre.tensor()[:, 0]  # (T, X, Y)
            labels = torch.zeros(frames.shape, dtype=torch.int64)
            for t, path in case.frame_labels.items():
                gt = read_labels(path, ndim=3)
                plane = Image(gt.data[:, :, z], affine, ndim=2, source=str(path))
                labels[t] = resample_labels(plane.tensor(torch.int64), plane.spatial_shape, affine,
                                            pre.shape, pre.image.affine)[0, 0]
            self._cache[key] = ModelVolume(images={"cine": frames}, labels=labels,
                                           affine=pre.image.affine, native_affine=affine,
                                           native_shape=series.spatial_shape)
        return self._cache[key]

    def cine_volume(self, case: CineCase) -> ModelVolume:
        """The whole cine ``(T, *S)`` on a 3D model grid, labels ``(T, *S)`` (0 where none)."""
        key = f"cine3d:{case.name}"
        if key not in self._cache:
            cine = read_image(case.cine, ndim=3, allow_series=True)
            pre = preprocess(cine, self.config)
            frames = pre.tensor()[:, 0]
            labels = torch.zeros(frames.shape, dtype=torch.int64)
            for t, path in case.frame_labels.items():
                labels[t] = pre.labels_to_model_grid(read_labels(path, ndim=3))[0, 0]
            self._cache[key] = ModelVolume(images={"cine": frames}, labels=labels,
                                           affine=pre.image.affine, native_affine=cine.affine,
                                           native_shape=cine.spatial_shape)
        return self._cache[key]


def slices_in_slabs(volume: ModelVolume, slabs: list[tuple[int, int]] | None,
                    *, min_label_voxels: int = 1) -> list[int]:
    """Model-grid axial slices (axis 2) whose centre lies in one of the native ``slabs``.

    ``slabs`` are inclusive ranges of native voxel indices along the files' axis 2 (None: all).
    A slice also needs at least ``min_label_voxels`` labelled voxels when the volume has labels
    (or some image content otherwise), so empty slices above and below the head are skipped.
    """
    shape = next(iter(volume.images.values())).shape[1:]
    if len(shape) != 3:
        raise ValueError("slices_in_slabs: needs a 3D volume")
    to_native = np.linalg.inv(volume.native_affine) @ volume.affine
    centre = np.array([(shape[0] - 1) / 2, (shape[1] - 1) / 2, 0.0, 1.0])
    chosen = []
    for k in range(shape[2]):
        centre[2] = k
        z = (to_native @ centre)[2]
        if slabs is not None and not any(lo - 0.5 <= z <= hi + 0.5 for lo, hi in slabs):
            continue
        if volume.labels is not None:
            if int((volume.labels[0, :, :, k] > 0).sum()) < min_label_voxels:
                continue
        elif all(float(img[0, :, :, k].max()) <= -0.99 for img in volume.images.values()):
            continue
        chosen.append(k)
    return chosen


