"""Surface distances and deformation metrics against analytic values."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from firereg.evaluation import (
    folding_percent,
    hausdorff95_mm,
    hausdorff95_per_label,
    inverse_consistency_mm,
    jacobian_determinant_mm,
    log_jacobian_std,
)
from firereg.evaluation.deformation import normalized_to_physical
from firereg.inference.world import Grid
from firereg.spatial import identity_grid, invert_affine


def _ball(shape, spacing, radius_mm, centre_mm):
    axes = [np.arange(n) * s for n, s in zip(shape, spacing, strict=True)]
    mesh = np.meshgrid(*axes, indexing="ij")
    return sum((m - c) ** 2 for m, c in zip(mesh, centre_mm, strict=True)) <= radius_mm**2


def _grid(shape, spacing, rotation=None, origin=(0.0, 0.0, 0.0)):
    affine = np.eye(4)
    linear = np.diag(list(spacing) + [1.0] * (3 - len(spacing)))
    affine[:3, :3] = (rotation if rotation is not None else np.eye(3)) @ linear
    affine[:3, 3] = origin
    return Grid(tuple(shape), affine)


def _map_along_last_axis(slopes, rows):
    """Normalized displacement (1, 2, rows, N) whose component 0 (last axis) has the given slopes
    between neighbouring columns (in normalized units per column); component 1 is the identity."""
    n = len(slopes) + 1
    x = np.concatenate([[-1.0], -1.0 + np.cumsum(slopes)])
    ident = identity_grid((rows, n), dtype=torch.float64)  # (1, rows, n, 2)
    grid = ident.clone()
    grid[..., 0] = torch.as_tensor(x)[None, None, :]
    return (grid - ident).movedim(-1, 1)


# --- HD95 ---------------------------------------------------------------------------------------


def test_hd95_of_concentric_discs_is_the_radius_gap_in_mm_with_anisotropic_voxels():
    spacing = (0.5, 0.8)
    shape = (80, 50)
    centre = (20.0, 20.0)
    inner, outer = _ball(shape, spacing, 8.0, centre), _ball(shape, spacing, 12.0, centre)
    hd = hausdorff95_mm(inner, outer, spacing)
    assert hd == pytest.approx(4.0, abs=max(spacing))
    # ignoring the spacing (1 mm voxels) would be far off
    assert abs(hausdorff95_mm(inner, outer, (1.0, 1.0)) - 4.0) > 1.0
    assert hausdorff95_mm(outer, inner, spacing) == hd  # symmetric


def test_hd95_of_concentric_spheres():
    spacing = (1.0, 0.75, 1.5)
    shape = (32, 40, 24)
    centre = (16.0, 15.0, 17.0)
    hd = hausdorff95_mm(_ball(shape, spacing, 6.0, centre), _ball(shape, spacing, 10.0, centre), spacing)
    assert hd == pytest.approx(4.0, abs=max(spacing))


@pytest.mark.parametrize("axis", [0, 1])
def test_hd95_of_a_shifted_square_is_the_shift_in_mm(axis):
    spacing = (0.7, 1.6)
    a = np.zeros((40, 40), bool)
    a[10:26, 12:28] = True
    b = np.roll(a, 3, axis=axis)
    assert hausdorff95_mm(a, b, spacing) == pytest.approx(3 * spacing[axis])


def test_hd95_conventions_identical_and_empty():
    a = np.zeros((10, 12, 8), bool)
    a[2:6, 3:9, 1:5] = True
    empty = np.zeros_like(a)
    assert hausdorff95_mm(a, a, (1.0, 2.0, 3.0)) == 0.0
    assert hausdorff95_mm(empty, empty, (1.0, 1.0, 1.0)) == 0.0
    assert hausdorff95_mm(a, empty, (1.0, 1.0, 1.0)) == math.inf
    assert hausdorff95_mm(empty, a, (1.0, 1.0, 1.0)) == math.inf


def test_hd95_per_label():
    a = np.zeros((30, 30), np.int32)
    a[5:15, 5:15] = 1
    a[20:25, 20:25] = 2
    b = a.copy()
    b[b == 1] = 0
    b[7:17, 5:15] = 1  # label 1 shifted by 2 voxels along axis 0
    b[b == 2] = 0  # label 2 only in a
    scores = hausdorff95_per_label(a, b, [1, 2, 3], spacing=(0.5, 1.0))
    assert scores == {1: pytest.approx(1.0), 2: math.inf, 3: 0.0}


def test_hd95_refuses_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        hausdorff95_mm(np.ones((3, 3)), np.ones((3, 4)), (1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        hausdorff95_mm(np.ones((3, 3)), np.ones((3, 3)), (1.0,))
    with pytest.raises(ValueError, match="spacing"):
        hausdorff95_mm(np.ones((3, 3)), np.ones((3, 3)), (1.0, 0.0))


# --- Jacobian determinant, folding, log-Jacobian spread ----------------------------------------


def test_identity_has_no_folding_and_no_log_jacobian_spread():
    zero = torch.zeros(1, 3, 6, 7, 8, dtype=torch.float64)
    grid = _grid((6, 7, 8), (1.0, 2.0, 0.5), Rotation.from_euler("z", 30, degrees=True).as_matrix())
    assert folding_percent(zero) == 0.0
    assert folding_percent(zero, grid, grid) == 0.0
    assert log_jacobian_std(zero) == pytest.approx(0.0, abs=1e-12)
    assert log_jacobian_std(zero, grid, grid) == pytest.approx(0.0, abs=1e-12)
    assert jacobian_determinant_mm(zero, grid, grid) == pytest.approx(torch.ones(1, 6, 7, 8))


def test_normalized_identity_between_grids_of_other_extents_is_a_physical_scaling():
    fixed = _grid((20, 30), (1.0, 1.0))
    moving = _grid((20, 30), (2.0, 3.0))  # same shape, larger voxels: 6x the area
    zero = torch.zeros(1, 2, 20, 30, dtype=torch.float64)
    assert jacobian_determinant_mm(zero) == pytest.approx(torch.ones(1, 20, 30))
    assert jacobian_determinant_mm(zero, fixed, moving) == pytest.approx(torch.full((1, 20, 30), 6.0))
    # the map that reads each fixed point at the same physical point has det 1 everywhere
    to_moving = np.linalg.inv(normalized_to_physical(moving)) @ normalized_to_physical(fixed)
    theta = torch.as_tensor(to_moving[:2][None])
    assert jacobian_determinant_mm(theta, fixed, moving) == pytest.approx(torch.ones(1, 20, 30))
    # the spread of log det does not depend on the constant factor
    assert log_jacobian_std(zero, fixed, moving) == pytest.approx(0.0, abs=1e-12)


def test_folding_percent_of_a_reflected_band():
    n, rows = 41, 12
    h = 2.0 / (n - 1)
    slopes = np.full(n - 1, h)
    a, b = 10, 20
    slopes[a:b] = -2.0 * h  # the map runs backwards between columns a and b
    u = _map_along_last_axis(slopes, rows)
    # central differences are <= 0 at columns a..b inclusive
    expected = 100.0 * (b - a + 1) / n
    assert folding_percent(u) == pytest.approx(expected)
    grid = _grid((rows, n), (1.5, 0.8))
    assert folding_percent(u, grid, grid) == pytest.approx(expected)
    # the same map as a displacement in mm on the grid (ITK/ANTs style)
    to_mm = torch.as_tensor(normalized_to_physical(grid))
    points = (identity_grid((rows, n), dtype=torch.float64) + u.movedim(1, -1))[0]
    moved_mm = points @ to_mm[:2, :2].T + to_mm[:2, 2]
    ident_mm = identity_grid((rows, n), dtype=torch.float64)[0] @ to_mm[:2, :2].T + to_mm[:2, 2]
    assert folding_percent((moved_mm - ident_mm).numpy(), grid) == pytest.approx(expected)


def test_log_jacobian_std_of_an_affine_scaling_is_zero():
    grid = _grid((9, 10, 11), (1.0, 1.2, 0.9), Rotation.from_euler("xy", [10, 20], degrees=True).as_matrix())
    theta = torch.tensor([[[0.8, 0.1, 0.0, 0.05], [0.0, 1.3, 0.0, -0.1], [0.0, 0.0, 1.1, 0.0]]],
                         dtype=torch.float64)
    assert log_jacobian_std(theta, grid, grid) == pytest.approx(0.0, abs=1e-10)
    det = jacobian_determinant_mm(theta, grid, grid)
    assert det == pytest.approx(torch.full_like(det, 0.8 * 1.3 * 1.1))
    assert folding_percent(theta, grid, grid) == 0.0


def test_log_jacobian_std_of_two_stretches_and_of_a_folded_map():
    n, rows = 41, 8
    h = 2.0 / (n - 1)
    slopes = np.where(np.arange(n - 1) < 20, 2.0 * h, h)  # det 2 on the left, 1 on the right
    det = np.concatenate([[slopes[0]], (slopes[:-1] + slopes[1:]) / 2, [slopes[-1]]]) / h
    assert log_jacobian_std(_map_along_last_axis(slopes, rows)) == pytest.approx(np.log(det).std())
    # folded voxels are left out
    slopes[5:10] = -h
    det = np.concatenate([[slopes[0]], (slopes[:-1] + slopes[1:]) / 2, [slopes[-1]]]) / h
    u = _map_along_last_axis(slopes, rows)
    assert log_jacobian_std(u) == pytest.approx(np.log(det[det > 0]).std())
    assert folding_percent(u) == pytest.approx(100.0 * (det <= 0).mean())


def test_normalized_and_mm_routes_agree_on_an_oblique_grid():
    rotation = Rotation.from_euler("xyz", [15, -25, 40], degrees=True).as_matrix()
    grid = _grid((10, 12, 9), (0.9, 1.4, 2.0), rotation, origin=(3.0, -7.0, 11.0))
    g = torch.Generator().manual_seed(0)
    u = 0.05 * torch.randn(1, 3, 10, 12, 9, generator=g, dtype=torch.float64)
    to_mm = torch.as_tensor(normalized_to_physical(grid))
    ident = identity_grid(grid.shape, dtype=torch.float64)
    moved_mm = (ident + u.movedim(1, -1))[0] @ to_mm[:3, :3].T
    ident_mm = ident[0] @ to_mm[:3, :3].T
    det_n = jacobian_determinant_mm(u, grid, grid)
    det_mm = jacobian_determinant_mm((moved_mm - ident_mm).numpy(), grid)
    assert det_mm == pytest.approx(det_n, rel=1e-9)
    assert folding_percent(u, grid, grid) == folding_percent((moved_mm - ident_mm).numpy(), grid)
    assert jacobian_determinant_mm(np.zeros((*grid.shape, 3)), grid) == pytest.approx(
        torch.ones(1, *grid.shape))


def test_deformation_metrics_refuse_bad_inputs():
    zero = torch.zeros(1, 2, 5, 6)
    grid = _grid((5, 6), (1.0, 1.0))
    with pytest.raises(ValueError, match="both"):
        folding_percent(zero, grid)
    with pytest.raises(ValueError, match="grids"):
        folding_percent(torch.zeros(1, 2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        folding_percent(np.zeros((5, 7, 2)), grid)
    with pytest.raises(ValueError, match="fixed grid"):
        folding_percent(np.zeros((5, 6, 2)))
    with pytest.raises(ValueError, match="Tensor"):
        folding_percent([[0.0]])


# --- inverse consistency -----------------------------------------------------------------------


def test_an_affine_and_its_exact_inverse_are_inverse_consistent():
    grid = _grid((12, 16, 10), (1.0, 0.8, 2.0))
    theta = torch.tensor([[[0.9, 0.1, 0.0, 0.05], [-0.05, 1.1, 0.02, -0.1], [0.0, 0.03, 1.05, 0.2]]],
                         dtype=torch.float64)
    assert inverse_consistency_mm(theta, invert_affine(theta), grid) == pytest.approx(0.0, abs=1e-12)
    dense = (torch.nn.functional.affine_grid(theta, (1, 1, 12, 16, 10), align_corners=True)
             - identity_grid((12, 16, 10), dtype=torch.float64)).movedim(-1, 1)
    assert inverse_consistency_mm(dense, invert_affine(theta), grid) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("component", [0, 1])
def test_a_translation_twice_is_twice_the_shift_in_mm(component):
    shape, spacing = (20, 40), (2.0, 1.0)  # different extents per axis: 38 mm and 39 mm
    grid = _grid(shape, spacing, Rotation.from_euler("z", 30, degrees=True).as_matrix())
    t = 0.1
    theta = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=torch.float64)
    theta[0, component, 2] = t
    axis = 1 - component  # normalized component c runs along array axis d-1-c
    shift_mm = t * (shape[axis] - 1) / 2 * spacing[axis]
    assert inverse_consistency_mm(theta, theta, grid) == pytest.approx(2 * shift_mm)
