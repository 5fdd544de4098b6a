"""Affine matrices (N, d, d+1) in normalized coordinates."""

from __future__ import annotations

import pytest
import torch

from firereg.spatial import (
    affine_grid,
    apply_affine,
    compose_affine,
    identity_affine,
    identity_grid,
    invert_affine,
    is_affine,
    to_homogeneous,
)

SIZES = {2: (5, 7), 3: (4, 5, 6)}
F64 = torch.float64


def _random_affine(n: int, ndim: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.eye(ndim, dtype=F64) + 0.3 * torch.randn(n, ndim, ndim, generator=g, dtype=F64)
    b = 0.2 * torch.randn(n, ndim, 1, generator=g, dtype=F64)
    return torch.cat([a, b], dim=-1)


def test_is_affine_shapes():
    assert is_affine(torch.zeros(1, 2, 3))
    assert is_affine(torch.zeros(4, 3, 4))
    assert not is_affine(torch.zeros(2, 3))
    assert not is_affine(torch.zeros(1, 2, 2))
    assert not is_affine(torch.zeros(1, 3, 3))
    assert not is_affine(torch.zeros(1, 4, 5))
    assert not is_affine(torch.zeros(1, 2, 5, 6))


@pytest.mark.parametrize("ndim", [2, 3])
def test_identity_affine(ndim):
    t = identity_affine(3, ndim, dtype=F64)
    assert t.shape == (3, ndim, ndim + 1) and t.dtype == F64
    assert torch.equal(t[..., :ndim], torch.eye(ndim, dtype=F64).expand(3, ndim, ndim))
    assert torch.equal(t[..., ndim], torch.zeros(3, ndim, dtype=F64))


@pytest.mark.parametrize("ndim", [2, 3])
def test_to_homogeneous(ndim):
    t = _random_affine(2, ndim)
    h = to_homogeneous(t)
    assert h.shape == (2, ndim + 1, ndim + 1)
    assert torch.equal(h[:, :ndim], t)
    last = torch.zeros(ndim + 1, dtype=F64)
    last[-1] = 1.0
    assert torch.equal(h[:, ndim], last.expand(2, ndim + 1))


@pytest.mark.parametrize("ndim", [2, 3])
def test_invert_affine_matches_homogeneous_inverse(ndim):
    t = _random_affine(3, ndim)
    inv = invert_affine(t)
    expected = torch.linalg.inv(to_homogeneous(t))[:, :ndim]
    torch.testing.assert_close(inv, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_compose_with_inverse_is_identity(ndim):
    t = _random_affine(2, ndim, seed=5)
    ident = identity_affine(2, ndim, dtype=F64)
    torch.testing.assert_close(compose_affine(t, invert_affine(t)), ident, rtol=0, atol=1e-12)
    torch.testing.assert_close(compose_affine(invert_affine(t), t), ident, rtol=0, atol=1e-12)
    size = SIZES[ndim]
    grid = affine_grid(compose_affine(t, invert_affine(t)), size)
    torch.testing.assert_close(grid, identity_grid(size, dtype=F64).expand_as(grid),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_compose_affine_order(ndim):
    # outer o inner applied to a point == outer(inner(p)), and == homogeneous product outer @ inner
    outer, inner = _random_affine(2, ndim, seed=1), _random_affine(2, ndim, seed=2)
    pts = torch.rand(2, 9, ndim, dtype=F64) * 2 - 1
    both = compose_affine(outer, inner)
    nested = apply_affine(outer, apply_affine(inner, pts))
    torch.testing.assert_close(apply_affine(both, pts), nested, rtol=0, atol=1e-12)
    torch.testing.assert_close(to_homogeneous(both), to_homogeneous(outer) @ to_homogeneous(inner),
                               rtol=0, atol=1e-12)
    # not commutative for these random matrices: a swapped implementation would fail here
    assert not torch.allclose(both, compose_affine(inner, outer))


@pytest.mark.parametrize("ndim", [2, 3])
def test_apply_affine_analytic(ndim):
    t = _random_affine(2, ndim, seed=3)
    pts = torch.rand(2, 4, 3, ndim, dtype=F64)
    out = apply_affine(t, pts)
    assert out.shape == pts.shape
    for n in range(2):
        expected = pts[n] @ t[n, :, :ndim].T + t[n, :, ndim]
        torch.testing.assert_close(out[n], expected, rtol=0, atol=1e-14)
    # points with batch 1 broadcast over the matrices
    out1 = apply_affine(t, pts[:1])
    torch.testing.assert_close(out1[1], pts[0] @ t[1, :, :ndim].T + t[1, :, ndim])


@pytest.mark.parametrize("ndim", [2, 3])
def test_affine_grid_analytic(ndim):
    size = SIZES[ndim]
    t = _random_affine(2, ndim, seed=4)
    grid = affine_grid(t, size)
    assert grid.shape == (2, *size, ndim) and grid.dtype == F64
    ident = identity_grid(size, dtype=F64)[0]
    for n in range(2):
        expected = ident @ t[n, :, :ndim].T + t[n, :, ndim]
        torch.testing.assert_close(grid[n], expected, rtol=0, atol=1e-14)
    torch.testing.assert_close(affine_grid(identity_affine(1, ndim, dtype=F64), size),
                               identity_grid(size, dtype=F64), rtol=0, atol=0)


@pytest.mark.parametrize("ndim", [2, 3])
def test_affine_grid_matches_torch_affine_grid(ndim):
    # torch's own affine_grid (align_corners=True) uses the same normalized convention
    size = SIZES[ndim]
    t = _random_affine(2, ndim, seed=6)
    ours = affine_grid(t, size)
    ref = torch.nn.functional.affine_grid(t, [2, 1, *size], align_corners=True)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "bad", [torch.zeros(1, 2, 2), torch.zeros(2, 3), torch.zeros(1, 4, 5), torch.zeros(1, 3, 3)]
)
def test_wrong_shaped_affine_raises(bad):
    for fn, args in [
        (to_homogeneous, (bad,)),
        (invert_affine, (bad,)),
        (compose_affine, (bad, identity_affine(1, 2))),
        (apply_affine, (bad, torch.zeros(1, 3, 2))),
        (affine_grid, (bad, (3, 4))),
    ]:
        with pytest.raises(ValueError, match=f"^{fn.__name__}:"):
            fn(*args)
    with pytest.raises(ValueError, match="^compose_affine:"):
        compose_affine(identity_affine(1, 2), bad)


def test_apply_affine_point_mismatch_raises():
    with pytest.raises(ValueError, match="^apply_affine:"):
        apply_affine(identity_affine(2, 2), torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="^apply_affine:"):
        apply_affine(identity_affine(2, 2), torch.zeros(3, 5, 2))


def test_affine_grid_size_mismatch_raises():
    with pytest.raises(ValueError, match="^affine_grid:"):
        affine_grid(identity_affine(1, 2), (3, 4, 5))
    with pytest.raises(ValueError, match="^affine_grid:"):
        affine_grid(identity_affine(1, 2), (5,))
