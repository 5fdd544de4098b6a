"""Held-out individuals without labels: pairs under known random transforms, NCC and endpoint error.

With ``kind: individual`` an experiment reads one held-out individual's T1
(:mod:`firereg.data.sources.individuals`, or a folder with ``t1.nii.gz``), **resampled onto the
model grid** (isotropic at the model's spacing, RAS+ axes, :func:`~firereg.data.preprocessing.model_grid`;
linear for the image, label-aware for the mask). 2D: the axial slices of that grid through the
brain (a slice is kept when its mask area is at least half the largest slice's for a brain mask,
80% for a head mask); 3D: the volume. The scoring mask is the source's brain mask where it ships
one, else a **head mask** (the image above 10% of its 99th percentile, opened by one voxel, largest
connected component, holes filled).

Pairs are made by ``cases.py`` exactly as for the brain kind (the test protocol's random
transform ``j`` of image ``i``, :func:`~firereg.data.augmentation.sample_params` /
:func:`~firereg.data.augmentation.apply`): moving = the image under the transform (its mask moved
with it, label-aware), fixed = the untransformed image. The mask travels as the cases' label map
(value 1), so Dice of the mask is scored too.

**The known transform.** ``apply`` samples the moving image as ``moving(p) = fixed(phi(p))`` with
``phi(p) = A (p + u(p)) + b`` in normalized coordinates of the image grid. A registration returns
``T``: fixed point -> moving point (LPS mm, ITK's convention), which should satisfy
``moving(T(x)) = fixed(x)``, so the true ``T`` is ``phi^-1``. :func:`known_fixed_to_moving`
inverts ``phi`` by fixed-point iteration, ``p <- A^-1 (x - b) - u(p)`` (it converges because the
protocol bounds ``|grad u|`` well below 1), and returns the points in LPS mm.

**Scores** (:func:`individual_scores`), on the fixed grid inside the fixed image's mask:

* ``ncc``: normalized cross-correlation (Pearson) of the moving image warped by the method's
  whole transform (linear interpolation, the same resampling for every method) and the fixed
  image, i.e. the ground-truth aligned image; 1 for a perfect recovery up to interpolation;
* ``endpoint_error_mm``: mean ``|| T_method(x) - T_true(x) ||`` in mm over the mask voxels ``x``,
  both maps fixed point -> moving point in LPS mm (ANTs: its affine and warp composed by
  ``antsApplyTransforms``; FIRE: ``A (x + u(x))``, ``runner.fire_displacement``);
* ``known_displacement_mm``: mean ``|| T_true(x) - x ||`` over the mask: what no registration
  (``unaligned``, ``T = id``) scores as endpoint error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from firereg.data.image import Image
from firereg.inference.world import Grid, physical_from_voxel

__all__ = ["HEAD_THRESHOLD", "INVERSE_ITERATIONS", "head_mask", "individual_root", "individual_images",
           "known_fixed_to_moving", "warp_by_displacement", "ncc", "endpoint_error_mm",
           "individual_scores", "case_truth"]

HEAD_THRESHOLD = 0.1
"""Head mask: voxels above this fraction of the image's 99th percentile (then cleaned)."""
INVERSE_ITERATIONS = 60
_MIN_SLICE_FRACTION = {"brain mask": 0.5, "head mask": 0.8}
"""A 2D slice is kept when its mask area is at least this fraction of the largest slice's (a head
mask's low slices are neck and face, hence the higher bar)."""


# --- the images --------------------------------------------------------------------------------

def individual_root(name_or_folder: str, data_root: str | None = None) -> Path:
    """The folder of one individual: ``<data_root or the prepared heldout_individuals>/<name>``, or
    ``name_or_folder`` itself when it is a folder holding ``t1.nii.gz``."""
    from firereg.data.sources.individuals import individuals_dataset_dir

    folder = Path(name_or_folder).expanduser()
    if (folder / "t1.nii.gz").is_file():
        return folder
    base = Path(data_root).expanduser() if data_root else individuals_dataset_dir()
    candidate = base / name_or_folder
    if (candidate / "t1.nii.gz").is_file():
        return candidate
    raise ValueError(f"individual: {name_or_folder!r} is neither a folder with t1.nii.gz nor an "
                     f"individual in {base}; run `firereg data prepare` (it builds heldout_individuals)")


