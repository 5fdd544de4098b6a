"""Coordinate frames: voxel indices <-> normalized [-1, 1] <-> world millimetres."""

from __future__ import annotations

import math

import pytest
import torch

from firereg.spatial import (
    identity_grid,
    normalized_from_voxel,
    normalized_from_world,
    transform_points,
    voxel_from_normalized,
    voxel_from_world,
    world_from_normalized,
    world_from_voxel,
)

SIZES = {2: (5, 7), 3: (4, 5, 6)}
F64 = torch.float64


def _random_nifti_affine(seed: int) -> torch.Tensor:
    """Oblique 4x4 NIfTI-like affine: random rotation (det +1), anisotropic spacing, offset."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=F64))
    q = q * torch.sign(torch.diagonal(r))  # unique QR, proper orthogonal up to the sign below
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    spacing = torch.tensor([0.7, 1.3, 2.9], dtype=F64)
    a = torch.eye(4, dtype=F64)
    a[:3, :3] = q * spacing  # column j scaled by the spacing of voxel axis j
    a[:3, 3] = torch.randn(3, generator=g, dtype=F64) * 50.0
    return a


def _voxel_indices(size) -> torch.Tensor:
    """(*S, ndim) voxel indices in array-axis order."""
    axes = [torch.arange(s, dtype=F64) for s in size]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


@pytest.mark.parametrize("ndim", [2, 3])
def test_identity_grid_is_normalized_from_voxel_of_indices(ndim):
    size = SIZES[ndim]
    grid = identity_grid(size, dtype=F64)
    assert grid.shape == (1, *size, ndim)
    expected = transform_points(normalized_from_voxel(size), _voxel_indices(size))
    torch.testing.assert_close(grid[0], expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize("ndim", [2, 3])
def test_identity_grid_components_are_reversed_axes(ndim):
    size = SIZES[ndim]
    grid = identity_grid(size, dtype=F64)[0]
    for c in range(ndim):
        a = ndim - 1 - c  # component c runs along array axis a
        line = torch.linspace(-1.0, 1.0, size[a], dtype=F64)
        shape = [1] * ndim
        shape[a] = size[a]
        torch.testing.assert_close(grid[..., c], line.reshape(shape).expand(size), rtol=0, atol=0)


@pytest.mark.parametrize("ndim", [2, 3])
def test_voxel_corners_map_to_minus_one_and_plus_one(ndim):
    size = SIZES[ndim]
    m = normalized_from_voxel(size)
    first = torch.zeros(ndim, dtype=F64)
    last = torch.tensor([s - 1 for s in size], dtype=F64)
    torch.testing.assert_close(transform_points(m, first), -torch.ones(ndim, dtype=F64))
    torch.testing.assert_close(transform_points(m, last), torch.ones(ndim, dtype=F64))
    # one voxel step along array axis a moves only normalized component ndim-1-a, by 2/(S-1)
    for a in range(ndim):
        step = torch.zeros(ndim, dtype=F64)
        step[a] = 1.0
        delta = transform_points(m, step) - transform_points(m, first)
        expected = torch.zeros(ndim, dtype=F64)
        expected[ndim - 1 - a] = 2.0 / (size[a] - 1)
        torch.testing.assert_close(delta, expected, rtol=0, atol=1e-15)


def test_size_one_axis_maps_to_minus_one():
    grid = identity_grid((1, 4), dtype=F64)
    assert torch.all(grid[..., 1] == -1.0)
    point = transform_points(normalized_from_voxel((1, 4)), torch.tensor([0.0, 3.0], dtype=F64))
    torch.testing.assert_close(point, torch.tensor([1.0, -1.0], dtype=F64))


@pytest.mark.parametrize("ndim", [2, 3])
def test_voxel_normalized_round_trip(ndim):
    size = SIZES[ndim]
    eye = torch.eye(ndim + 1, dtype=F64)
    torch.testing.assert_close(voxel_from_normalized(size) @ normalized_from_voxel(size), eye)
    torch.testing.assert_close(normalized_from_voxel(size) @ voxel_from_normalized(size), eye)
    pts = torch.rand(10, ndim, dtype=F64) * 2 - 1
    back = transform_points(normalized_from_voxel(size),
                            transform_points(voxel_from_normalized(size), pts))
    torch.testing.assert_close(back, pts, rtol=0, atol=1e-14)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_world_from_voxel_3d_is_the_nifti_affine_and_round_trips(seed):
    aff = _random_nifti_affine(seed)
    torch.testing.assert_close(world_from_voxel(aff, 3), aff, rtol=0, atol=0)
    vw = voxel_from_world(aff, 3)
    torch.testing.assert_close(vw @ aff, torch.eye(4, dtype=F64), rtol=0, atol=1e-12)
    vox = torch.rand(20, 3, dtype=F64) * 30
    world = transform_points(aff, vox)
    expected_world = vox @ aff[:3, :3].T + aff[:3, 3]
    torch.testing.assert_close(world, expected_world, rtol=0, atol=1e-12)
    torch.testing.assert_close(transform_points(vw, world), vox, rtol=0, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_world_from_voxel_2d_is_the_plane_k0(seed):
    aff = _random_nifti_affine(seed)
    w2 = world_from_voxel(aff, 2)
    assert w2.shape == (4, 3)
    ij = torch.rand(20, 2, dtype=F64) * 30
    ijk = torch.cat([ij, torch.zeros(20, 1, dtype=F64)], dim=-1)
    torch.testing.assert_close(transform_points(w2, ij), transform_points(aff, ijk),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_voxel_from_world_2d_exact_in_plane(seed):
    aff = _random_nifti_affine(seed)
    vw = voxel_from_world(aff, 2)
    assert vw.shape == (3, 4)
    torch.testing.assert_close(vw @ world_from_voxel(aff, 2), torch.eye(3, dtype=F64),
                               rtol=0, atol=1e-12)
    ij = torch.rand(20, 2, dtype=F64) * 30
    world = transform_points(world_from_voxel(aff, 2), ij)
    torch.testing.assert_close(transform_points(vw, world), ij, rtol=0, atol=1e-10)
    # an off-plane point projects orthogonally: moving along the plane normal does not change ij
    normal = torch.linalg.cross(aff[:3, 0], aff[:3, 1])
    torch.testing.assert_close(transform_points(vw, world + 7.5 * normal), ij, rtol=0, atol=1e-10)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_normalized_world_round_trip(ndim, seed):
    aff = _random_nifti_affine(seed)
    size = SIZES[ndim]
    wn = world_from_normalized(aff, size)
    nw = normalized_from_world(aff, size)
    assert wn.shape == (4, ndim + 1) and nw.shape == (ndim + 1, 4)
    torch.testing.assert_close(nw @ wn, torch.eye(ndim + 1, dtype=F64), rtol=0, atol=1e-12)
    # world of the identity grid == world of the voxel indices
    grid = identity_grid(size, dtype=F64)[0]
    torch.testing.assert_close(transform_points(wn, grid),
                               transform_points(world_from_voxel(aff, ndim), _voxel_indices(size)),
                               rtol=0, atol=1e-10)
    torch.testing.assert_close(transform_points(nw, transform_points(wn, grid)), grid,
                               rtol=0, atol=1e-12)
    if ndim == 3:
        torch.testing.assert_close(wn @ nw, torch.eye(4, dtype=F64), rtol=0, atol=1e-12)


def test_world_spacing_is_preserved():
    # the distance in mm between voxel centres one step apart along axis j is the spacing
    aff = _random_nifti_affine(3)
    w = world_from_voxel(aff, 3)
    o = transform_points(w, torch.zeros(3, dtype=F64))
    for j, sp in enumerate([0.7, 1.3, 2.9]):
        step = torch.zeros(3, dtype=F64)
        step[j] = 1.0
        assert math.isclose(torch.linalg.norm(transform_points(w, step) - o).item(), sp,
                            rel_tol=1e-12)


def test_transform_points_shape_mismatch():
    with pytest.raises(ValueError, match="^transform_points:"):
        transform_points(torch.eye(4, dtype=F64), torch.zeros(5, 2, dtype=F64))


@pytest.mark.parametrize("size", [(5,), (2, 3, 4, 5), (0, 3)])
def test_bad_sizes_raise(size):
    with pytest.raises(ValueError, match="^identity_grid:"):
        identity_grid(size)
    with pytest.raises(ValueError, match="^normalized_from_voxel:"):
        normalized_from_voxel(size)
    with pytest.raises(ValueError, match="^world_from_normalized:"):
        world_from_normalized(torch.eye(4), size)
    with pytest.raises(ValueError, match="^normalized_from_world:"):
        normalized_from_world(torch.eye(4), size)


def test_bad_nifti_affine_raises():
    with pytest.raises(ValueError, match="^world_from_voxel:"):
        world_from_voxel(torch.eye(3), 3)
    with pytest.raises(ValueError, match="^world_from_voxel:"):
        world_from_voxel(torch.full((4, 4), float("nan")), 3)
    with pytest.raises(ValueError, match="^world_from_voxel:"):
        world_from_voxel(torch.eye(4), 1)


@pytest.mark.parametrize(
    "fn,args",
    [
        (world_from_voxel, (3,)),
        (voxel_from_world, (3,)),
        (world_from_normalized, ((4, 5),)),
        (normalized_from_world, ((4, 5),)),
    ],
)
def test_bad_nifti_affine_error_names_the_called_function(fn, args):
    # the message should name the public function the caller used, not an internal helper
    with pytest.raises(ValueError, match=f"^{fn.__name__}:"):
        fn(torch.eye(3), *args)
