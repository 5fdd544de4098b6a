"""Transforms as sampling maps: grids, displacements and composition."""

from __future__ import annotations

import pytest
import torch

from firereg.spatial import (
    affine_grid,
    compose,
    displacement_to_grid,
    grid_to_displacement,
    identity_affine,
    identity_grid,
    invert_affine,
    sample_field,
    sampling_grid,
)

SIZES = {2: (6, 7), 3: (4, 5, 6)}
F64 = torch.float64


def _random_affine(n: int, ndim: int, seed: int = 0, scale: float = 0.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.eye(ndim, dtype=F64) + scale * torch.randn(n, ndim, ndim, generator=g, dtype=F64)
    b = 0.2 * torch.randn(n, ndim, 1, generator=g, dtype=F64)
    return torch.cat([a, b], dim=-1)


def _points(size) -> torch.Tensor:
    """(1, *S, d) identity grid in float64."""
    return identity_grid(size, dtype=F64)


def _linear_field(m: torch.Tensor, t: torch.Tensor, size) -> torch.Tensor:
    """Displacement u(p) = M p + t, (N, d, *S), for M (N, d, d), t (N, d)."""
    p = _points(size)  # (1, *S, d)
    n, d = m.shape[0], m.shape[1]
    flat = p.reshape(1, -1, d) @ m.transpose(1, 2) + t.unsqueeze(1)
    return flat.reshape(n, *size, d).movedim(-1, 1)


def _apply(m: torch.Tensor, t: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """M q + t for points (N, *P, d)."""
    n, d = m.shape[0], m.shape[1]
    return (pts.reshape(n, -1, d) @ m.transpose(1, 2) + t.unsqueeze(1)).reshape(pts.shape)


@pytest.mark.parametrize("ndim", [2, 3])
def test_displacement_grid_round_trip(ndim):
    size = SIZES[ndim]
    u = torch.randn(2, ndim, *size, dtype=F64) * 0.1
    grid = displacement_to_grid(u)
    assert grid.shape == (2, *size, ndim)
    torch.testing.assert_close(grid, _points(size) + u.movedim(1, -1), rtol=0, atol=0)
    torch.testing.assert_close(grid_to_displacement(grid), u, rtol=0, atol=1e-15)
    torch.testing.assert_close(displacement_to_grid(torch.zeros(1, ndim, *size, dtype=F64)),
                               _points(size), rtol=0, atol=0)


@pytest.mark.parametrize("ndim", [2, 3])
def test_sampling_grid_of_affine_and_displacement(ndim):
    size = SIZES[ndim]
    t = _random_affine(2, ndim)
    torch.testing.assert_close(sampling_grid(t, size), affine_grid(t, size), rtol=0, atol=0)
    u = torch.randn(2, ndim, *size, dtype=F64) * 0.1
    torch.testing.assert_close(sampling_grid(u), displacement_to_grid(u), rtol=0, atol=0)
    torch.testing.assert_close(sampling_grid(u, size), displacement_to_grid(u), rtol=0, atol=0)


@pytest.mark.parametrize("ndim", [2, 3])
def test_sampling_grid_resizes_a_linear_field_exactly(ndim):
    coarse = tuple(s - 1 for s in SIZES[ndim])
    fine = tuple(2 * s - 1 for s in SIZES[ndim])
    g = torch.Generator().manual_seed(1)
    m = 0.1 * torch.randn(1, ndim, ndim, generator=g, dtype=F64)
    t = 0.1 * torch.randn(1, ndim, generator=g, dtype=F64)
    grid = sampling_grid(_linear_field(m, t, coarse), fine)
    assert grid.shape == (1, *fine, ndim)
    p = _points(fine)
    torch.testing.assert_close(grid, p + _apply(m, t, p), rtol=0, atol=1e-12)


def test_sampling_grid_affine_needs_size():
    with pytest.raises(ValueError, match="^sampling_grid:"):
        sampling_grid(identity_affine(1, 2))


@pytest.mark.parametrize("ndim", [2, 3])
def test_sample_field_reads_linear_field_and_repeats_border(ndim):
    size = SIZES[ndim]
    g = torch.Generator().manual_seed(2)
    m = torch.randn(1, ndim, ndim, generator=g, dtype=F64)
    t = torch.randn(1, ndim, generator=g, dtype=F64)
    field = _linear_field(m, t, size)
    pshape = (3, 4, 2)[:ndim]
    pts = (torch.rand(1, *pshape, ndim, generator=g, dtype=F64) * 2 - 1) * 0.999
    out = sample_field(field, pts)
    assert out.shape == (1, ndim, *pshape)
    torch.testing.assert_close(out.movedim(1, -1), _apply(m, t, pts), rtol=0, atol=1e-12)
    # outside the field of view the border value is repeated (clamp the point to [-1, 1])
    far = pts * 3.0
    torch.testing.assert_close(sample_field(field, far).movedim(1, -1),
                               _apply(m, t, far.clamp(-1, 1)), rtol=0, atol=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_compose_affine_with_inverse(ndim):
    size = SIZES[ndim]
    t = _random_affine(2, ndim, seed=3)
    inv = invert_affine(t)
    both = compose(t, inv)
    assert both.shape == t.shape
    torch.testing.assert_close(both, identity_affine(2, ndim, dtype=F64), rtol=0, atol=1e-12)
    torch.testing.assert_close(sampling_grid(both, size), _points(size).expand(2, *size, ndim),
                               rtol=0, atol=1e-12)
    # same with the inverse given as a dense displacement field
    dense_inv = grid_to_displacement(affine_grid(inv, size))
    result = compose(t, dense_inv)
    assert result.shape == (2, ndim, *size)
    torch.testing.assert_close(result, torch.zeros_like(result), rtol=0, atol=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_compose_affine_outer_displacement_inner(ndim):
    # compose(theta, u)(p) = A (p + u(p)) + b, so the displacement is A(p+u)+b - p
    size = SIZES[ndim]
    t = _random_affine(2, ndim, seed=4)
    u = torch.randn(2, ndim, *size, dtype=F64) * 0.2
    out = compose(t, u)
    assert out.shape == (2, ndim, *size)
    q = _points(size) + u.movedim(1, -1)
    expected = _apply(t[..., :ndim], t[..., ndim], q) - _points(size)
    torch.testing.assert_close(out, expected.movedim(-1, 1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_compose_with_constant_outer_adds(ndim):
    # outer(q) = q + c everywhere (also outside: border padding), so outer o inner = p + u + c
    size = SIZES[ndim]
    c = torch.tensor([0.13, -0.27, 0.05][:ndim], dtype=F64)
    outer = c.reshape(1, ndim, *([1] * ndim)).expand(2, ndim, *size).clone()
    inner = torch.randn(2, ndim, *size, dtype=F64) * 0.5
    torch.testing.assert_close(compose(outer, inner), inner + outer, rtol=0, atol=1e-12)


@pytest.mark.parametrize("ndim,axis", [(2, 0), (2, 1), (3, 0), (3, 1), (3, 2)])
def test_compose_with_constant_integer_voxel_inner(ndim, axis):
    # inner = shift by 1 voxel along array axis `axis`: outer o inner = c + u(p + c), i.e.
    # on the interior, the outer field read one voxel further along that axis
    size = SIZES[ndim]
    comp = ndim - 1 - axis
    inner = torch.zeros(1, ndim, *size, dtype=F64)
    inner[:, comp] = 2.0 / (size[axis] - 1)
    outer = torch.randn(1, ndim, *size, dtype=F64) * 0.3
    out = compose(outer, inner)
    dim = 2 + axis
    n = size[axis]
    expected = inner.narrow(dim, 0, n - 1) + outer.narrow(dim, 1, n - 1)
    torch.testing.assert_close(out.narrow(dim, 0, n - 1), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_compose_displacement_outer_affine_inner_on_given_size(ndim):
    # outer u(q) = M q + t (linear, so linear interpolation reads it exactly inside the FOV);
    # inner a contracting affine keeps A p + b inside [-1, 1]. Then
    # compose(u, theta)(p) = (A p + b) + M (A p + b) + t on the requested grid.
    u_size = SIZES[ndim]
    out_size = tuple(s + 2 for s in SIZES[ndim])
    g = torch.Generator().manual_seed(5)
    m = 0.2 * torch.randn(1, ndim, ndim, generator=g, dtype=F64)
    t = 0.1 * torch.randn(1, ndim, generator=g, dtype=F64)
    outer = _linear_field(m, t, u_size)
    rot = torch.linalg.qr(torch.randn(ndim, ndim, generator=g, dtype=F64))[0]
    theta = torch.cat([0.5 * rot.unsqueeze(0), torch.full((1, ndim, 1), 0.05, dtype=F64)], dim=-1)
    out = compose(outer, theta, out_size)
    assert out.shape == (1, ndim, *out_size)
    q = affine_grid(theta, out_size)
    assert q.abs().max() < 1.0
    expected = q + _apply(m, t, q) - _points(out_size)
    torch.testing.assert_close(out, expected.movedim(-1, 1), rtol=0, atol=1e-12)
    # without a size, the result lives on the outer field's grid
    assert compose(outer, theta).shape == (1, ndim, *u_size)


@pytest.mark.parametrize("ndim", [2, 3])
def test_compose_two_displacements_with_resize(ndim):
    # inner on a coarse grid, result on a fine one: the inner (linear) field is resized exactly.
    # The inner map p + M1 p + t1 contracts (M1 ~ -0.3 I) so that it stays inside the FOV, where
    # the linear outer field is read exactly.
    fine = SIZES[ndim]
    coarse = tuple(s - 2 for s in fine)
    g = torch.Generator().manual_seed(6)
    m1 = -0.3 * torch.eye(ndim, dtype=F64) + 0.03 * torch.randn(1, ndim, ndim, generator=g,
                                                                 dtype=F64)
    t1 = 0.03 * torch.randn(1, ndim, generator=g, dtype=F64)
    m2 = 0.1 * torch.randn(1, ndim, ndim, generator=g, dtype=F64)
    t2 = 0.05 * torch.randn(1, ndim, generator=g, dtype=F64)
    inner = _linear_field(m1, t1, coarse)
    outer = _linear_field(m2, t2, fine)
    out = compose(outer, inner, fine)
    p = _points(fine)
    q = p + _apply(m1, t1, p)
    assert q.abs().max() < 1.0
    expected = q + _apply(m2, t2, q) - p
    torch.testing.assert_close(out, expected.movedim(-1, 1), rtol=0, atol=1e-12)


def test_compose_dimensionality_mismatch_raises():
    with pytest.raises(ValueError, match="^compose:"):
        compose(identity_affine(1, 2), identity_affine(1, 3))
    with pytest.raises(ValueError, match="^compose:"):
        compose(torch.zeros(1, 3, 4, 4, 4), identity_affine(1, 2))


@pytest.mark.parametrize(
    "bad", [torch.zeros(1, 2, 2), torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 5), torch.zeros(5)]
)
def test_bad_transform_raises(bad):
    with pytest.raises(ValueError, match="^compose:"):
        compose(bad, identity_affine(1, 2))
    with pytest.raises(ValueError, match="^compose:"):
        compose(identity_affine(1, 2), bad)
    with pytest.raises(ValueError, match="^sampling_grid:"):
        sampling_grid(bad, (4, 4))
