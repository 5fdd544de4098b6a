"""FIRE's transforms in world coordinates, as ITK and ANTs define them.

The network maps normalized coordinates of the *fixed model grid* to normalized coordinates of the
*moving model grid* (the grids :func:`firereg.data.preprocessing.preprocess` made). ITK transforms
map a fixed *physical point* to a moving physical point, in LPS millimetres (ITK's frame; NIfTI is
RAS, so x and y change sign). For ``phi = phi_af o phi_nr`` this gives

    T(x) = A (x + u(x))

with ``A`` a physical affine and ``u`` a displacement field in mm on the fixed image's own grid,
which is exactly what ANTs computes for ``transformlist=[warp, affine]`` (the first listed
transform is applied first to the fixed point). For 2D images, the physical space is two LPS
coordinates of the plane ``k = 0``: the first two (x, y) for an axial plane, as ITK reads a 2D
file; (x, z) for a coronal and (y, z) for a sagittal plane (:func:`plane_axes`). ITK cannot hold
those planes in 2D, so their transforms are exported in 3D (:func:`lift_affine`,
:func:`lift_displacement`): ``A`` maps the fixed plane onto the moving one, ``u`` lies in the
fixed plane, and ANTs applies them to the images read as one-slice volumes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from firereg.data.image import normal_axis
from firereg.spatial import sample_field
from firereg.spatial.frames import normalized_from_voxel, voxel_from_normalized

__all__ = ["Grid", "physical_from_voxel", "physical_affine", "physical_displacement",
           "sampling_points", "map_to_moving", "RAS_TO_LPS", "plane_axes", "exported_in_3d",
           "lift_affine", "lift_displacement"]

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Grid:
    """A voxel grid in the world: spatial ``shape`` and 4x4 NIfTI (RAS) ``affine``."""

    shape: tuple[int, ...]
    affine: np.ndarray

    @property
    def ndim(self) -> int:
        return len(self.shape)


def plane_axes(grid: Grid) -> list[int]:
    """The two LPS coordinates a 2D grid's physical points are given in: all but the one nearest
    its plane's normal (``[0, 1]`` for an axial plane, ``[0, 2]`` coronal, ``[1, 2]`` sagittal).
    Grids of one plane get the same pair; for an exactly axial, coronal or sagittal plane the
    coordinates are its own millimetres."""
    drop = normal_axis(grid.affine)
    return [a for a in range(3) if a != drop]


def exported_in_3d(*grids: Grid) -> bool:
    """Whether transforms between these grids are written as 3D ITK transforms: 2D grids whose
    planes are not all axial (ITK reads a 2D file in the first two LPS coordinates only)."""
    return any(g.ndim == 2 and normal_axis(g.affine) != 2 for g in grids)


def _lps_from_voxel(affine: np.ndarray) -> np.ndarray:
    lps = np.eye(4)
    lps[:3, :3] = RAS_TO_LPS
    return lps @ np.asarray(affine, dtype=np.float64)


def physical_from_voxel(grid: Grid) -> np.ndarray:
    """``(d+1, d+1)`` homogeneous matrix from voxel indices to ITK physical (LPS mm) points.

    3D: ``diag(-1, -1, 1) @ affine``. 2D: the :func:`plane_axes` LPS coordinates of the plane
    ``k = 0`` (the first two for an axial plane).
    """
    d = grid.ndim
    world = _lps_from_voxel(grid.affine)
    cols = list(range(d)) + [3]
    rows = (list(range(d)) if d == 3 else plane_axes(grid)) + [3]
    return world[np.ix_(rows, cols)]


def lift_affine(matrix: np.ndarray, fixed: Grid, moving: Grid) -> np.ndarray:
    """The 4x4 LPS affine that does in 3D what the 2D physical affine ``matrix`` does between the
    planes of the 2D grids ``fixed`` and ``moving``: a point of the fixed plane goes where
    ``matrix`` sends it, on the moving plane; a point off it keeps its distance, along the
    moving plane's normal."""
    voxel = np.linalg.inv(physical_from_voxel(moving)) @ matrix @ physical_from_voxel(fixed)
    thickness = [float(np.linalg.norm(np.asarray(g.affine)[:3, 2])) for g in (fixed, moving)]
    lifted = np.eye(4)
    lifted[np.ix_([0, 1, 3], [0, 1, 3])] = voxel
    lifted[2, 2] = thickness[0] / thickness[1]
    return _lps_from_voxel(moving.affine) @ lifted @ np.linalg.inv(_lps_from_voxel(fixed.affine))


