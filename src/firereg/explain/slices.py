"""Which 2D planes the figures show: the image itself in 2D, three orthogonal slices in 3D.

In 3D the slices go through one point, chosen in this order of preference:

1. the centroid of the *labels of interest* (every voxel whose label is one of them);
2. without labels of interest (or none of them present), the centroid of the largest label region
   (the non-zero label value with the most voxels);
3. without labels, the intensity centre of mass of the image (intensities shifted so that the
   darkest voxel weighs 0).

Model grids are oriented RAS+ (:func:`firereg.data.preprocessing.preprocess`), so array axis 0
runs left -> right (sagittal slices cut it), axis 1 posterior -> anterior (coronal) and axis 2
inferior -> superior (axial).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["View", "SliceChoice", "choose_slices", "slice_centre", "take", "views_for", "PLANES_3D"]

# (name, the array axis a slice cuts) in the order the figures show them
PLANES_3D = (("axial", 2), ("coronal", 1), ("sagittal", 0))


@dataclass(frozen=True)
class View:
    """One 2D plane of a grid.

    Attributes:
        name: "axial", "coronal", "sagittal", or "image" for a 2D grid.
        axis: the array axis the slice cuts (None for a 2D grid).
        index: the slice index along ``axis`` on the image grid.
    """

    name: str
    axis: int | None = None
    index: int = 0

    @property
    def label(self) -> str:
        return self.name if self.axis is None else f"{self.name} slice {self.index}"

    def index_on(self, image_shape: Sequence[int], other_shape: Sequence[int]) -> int:
        """The index of the same plane on a grid of ``other_shape`` covering the same field of view
        (``align_corners`` convention: first and last voxel centres coincide), e.g. the feature grid."""
        if self.axis is None:
            return 0
        n, m = image_shape[self.axis], other_shape[self.axis]
        return int(round(self.index * (m - 1) / max(n - 1, 1)))


@dataclass(frozen=True)
class SliceChoice:
    """The point the 3D slices pass through, and why.

    Attributes:
        centre: voxel indices ``(i, j, k)`` (rounded) on the grid.
        how: a short account, for the report.
    """

    centre: tuple[int, ...]
    how: str


def slice_centre(shape: Sequence[int], *, labels: np.ndarray | None = None, image: np.ndarray | None = None,
                 labels_of_interest: Sequence[int] | None = None) -> SliceChoice:
    """The point through which the slices pass (see the module docstring for the rules)."""
    shape = tuple(int(s) for s in shape)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != shape:
            raise ValueError(f"slice_centre: labels of shape {labels.shape} on a grid {shape}")
        if labels_of_interest:
            wanted = sorted({int(v) for v in labels_of_interest})
            mask = np.isin(labels, wanted)
            if mask.any():
                return SliceChoice(_centroid(mask), f"centroid of label(s) {', '.join(map(str, wanted))}")
        values, counts = np.unique(labels[labels != 0], return_counts=True)
        if values.size:
            largest = int(values[np.argmax(counts)])
            how = f"centroid of the largest label region (label {largest})"
            if labels_of_interest:
                how += "; none of the labels of interest is present"
            return SliceChoice(_centroid(labels == largest), how)
    if image is not None:
        image = np.asarray(image, dtype=np.float64)
        weights = image - image.min()
        if weights.sum() > 0:
            return SliceChoice(_centroid(weights), "intensity centre of mass of the fixed image")
    return SliceChoice(tuple((s - 1) // 2 for s in shape), "centre of the grid")


def _centroid(weights: np.ndarray) -> tuple[int, ...]:
    w = np.asarray(weights, dtype=np.float64)
    total = w.sum()
    idx = np.indices(w.shape, dtype=np.float64)
    centre = [(idx[a] * w).sum() / total for a in range(w.ndim)]
    return tuple(int(min(max(round(c), 0), s - 1)) for c, s in zip(centre, w.shape, strict=True))


def views_for(ndim: int, choice: SliceChoice | None = None) -> list[View]:
    """The planes to draw: ``[View("image")]`` in 2D; axial, coronal and sagittal through
    ``choice.centre`` in 3D."""
    if ndim == 2:
        return [View("image")]
    if choice is None:
        raise ValueError("views_for: a 3D grid needs a SliceChoice")
    return [View(name, axis, choice.centre[axis]) for name, axis in PLANES_3D]


def choose_slices(shape: Sequence[int], *, labels: np.ndarray | None = None, image: np.ndarray | None = None,
                  labels_of_interest: Sequence[int] | None = None) -> tuple[list[View], SliceChoice | None]:
    """The views for a grid of ``shape`` (2D: the image; 3D: three slices through
    :func:`slice_centre`) and the choice made (None in 2D)."""
    if len(shape) == 2:
        return views_for(2), None
    choice = slice_centre(shape, labels=labels, image=image, labels_of_interest=labels_of_interest)
    return views_for(3, choice), choice


def take(volume: np.ndarray, view: View, *, image_shape: Sequence[int] | None = None) -> np.ndarray:
    """The 2D plane of ``volume`` (its last 2 or 3 axes spatial) for ``view``, as ``(..., H, W)``
    ready for ``imshow(origin="lower")``: the first remaining spatial axis runs left to right,
    the second bottom to top.

    ``image_shape``: the image grid the view's index refers to, when ``volume`` lives on another
    grid over the same field of view (the feature grid).
    """
    volume = np.asarray(volume)
    if view.axis is None:
        plane = volume
    else:
        first = volume.ndim - 3  # the first spatial axis
        index = view.index
        if image_shape is not None:
            index = view.index_on(image_shape, volume.shape[first:])
        plane = np.take(volume, index, axis=first + view.axis)
    return np.swapaxes(plane, -1, -2)
