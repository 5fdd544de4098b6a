"""Surface distances between masks: the 95th-percentile Hausdorff distance (HD95) in millimetres.

Definitions used here (the same for 2D and 3D, masks on one voxel grid):

* The **surface** of a mask is the set of its voxels that have at least one face neighbour (4- in
  2D, 6-connectivity in 3D) outside the mask; voxels on the edge of the array count as surface
  (the outside of the array is background).
* The **directed surface distances** ``d(A -> B)`` are, for every surface voxel of ``A``, the
  Euclidean distance in mm from its centre to the nearest surface voxel centre of ``B``, with the
  voxel size ``spacing`` along each array axis (anisotropic voxels are honoured; the grid is
  assumed to be orthogonal, as a voxel size per axis implies).
* **HD95** is the *larger of the two directed 95th percentiles*:
  ``max(P95(d(A -> B)), P95(d(B -> A)))``, with numpy's default (linear interpolation) percentile.
  This is MONAI's ``compute_hausdorff_distance(percentile=95)`` convention (DeepMind's
  ``surface-distance`` takes the same maximum but weights surface elements by their area). The
  other convention found in papers, the 95th percentile of the pooled distances of both
  directions, is not used; it is at most this one, up to percentile interpolation.

Empty masks: both empty gives ``0.0`` (nothing to disagree on, as :func:`firereg.evaluation.dice`
scores 1); exactly one empty gives ``inf`` (no surface to measure to). Averages over cases should
therefore report how many were infinite rather than average them in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

__all__ = ["surface_voxels", "directed_surface_distances", "hausdorff95_mm", "hausdorff95_per_label"]


def _as_mask(mask: ArrayLike, caller: str) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim not in (2, 3):
        raise ValueError(f"{caller}: expected a 2D or 3D mask, got shape {m.shape}")
    return m.astype(bool, copy=False)


def _spacing(spacing: Sequence[float], ndim: int, caller: str) -> tuple[float, ...]:
    s = tuple(float(v) for v in spacing)
    if len(s) != ndim or not all(np.isfinite(v) and v > 0 for v in s):
        raise ValueError(f"{caller}: spacing needs {ndim} positive voxel sizes in mm, got {tuple(spacing)}")
    return s


def surface_voxels(mask: ArrayLike) -> np.ndarray:
    """Boolean ``(*S)`` map of the surface voxels of a 2D or 3D mask (see the module docstring)."""
    m = _as_mask(mask, "surface_voxels")
    structure = ndimage.generate_binary_structure(m.ndim, 1)  # face neighbours
    return m & ~ndimage.binary_erosion(m, structure=structure, border_value=0)


def directed_surface_distances(a: ArrayLike, b: ArrayLike, spacing: Sequence[float]) -> np.ndarray:
    """Distances in mm from every surface voxel of ``a`` to the nearest surface voxel of ``b``.

    Args:
        a, b: boolean masks ``(*S)`` of one shape, 2D or 3D.
        spacing: voxel size in mm along each array axis.

    Returns:
        1D array, one entry per surface voxel of ``a`` (in C order); all ``inf`` when ``b`` is empty.
    """
    surf_a, surf_b = surface_voxels(a), surface_voxels(b)
    if surf_a.shape != surf_b.shape:
        raise ValueError(f"directed_surface_distances: masks differ in shape, {surf_a.shape} and "
                         f"{surf_b.shape}")
    sampling = _spacing(spacing, surf_a.ndim, "directed_surface_distances")
    if not surf_b.any():
        return np.full(int(surf_a.sum()), np.inf)
    to_b = ndimage.distance_transform_edt(~surf_b, sampling=sampling)
    return to_b[surf_a]


def hausdorff95_mm(a: ArrayLike, b: ArrayLike, spacing: Sequence[float]) -> float:
    """Symmetric 95th-percentile Hausdorff distance between the surfaces of two masks, in mm.

    ``max(P95(d(A -> B)), P95(d(B -> A)))`` over surface voxels (module docstring).

    Args:
        a, b: boolean (or 0/1) masks ``(*S)`` on one grid, 2D or 3D.
        spacing: voxel size in mm along each array axis, e.g. :attr:`firereg.data.Image.spacing`.

    Returns:
        The distance in mm; ``0.0`` when both masks are empty, ``inf`` when exactly one is.
    """
    a, b = _as_mask(a, "hausdorff95_mm"), _as_mask(b, "hausdorff95_mm")
    if a.shape != b.shape:
        raise ValueError(f"hausdorff95_mm: masks differ in shape, {a.shape} and {b.shape}")
    _spacing(spacing, a.ndim, "hausdorff95_mm")
    has_a, has_b = bool(a.any()), bool(b.any())
    if not has_a and not has_b:
        return 0.0
    if has_a != has_b:
        return float("inf")
    forward = directed_surface_distances(a, b, spacing)
    backward = directed_surface_distances(b, a, spacing)
    return float(max(np.percentile(forward, 95), np.percentile(backward, 95)))


def hausdorff95_per_label(
    a_labels: ArrayLike, b_labels: ArrayLike, labels: Iterable[int], spacing: Sequence[float]
) -> dict[int, float]:
    """:func:`hausdorff95_mm` of each label value between two integer label maps ``(*S)`` of one shape.

    A label absent from both maps scores ``0.0``; one present in only one map scores ``inf``.
    """
    a, b = np.asarray(a_labels), np.asarray(b_labels)
    if a.shape != b.shape:
        raise ValueError(f"hausdorff95_per_label: label maps differ in shape, {a.shape} and {b.shape}")
    return {int(k): hausdorff95_mm(a == k, b == k, spacing) for k in labels}