def lift_displacement(field: np.ndarray, grid: Grid) -> np.ndarray:
    """A 2D grid's ``(*S, 2)`` physical displacements as ``(*S, 1, 3)`` LPS vectors in its plane,
    on the grid stored as a one-slice volume (its own affine, ``k = 0``)."""
    in_plane = _lps_from_voxel(grid.affine)[:3, :2] @ np.linalg.inv(physical_from_voxel(grid)[:2, :2])
    return (np.asarray(field, dtype=np.float64) @ in_plane.T)[:, :, None, :]


def _normalized_to_physical(grid: Grid) -> np.ndarray:
    return physical_from_voxel(grid) @ voxel_from_normalized(grid.shape).numpy()


def _physical_to_normalized(grid: Grid) -> np.ndarray:
    return normalized_from_voxel(grid.shape).numpy() @ np.linalg.inv(physical_from_voxel(grid))


def physical_affine(theta: Tensor | np.ndarray, fixed: Grid, moving: Grid) -> np.ndarray:
    """The ``(d+1, d+1)`` physical (LPS) affine of a normalized affine ``theta`` ``(d, d+1)``.

    ``theta`` maps normalized points of ``fixed`` to normalized points of ``moving``.
    """
    t = np.asarray(theta.detach().cpu() if isinstance(theta, Tensor) else theta, dtype=np.float64)
    d = fixed.ndim
    if t.shape != (d, d + 1):
        raise ValueError(f"physical_affine: expected one affine of shape ({d}, {d + 1}), got {t.shape}")
    hom = np.eye(d + 1)
    hom[:d] = t
    return _normalized_to_physical(moving) @ hom @ _physical_to_normalized(fixed)


def physical_displacement(displacement: Tensor, model_grid: Grid, target: Grid) -> np.ndarray:
    """Express a normalized displacement ``(1, d, *S)`` of ``model_grid`` in mm on ``target``.

    Returns ``(*target.shape, d)`` vectors in LPS millimetres: for each voxel ``x`` of ``target``,
    ``L u(n(x))`` where ``n(x)`` is ``x``'s normalized position in ``model_grid`` (border values
    repeated outside it) and ``L`` the linear part of normalized -> physical.
    """
    d = model_grid.ndim
    if displacement.dim() != d + 2 or displacement.shape[:2] != (1, d):
        raise ValueError(f"physical_displacement: expected (1, {d}, *S), got "
                         f"{tuple(displacement.shape)}")
    points = sampling_points(target, model_grid, dtype=displacement.dtype)
    u = sample_field(displacement, points)[0]  # (d, *target)
    linear = torch.as_tensor(_normalized_to_physical(model_grid)[:d, :d], dtype=u.dtype)
    return torch.einsum("ij,j...->...i", linear, u).numpy()


def sampling_points(target: Grid, source: Grid, *, dtype=torch.float32) -> Tensor:
    """Normalized coordinates in ``source`` of every voxel centre of ``target``: ``(1, *S_t, d)``
    (``grid_sample`` layout), the two grids placed by their affines."""
    d = target.ndim
    m = _physical_to_normalized(source) @ physical_from_voxel(target)
    axes = [torch.arange(s, dtype=torch.float64) for s in target.shape]
    mesh = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # (*S_t, d) voxel, array order
    m_t = torch.as_tensor(m)
    points = mesh @ m_t[:d, :d].T + m_t[:d, d]
    return points.unsqueeze(0).to(dtype)


def map_to_moving(theta: Tensor, displacement: Tensor, fixed_model: Grid, moving_model: Grid,
                  fixed: Grid, moving: Grid) -> Tensor:
    """Where each voxel of the original ``fixed`` grid lands in the original ``moving`` grid.

    Applies ``phi = theta o (id + u)`` (normalized, model grids) to the voxel centres of ``fixed``
    and returns the points in ``moving``'s normalized coordinates, ``(1, *fixed.shape, d)``, ready
    for ``grid_sample``: the one resampling from the original moving image to the original fixed
    grid, with no detour through the model grids.

    Args:
        theta: ``(1, d, d+1)``; displacement: ``(1, d, *S)`` on ``fixed_model`` (any resolution).
    """
    d = fixed.ndim
    points = sampling_points(fixed, fixed_model, dtype=torch.float64)
    u = sample_field(displacement.to(torch.float64), points).movedim(1, -1)
    t = theta.to(torch.float64)[0]
    moved = (points + u) @ t[:, :d].T + t[:, d]
    to_moving = torch.as_tensor(_physical_to_normalized(moving) @ _normalized_to_physical(moving_model))
    return moved @ to_moving[:d, :d].T + to_moving[:d, d]