def head_mask(data: np.ndarray) -> np.ndarray:
    """A head mask of a T1 with head: ``data > HEAD_THRESHOLD * P99``, the largest connected
    component after a one-voxel opening, holes filled (slice by slice along the last axis, then in
    3D). bool, same shape."""
    from scipy import ndimage

    data = np.asarray(data, dtype=np.float64)
    threshold = HEAD_THRESHOLD * float(np.percentile(data, 99))
    mask = ndimage.binary_opening(data > threshold)
    labelled, count = ndimage.label(mask)
    if count > 1:
        sizes = ndimage.sum(mask, labelled, index=np.arange(1, count + 1))
        mask = labelled == 1 + int(np.argmax(sizes))
    if mask.ndim == 3:
        for k in range(mask.shape[2]):
            mask[:, :, k] = ndimage.binary_fill_holes(mask[:, :, k])
    return ndimage.binary_fill_holes(mask)


def _on_model_grid(t1: Image, mask: Image, spacing: float) -> tuple[Image, Image]:
    from firereg.data.preprocessing import PreprocessConfig, model_grid, resample_image, resample_labels

    shape, affine = model_grid(t1, PreprocessConfig(spacing=spacing, multiple=1, min_size=2))
    image = resample_image(t1.tensor(torch.float32), t1.spatial_shape, t1.affine, shape, affine)
    labels = resample_labels(mask.tensor(torch.int64), mask.spatial_shape, mask.affine, shape, affine)
    return (Image(image[0, 0].numpy().astype(np.float32), affine, 3, source=t1.source),
            Image(labels[0, 0].numpy().astype(np.int32), affine, 3, source=mask.source))


def individual_images(config, spacing: float | None):
    """The source images of a ``kind: individual`` experiment and their :class:`DataInfo`
    (module docstring). ``spacing``: the model grid's, in mm (the config's or the model card's)."""
    from firereg.data.io import read_image, read_labels
    from firereg.evaluation.cases import DataInfo, SourceImage, _slice

    if spacing is None:
        raise ValueError(f"{config.name}: kind individual resamples the image onto the model grid; set "
                         "spacing in the config (no FIRE model gives one)")
    root = individual_root(config.individual, config.data_root)
    t1 = read_image(root / "t1.nii.gz", ndim=3)
    mask_path = root / "brain_mask.nii.gz"
    if mask_path.is_file():
        mask, which = read_labels(mask_path, ndim=3), "brain mask"
        mask = mask.with_data((mask.data > 0).astype(np.int32))
    else:
        mask, which = t1.with_data(head_mask(t1.data).astype(np.int32)), "head mask"
    image, labels = _on_model_grid(t1, mask, float(spacing))
    name = root.name
    images = []
    if config.dims == 3:
        images.append(SourceImage(name, image, image, labels, labels, {"mask": which}))
    else:
        areas = (labels.data > 0).sum(axis=(0, 1))
        for k in np.flatnonzero(areas >= _MIN_SLICE_FRACTION[which] * areas.max()):
            k = int(k)
            fixed, fixed_labels = _slice(image, k), _slice(labels, k)
            images.append(SourceImage(f"{name}_k{k:03d}", fixed, fixed, fixed_labels, fixed_labels,
                                      {"k": k, "mask": which}))
    shape = "x".join(str(s) for s in image.spatial_shape)
    cut = "axial slices" if config.dims == 2 else "the volume"
    what = (f"a real held-out individual ({name}: T1 with head, no labels) resampled onto the model "
            f"grid ({shape} at {float(spacing):g} mm), {cut}; "
            "moving = the image under synthetic random affine + non-rigid transforms (§4.1), fixed = the "
            f"same image untransformed; scored by NCC against the fixed image and endpoint error "
            f"against the known transform, inside the {which}")
    return images, DataInfo(f"heldout_individuals/{name}", str(root), False, True, what)


# --- the known transform and the scores --------------------------------------------------------

def _voxel_points_mm(grid: Grid) -> np.ndarray:
    """``(*S, d)`` LPS mm of every voxel centre of ``grid``."""
    d = grid.ndim
    m = physical_from_voxel(grid)
    axes = [np.arange(s, dtype=np.float64) for s in grid.shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1) @ m[:d, :d].T + m[:d, d]


