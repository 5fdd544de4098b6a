"""Jacobian matrix and determinant of transforms (central finite differences)."""

from __future__ import annotations

import math

import pytest
import torch

from firereg.spatial import (
    identity_affine,
    identity_grid,
    jacobian_determinant,
    jacobian_matrix,
)

SIZES = {2: (6, 7), 3: (4, 5, 6)}
F64 = torch.float64


def _random_affine(n, ndim, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.eye(ndim, dtype=F64) + 0.4 * torch.randn(n, ndim, ndim, generator=g, dtype=F64)
    b = 0.2 * torch.randn(n, ndim, 1, generator=g, dtype=F64)
    return torch.cat([a, b], dim=-1)


def _points(size):
    return identity_grid(size, dtype=F64)  # (1, *S, d)


@pytest.mark.parametrize("ndim", [2, 3])
def test_jacobian_of_affine_is_its_matrix(ndim):
    size = SIZES[ndim]
    theta = _random_affine(2, ndim, seed=ndim)
    jac = jacobian_matrix(theta, size)
    assert jac.shape == (2, *size, ndim, ndim)
    # entry [..., c, a] = d phi_c / d p_a = A[c, a] at every voxel, the border included
    expected = theta[..., :ndim].reshape(2, *([1] * ndim), ndim, ndim)
    torch.testing.assert_close(jac, expected.expand_as(jac), rtol=0, atol=1e-12)
    det = jacobian_determinant(theta, size)
    assert det.shape == (2, *size)
    expected_det = torch.linalg.det(theta[..., :ndim]).reshape(2, *([1] * ndim))
    torch.testing.assert_close(det, expected_det.expand_as(det), rtol=0, atol=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_jacobian_of_identity(ndim):
    size = SIZES[ndim]
    det = jacobian_determinant(torch.zeros(1, ndim, *size, dtype=F64))
    torch.testing.assert_close(det, torch.ones(1, *size, dtype=F64), rtol=0, atol=1e-12)
    det = jacobian_determinant(identity_affine(1, ndim, dtype=F64), size)
    torch.testing.assert_close(det, torch.ones(1, *size, dtype=F64), rtol=0, atol=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_jacobian_of_linear_displacement(ndim):
    # u(p) = M p + t  =>  J = I + M everywhere; a non-symmetric M on a grid with unequal sides
    # catches any swap of components or axes
    size = SIZES[ndim]
    g = torch.Generator().manual_seed(7)
    m = 0.3 * torch.randn(ndim, ndim, generator=g, dtype=F64)
    t = 0.1 * torch.randn(ndim, generator=g, dtype=F64)
    u = (_points(size) @ m.T + t).movedim(-1, 1)
    jac = jacobian_matrix(u)
    expected = torch.eye(ndim, dtype=F64) + m
    torch.testing.assert_close(jac, expected.expand_as(jac), rtol=0, atol=1e-12)
    torch.testing.assert_close(jacobian_determinant(u),
                               torch.linalg.det(expected).expand(1, *size), rtol=0, atol=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("comp", [0, 1])
def test_jacobian_of_scaling(ndim, comp):
    # u_c = a * p_c (a scaling along one component)  =>  det = 1 + a
    size = SIZES[ndim]
    a = 0.35
    u = torch.zeros(1, ndim, *size, dtype=F64)
    u[:, comp] = a * _points(size)[..., comp]
    det = jacobian_determinant(u)
    torch.testing.assert_close(det, torch.full_like(det, 1 + a), rtol=0, atol=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_jacobian_of_quadratic_displacement_interior(ndim):
    # u_0 = a * p_0^2  =>  d phi_0 / d p_0 = 1 + 2 a p_0, exact for central differences inside
    size = SIZES[ndim]
    a = 0.3
    p = _points(size)
    u = torch.zeros(1, ndim, *size, dtype=F64)
    u[:, 0] = a * p[..., 0] ** 2
    det = jacobian_determinant(u)
    expected = 1 + 2 * a * p[..., 0]
    inner = (slice(None), *([slice(None)] * (ndim - 1)), slice(1, -1))  # last axis interior
    torch.testing.assert_close(det[inner], expected[inner], rtol=0, atol=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_jacobian_in_voxel_units_for_an_integer_shift(ndim):
    # a translation does not stretch anything: the determinant is exactly 1
    size = SIZES[ndim]
    u = torch.zeros(1, ndim, *size, dtype=F64)
    u[:, 0] = 2.0 / (size[-1] - 1)
    det = jacobian_determinant(u)
    torch.testing.assert_close(det, torch.ones_like(det), rtol=0, atol=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_folding_field_has_negative_determinant(ndim):
    # u_0 = c sin(pi p_0): phi_0' = 1 + c pi cos(pi p_0) < 0 near p_0 = +-1 for c = 0.5
    size = (9, 11) if ndim == 2 else (5, 6, 11)
    p = _points(size)
    u = torch.zeros(1, ndim, *size, dtype=F64)
    u[:, 0] = 0.5 * torch.sin(math.pi * p[..., 0])
    det = jacobian_determinant(u)
    analytic = 1 + 0.5 * math.pi * torch.cos(math.pi * p[..., 0])
    assert (det < 0).any()
    assert torch.all(det[analytic < -0.2] < 0)
    assert torch.all(det[analytic > 0.2] > 0)
    # a smooth non-folding field stays positive
    assert (jacobian_determinant(0.2 * u) > 0).all()


def test_jacobian_of_coarse_field_on_requested_size():
    # a linear field on a coarse grid resized to a fine grid keeps its Jacobian
    m = torch.tensor([[0.2, -0.1], [0.3, 0.05]], dtype=F64)
    u = (_points((4, 5)) @ m.T).movedim(-1, 1)
    jac = jacobian_matrix(u, (7, 9))
    assert jac.shape == (1, 7, 9, 2, 2)
    torch.testing.assert_close(jac, (torch.eye(2, dtype=F64) + m).expand_as(jac),
                               rtol=0, atol=1e-12)


def test_jacobian_rejects_bad_input():
    with pytest.raises(ValueError, match="^jacobian_matrix:"):
        jacobian_matrix(torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="^jacobian_matrix:"):
        jacobian_matrix(torch.zeros(1, 2, 1, 5))  # an axis of one voxel
    with pytest.raises(ValueError, match="^jacobian_determinant:"):
        jacobian_determinant(torch.zeros(1, 1, 5))  # 1D


@pytest.mark.parametrize("fn", [jacobian_matrix, jacobian_determinant])
def test_affine_without_size_error_names_the_called_function(fn):
    # an affine needs a grid; the message should name the function the caller used
    with pytest.raises(ValueError, match=f"^{fn.__name__}:"):
        fn(identity_affine(1, 2))
