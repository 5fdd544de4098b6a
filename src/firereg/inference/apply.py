"""Apply written transforms (``warp.nii.gz`` + ``affine.mat``) to another image, as ANTs would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from firereg.data.image import Image
from firereg.data.io import read_displacement_field
from firereg.inference.itk_files import read_itk_affine
from firereg.inference.world import Grid, physical_from_voxel
from firereg.spatial import grid_to_displacement, warp_labels
from firereg.spatial.frames import normalized_from_voxel

__all__ = ["apply_transforms", "transform_files"]


def transform_files(folder: str | Path, *, inverse: bool = False) -> tuple[Path, Path]:
    """``(warp, affine)`` paths in a ``firereg register`` output folder, checked to exist."""
    folder = Path(folder)
    prefix = "inverse_" if inverse else ""
    warp, affine = folder / f"{prefix}warp.nii.gz", folder / f"{prefix}affine.mat"
    missing = [p.name for p in (warp, affine) if not p.exists()]
    if missing:
        raise ValueError(f"{folder}: not a firereg registration folder (missing {', '.join(missing)})")
    return warp, affine


def _physical_points(grid: Grid) -> torch.Tensor:
    """Physical (LPS) positions ``(*S, d)`` of every voxel centre of ``grid``."""
    d = grid.ndim
    m = torch.as_tensor(physical_from_voxel(grid))
    axes = [torch.arange(s, dtype=torch.float64) for s in grid.shape]
    mesh = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
    return mesh @ m[:d, :d].T + m[:d, d]


def _to_normalized(points: torch.Tensor, grid: Grid) -> torch.Tensor:
    d = grid.ndim
    m = torch.as_tensor(normalized_from_voxel(grid.shape).numpy() @ np.linalg.inv(physical_from_voxel(grid)))
    return points @ m[:d, :d].T + m[:d, d]


def apply_transforms(image: Image, reference: Image, warp_path: str | Path, affine_path: str | Path,
                     *, labels: bool = False) -> Image:
    """Resample ``image`` onto ``reference``'s grid through ``T(x) = A (x + u(x))``.

    ``u`` is read from ``warp_path`` (LPS mm, on its own grid, interpolated linearly at ``x``;
    zero outside it), ``A`` from ``affine_path``. Labels are resampled label-aware.

    2D images with 3D transforms (those of a pair whose planes are not both axial, see
    :func:`firereg.inference.world.exported_in_3d`) are resampled as one-slice volumes, as ANTs
    resamples the images read in 3D.
    """
    if image.ndim != reference.ndim:
        raise ValueError(f"{image.source or 'input'}: a {image.ndim}D image cannot be resampled onto "
                         f"the {reference.ndim}D reference {reference.source or ''}")
    field, field_affine = read_displacement_field(warp_path)
    if reference.ndim == 2 and field.shape[-1] == 3:
        def volume(im: Image) -> Image:
            return Image(im.data[:, :, None], im.affine, 3, source=im.source)

        out = _apply(volume(image), volume(reference), field, field_affine, warp_path, affine_path,
                     labels)
        return Image(out.data[:, :, 0], reference.affine, 2, source=image.source)
    return _apply(image, reference, field, field_affine, warp_path, affine_path, labels)


def _apply(image: Image, reference: Image, field: np.ndarray, field_affine: np.ndarray,
           warp_path: str | Path, affine_path: str | Path, labels: bool) -> Image:
    d = reference.ndim
    if field.shape[-1] != d:
        raise ValueError(f"{warp_path}: a {field.shape[-1]}D warp does not fit a {d}D reference")
    finite = np.isfinite(field)
    if not finite.all():  # it would write NaN voxels wherever it reaches
        raise ValueError(f"{warp_path}: the warp holds {int((~finite).sum()):,} NaN or infinite values "
                         "(of {:,}); it is broken, register again".format(field.size))
    matrix = read_itk_affine(affine_path)
    if matrix.shape != (d + 1, d + 1):
        raise ValueError(f"{affine_path}: a {matrix.shape[0] - 1}D affine does not fit a {d}D reference")
    ref_grid = Grid(reference.spatial_shape, reference.affine)
    field_grid = Grid(field.shape[:d], field_affine)
    x = _physical_points(ref_grid)  # (*S, d)
    u_field = torch.from_numpy(field.astype(np.float64)).movedim(-1, 0).unsqueeze(0)
    where = _to_normalized(x, field_grid).unsqueeze(0)
    u = F.grid_sample(u_field, where, align_corners=True, padding_mode="zeros")[0].movedim(0, -1)
    m = torch.as_tensor(matrix)
    moved = (x + u) @ m[:d, :d].T + m[:d, d]
    points = _to_normalized(moved, Grid(image.spatial_shape, image.affine)).unsqueeze(0)
    if labels:
        out = warp_labels(image.tensor(torch.int64), grid_to_displacement(points))[0, 0]
        data = out.numpy().astype(np.int32)
    else:
        out = F.grid_sample(image.tensor(torch.float64), points, align_corners=True)[0, 0]
        data = out.numpy().astype(np.float32)
    return Image(data, reference.affine, d, source=image.source)