def known_fixed_to_moving(params, grid: Grid,
                          iterations: int = INVERSE_ITERATIONS) -> tuple[np.ndarray, float]:
    """The true map fixed point -> moving point of a protocol transform, on ``grid``.

    Args:
        params: the :class:`~firereg.data.augmentation.TransformParams` that made the moving image
            (``apply`` on this grid).
        grid: the image grid (moving and fixed share it).

    Returns:
        ``(points, residual)``: ``(*S, d)`` LPS mm, ``phi^-1`` at every voxel centre, and the
        largest remaining ``|phi(points) - x|`` in mm (the inversion's accuracy).
    """
    from dataclasses import replace

    from firereg.data.augmentation import params_to_transform
    from firereg.spatial.frames import normalized_from_voxel, voxel_from_normalized

    d = grid.ndim
    size = tuple(grid.shape)
    eye = torch.zeros(d, d + 1, dtype=torch.float64)
    eye[:, :d] = torch.eye(d, dtype=torch.float64)
    u = params_to_transform(replace(params, affine=eye), size, dtype=torch.float64)  # (1, d, *S)
    a = params.affine.to(torch.float64)
    axes = [torch.arange(s, dtype=torch.float64) for s in size]
    voxels = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # (*S, d) array order
    n = torch.as_tensor(normalized_from_voxel(size).numpy())
    x = voxels @ n[:d, :d].T + n[:d, d]  # normalized, grid_sample order
    z = (x - a[:, d]) @ torch.linalg.inv(a[:, :d]).T  # p + u(p) = A^-1 (x - b)

    def u_at(points: torch.Tensor) -> torch.Tensor:
        sampled = F.grid_sample(u, points.unsqueeze(0), mode="bilinear", padding_mode="border",
                                align_corners=True)[0]
        return sampled.movedim(0, -1)

    p = z.clone()
    for _ in range(iterations):
        p = z - u_at(p)
    to_mm = physical_from_voxel(grid) @ voxel_from_normalized(size).numpy()
    linear = to_mm[:d, :d]
    residual = ((p + u_at(p) - z) @ a[:, :d].T).numpy() @ linear.T
    points = p.numpy() @ linear.T + to_mm[:d, d]
    return points, float(np.linalg.norm(residual, axis=-1).max())


def warp_by_displacement(moving: Image, fixed_grid: Grid, displacement: np.ndarray) -> np.ndarray:
    """The moving image read at ``x + u(x)`` for every voxel ``x`` of ``fixed_grid`` (linear, 0
    outside). ``displacement``: ``(*S_fixed, d)`` LPS mm. Returns ``(*S_fixed)`` float64."""
    from firereg.spatial.frames import normalized_from_voxel

    d = fixed_grid.ndim
    points = _voxel_points_mm(fixed_grid) + np.asarray(displacement, dtype=np.float64)
    moving_grid = Grid(moving.spatial_shape, moving.affine)
    to_normalized = normalized_from_voxel(moving_grid.shape).numpy() @ np.linalg.inv(
        physical_from_voxel(moving_grid))
    normalized = points @ to_normalized[:d, :d].T + to_normalized[:d, d]
    sampled = F.grid_sample(moving.tensor(torch.float64), torch.as_tensor(normalized).unsqueeze(0),
                            mode="bilinear", padding_mode="zeros", align_corners=True)
    return sampled[0, 0].numpy()


def ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Pearson correlation of two images over ``mask`` (all voxels when None); 0 when one is flat."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if mask is not None:
        a, b = a[mask], b[mask]
    a, b = a - a.mean(), b - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def endpoint_error_mm(displacement: np.ndarray, truth: np.ndarray, grid: Grid,
                      mask: np.ndarray | None = None) -> float:
    """Mean ``|| x + u(x) - truth(x) ||`` in mm over ``mask`` (all voxels when None).

    Args:
        displacement: a method's ``(*S, d)`` LPS mm displacement on ``grid`` (``T(x) = x + u(x)``).
        truth: ``(*S, d)`` LPS mm, the true moving point of every voxel (:func:`known_fixed_to_moving`).
    """
    error = np.linalg.norm(_voxel_points_mm(grid) + np.asarray(displacement, np.float64) - truth, axis=-1)
    return float(error[mask].mean() if mask is not None else error.mean())


def individual_scores(case, displacement: np.ndarray, truth: tuple[np.ndarray, float]) -> dict[str, Any]:
    """NCC, endpoint error and the known displacement of one method on one case (module docstring).

    Args:
        case: an :class:`~firereg.evaluation.cases.EvalCase` of kind individual (mask = its labels).
        displacement: the method's whole transform, ``(*S_fixed, d)`` LPS mm.
        truth: :func:`known_fixed_to_moving` of the case's transform on the fixed grid.
    """
    grid = Grid(case.fixed.spatial_shape, case.fixed.affine)
    mask = np.asarray(case.fixed_labels.data) > 0
    points, residual = truth
    warped = warp_by_displacement(case.moving, grid, displacement)
    zero = np.zeros_like(points)
    return {"ncc": ncc(warped, case.fixed.data, mask),
            "endpoint_error_mm": endpoint_error_mm(displacement, points, grid, mask),
            "known_displacement_mm": endpoint_error_mm(zero, points, grid, mask),
            "inverse_residual_mm": residual}


def case_truth(case) -> tuple[np.ndarray, float]:
    """:func:`known_fixed_to_moving` of a case's transform (``meta["transform"]``) on its grid."""
    from firereg.data.augmentation import TransformParams

    params = TransformParams.from_dict(case.meta["transform"])
    return known_fixed_to_moving(params, Grid(case.fixed.spatial_shape, case.fixed.affine))
