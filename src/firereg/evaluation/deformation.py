"""Regularity and inverse consistency of a registration's transform, in physical units.

Two kinds of transform are accepted, told apart by their type:

* a ``torch.Tensor`` is a **normalized sampling map** (:mod:`firereg.spatial.transform`): an affine
  ``(N, d, d+1)`` or a displacement ``(N, d, *S)`` that maps normalized coordinates of the
  *fixed* grid to normalized coordinates of the *moving* grid, components in ``grid_sample``
  order; this is what FIRE outputs (on its model grids);
* a ``numpy.ndarray`` ``(*S, d)`` is a **displacement in mm** on the fixed grid, LPS components,
  ``T(x) = x + u(x)`` from a fixed physical point to a moving one: ITK/ANTs' convention, that of
  :attr:`firereg.inference.register_pair.PairResult.warp` and of the ANTs baselines' composed
  field.

Both go through one core: the points ``T(x)`` in mm for every voxel ``x`` of the fixed grid,
differentiated by central differences along the voxel axes (one-sided at the border) and turned
into the physical Jacobian ``dT/dx = (dT/dv) L^-1`` with ``L`` the fixed grid's voxel -> mm matrix.

**Normalized vs physical Jacobians.** A normalized map's Jacobian ``J_n`` and the physical one are
related by ``J = L_m J_n L_f^-1`` (``L_g``: normalized -> mm of grid ``g``), so
``det J = det J_n * det(L_m) / det(L_f)``: one constant factor per pair of grids. It is 1 for two
grids of the same shape, spacing and handedness, but not in general (the identity between grids
of different extents has ``det J_n != 1``). The factor is positive when both grids have the same
handedness, so folding (``det <= 0``) is the same in both units then, and the *standard
deviation* of ``log det`` never depends on it (a constant shift of the logarithm); the mean log
Jacobian and the determinant values themselves do. Pass the ``fixed`` and ``moving`` grids to get
physical determinants; without them the normalized determinant is used, which assumes the two
grids share a handedness (FIRE's model grids do).

For 2D grids the physical space is the first two LPS coordinates of the plane ``k = 0``, as in
:mod:`firereg.inference.world` and ITK.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from firereg.inference.world import Grid, physical_from_voxel
from firereg.spatial.affine import is_affine
from firereg.spatial.frames import normalized_from_voxel, voxel_from_normalized
from firereg.spatial.transform import check_transform, compose, grid_to_displacement, sampling_grid

__all__ = [
    "jacobian_determinant_mm",
    "folding_percent",
    "log_jacobian_std",
    "inverse_consistency_mm",
    "normalized_to_physical",
]


def normalized_to_physical(grid: Grid) -> np.ndarray:
    """``(d+1, d+1)`` homogeneous matrix from ``grid``'s normalized coordinates (``grid_sample``
    component order) to LPS mm (ITK's physical frame; the first two coordinates in 2D)."""
    return physical_from_voxel(grid) @ voxel_from_normalized(grid.shape).numpy()


def _linear(matrix: np.ndarray, d: int) -> Tensor:
    return torch.as_tensor(np.asarray(matrix, dtype=np.float64)[:d, :d])


def _checked_grid(grid: Grid, d: int, caller: str, role: str) -> Grid:
    if not isinstance(grid, Grid) or grid.ndim != d:
        raise ValueError(f"{caller}: {role} must be a {d}D Grid, got {grid!r}")
    linear = _linear(physical_from_voxel(grid), d)
    if abs(float(torch.linalg.det(linear))) < 1e-12:
        raise ValueError(f"{caller}: the {role} grid's voxel -> physical matrix is singular (for 2D, "
                         "the image plane must not be perpendicular to the LPS x-y plane)")
    return grid


def _det_from_points(points: Tensor, voxel_to_mm: Tensor, caller: str) -> Tensor:
    """Core: ``det(dT/dx)`` from mapped points ``(N, *S, d)`` in mm on a grid with voxel -> mm
    linear part ``voxel_to_mm`` ``(d, d)`` (both in the same physical basis). Returns ``(N, *S)``."""
    spatial = points.shape[1:-1]
    d = len(spatial)
    if any(n < 2 for n in spatial):
        raise ValueError(f"{caller}: every axis needs 2 or more voxels, got {tuple(spatial)}")
    columns = [torch.gradient(points, dim=1 + a, edge_order=1)[0] for a in range(d)]  # d T / d v_a
    d_t_dv = torch.stack(columns, dim=-1)  # (N, *S, d component, d voxel axis)
    return torch.linalg.det(d_t_dv) / torch.linalg.det(voxel_to_mm.to(points.dtype))


def _det_of_normalized(transform: Tensor, fixed: Grid | None, moving: Grid | None, caller: str) -> Tensor:
    check_transform(transform, caller)
    d = transform.shape[1]
    if (fixed is None) != (moving is None):
        raise ValueError(f"{caller}: give both the fixed and the moving grid, or neither")
    if fixed is None:
        if is_affine(transform):
            raise ValueError(f"{caller}: an affine transform needs the fixed and moving grids")
        # normalized units: the "physical" frame is the normalized frame itself (identical grids)
        grid = sampling_grid(transform.double())  # (N, *S, d) normalized moving points
        voxel_to_normalized = normalized_from_voxel(grid.shape[1:-1])[:d, :d]
        return _det_from_points(grid, voxel_to_normalized, caller)
    _checked_grid(fixed, d, caller, "fixed")
    _checked_grid(moving, d, caller, "moving")
    grid = sampling_grid(transform.double(), fixed.shape)  # (N, *S_fixed, d), moving normalized
    to_mm = torch.as_tensor(normalized_to_physical(moving))
    points = grid @ to_mm[:d, :d].T + to_mm[:d, d]
    return _det_from_points(points, _linear(physical_from_voxel(fixed), d), caller)


def _det_of_displacement_mm(displacement: np.ndarray, fixed: Grid | None, moving: Grid | None,
                            caller: str) -> Tensor:
    if fixed is None or moving is not None:
        raise ValueError(f"{caller}: a displacement in mm needs the fixed grid it lives on (and no "
                         "moving grid)")
    d = fixed.ndim
    u = torch.as_tensor(np.asarray(displacement, dtype=np.float64))
    if tuple(u.shape) != (*fixed.shape, d):
        raise ValueError(f"{caller}: expected a displacement of shape {(*fixed.shape, d)} on the fixed "
                         f"grid, got {tuple(u.shape)}")
    _checked_grid(fixed, d, caller, "fixed")
    m = torch.as_tensor(physical_from_voxel(fixed))
    axes = [torch.arange(s, dtype=torch.float64) for s in fixed.shape]
    voxels = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # (*S, d) array-axis order
    points = voxels @ m[:d, :d].T + m[:d, d] + u
    return _det_from_points(points.unsqueeze(0), m[:d, :d], caller)


def jacobian_determinant_mm(
    transform: Tensor | np.ndarray, fixed: Grid | None = None, moving: Grid | None = None
) -> Tensor:
    """Determinant of the physical Jacobian ``dT/dx`` at every voxel of the fixed grid, ``(N, *S)``.

    Args:
        transform: a normalized sampling map (``Tensor``, affine ``(N, d, d+1)`` or displacement
            ``(N, d, *S)``), or a displacement in mm (``ndarray`` ``(*S, d)``, LPS, on ``fixed``);
            see the module docstring.
        fixed, moving: for a normalized map, both grids (then the result is in physical units and
            evaluated on ``fixed.shape``; an affine needs them) or neither (normalized units, on
            the displacement's own grid). For a displacement in mm, ``fixed`` only; ``N`` is 1.

    Returns:
        float64 ``(N, *S)``; ``<= 0`` marks folding.
    """
    caller = "jacobian_determinant_mm"
    if isinstance(transform, Tensor):
        return _det_of_normalized(transform, fixed, moving, caller)
    if isinstance(transform, np.ndarray):
        return _det_of_displacement_mm(transform, fixed, moving, caller)
    raise ValueError(f"{caller}: expected a torch.Tensor (normalized map) or a numpy.ndarray "
                     f"(displacement in mm), got {type(transform).__name__}")


def folding_percent(
    transform: Tensor | np.ndarray, fixed: Grid | None = None, moving: Grid | None = None
) -> float:
    """Percentage (0-100) of voxels whose Jacobian determinant is ``<= 0`` (or NaN).

    Arguments as :func:`jacobian_determinant_mm`. Pooled over the batch.
    """
    det = jacobian_determinant_mm(transform, fixed, moving)
    return float((~(det > 0)).double().mean() * 100.0)


def log_jacobian_std(
    transform: Tensor | np.ndarray, fixed: Grid | None = None, moving: Grid | None = None
) -> float:
    """Standard deviation (population, ``ddof=0``) of ``log det J`` over the voxels with ``det J > 0``.

    Folded voxels (``det <= 0``, exactly those counted by :func:`folding_percent`) have no
    logarithm and are left out, so report both numbers together. ``nan`` when every voxel is
    folded. Independent of the units of the map (a constant factor on ``det J`` shifts ``log``);
    0 for any affine map. Arguments as :func:`jacobian_determinant_mm`; pooled over the batch.
    """
    det = jacobian_determinant_mm(transform, fixed, moving)
    valid = det[det > 0]
    valid = valid[torch.isfinite(valid)]
    if valid.numel() == 0:
        return float("nan")
    return float(valid.log().std(correction=0))


def inverse_consistency_mm(phi_ab: Tensor, phi_ba: Tensor, grid: Grid) -> float:
    """Mean ``||phi_BA(phi_AB(x)) - x||`` in mm over the voxels ``x`` of the fixed grid ``grid``.

    Args:
        phi_ab: normalized sampling map fixed -> moving (affine ``(N, d, d+1)`` or displacement
            ``(N, d, *S)``); phi_ba: moving -> fixed, so that the round trip lands in ``grid``'s
            normalized coordinates.
        grid: the fixed grid (FIRE: the fixed *model* grid); its normalized -> mm matrix turns the
            round-trip error into millimetres (exact for any shape, spacing and orientation).

    Returns:
        The mean Euclidean error in mm, pooled over the batch.
    """
    check_transform(phi_ab, "inverse_consistency_mm")
    check_transform(phi_ba, "inverse_consistency_mm")
    d = phi_ab.shape[1]
    _checked_grid(grid, d, "inverse_consistency_mm", "fixed")
    # two affines compose to an affine: evaluate either result on the grid
    points = sampling_grid(compose(phi_ba.double(), phi_ab.double(), grid.shape), grid.shape)
    round_trip = grid_to_displacement(points)  # (N, d, *S) normalized, on the fixed grid
    linear = _linear(normalized_to_physical(grid), d)
    mm = torch.einsum("ij,nj...->ni...", linear, round_trip)
    return float(mm.pow(2).sum(dim=1).sqrt().mean())
