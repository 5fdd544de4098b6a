"""Discrete Laplacian on interior voxels."""

from __future__ import annotations

import pytest
import torch

from firereg.spatial import laplacian

SIZES = {2: (6, 7), 3: (4, 5, 6)}
F64 = torch.float64


def _index_mesh(size):
    axes = [torch.arange(s, dtype=F64) for s in size]
    return torch.meshgrid(*axes, indexing="ij")


def _reference(field):
    """sum over axes of f[i-1] - 2 f[i] + f[i+1] on the interior, by slicing."""
    d = field.dim() - 2
    inner = (slice(None), slice(None), *([slice(1, -1)] * d))
    out = torch.zeros_like(field[inner])
    for ax in range(d):
        lo = list(inner)
        hi = list(inner)
        lo[2 + ax] = slice(0, -2)
        hi[2 + ax] = slice(2, None)
        out += field[tuple(lo)] - 2 * field[inner] + field[tuple(hi)]
    return out


@pytest.mark.parametrize("ndim", [2, 3])
def test_laplacian_of_affine_field_is_zero(ndim):
    size = SIZES[ndim]
    g = torch.Generator().manual_seed(0)
    mesh = torch.stack(_index_mesh(size))  # (d, *S)
    m = torch.randn(ndim, ndim, generator=g, dtype=F64) * 3
    t = torch.randn(ndim, generator=g, dtype=F64)
    field = (torch.einsum("ca,a...->c...", m, mesh) + t.reshape(ndim, *([1] * ndim)))[None]
    lap = laplacian(field)
    assert lap.shape == (1, ndim, *(s - 2 for s in size))
    assert lap.abs().max() < 1e-10


@pytest.mark.parametrize("ndim", [2, 3])
def test_laplacian_of_random_field_matches_stencil(ndim):
    size = SIZES[ndim]
    field = torch.randn(2, 3, *size, dtype=F64)
    lap = laplacian(field)
    assert (lap ** 2).sum() > 1.0  # a bumpy field has positive bending energy
    torch.testing.assert_close(lap, _reference(field), rtol=0, atol=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_laplacian_of_quadratic(ndim):
    size = SIZES[ndim]
    mesh = _index_mesh(size)
    inner_shape = (1, 1, *(s - 2 for s in size))
    for ax in range(ndim):
        lap = laplacian((mesh[ax] ** 2)[None, None])  # x^2 in index units => 2
        torch.testing.assert_close(lap, torch.full(inner_shape, 2.0, dtype=F64), rtol=0, atol=1e-10)
    total = sum(m ** 2 for m in mesh)[None, None]
    torch.testing.assert_close(laplacian(total), torch.full(inner_shape, 2.0 * ndim, dtype=F64),
                               rtol=0, atol=1e-10)


def test_laplacian_channels_are_independent():
    mesh = _index_mesh((5, 6))
    field = torch.stack([mesh[0] ** 2, 3 * mesh[1] - mesh[0], mesh[1] ** 2 * 0.5])[None]
    lap = laplacian(field)
    torch.testing.assert_close(lap[0, 0], torch.full((3, 4), 2.0, dtype=F64))
    torch.testing.assert_close(lap[0, 1], torch.zeros(3, 4, dtype=F64))
    torch.testing.assert_close(lap[0, 2], torch.full((3, 4), 1.0, dtype=F64))


@pytest.mark.parametrize(
    "shape", [(1, 1, 5), (1, 1, 2, 5), (1, 1, 5, 5, 2), (1, 1, 3, 3, 3, 3), (5, 5)]
)
def test_laplacian_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="^laplacian:"):
        laplacian(torch.zeros(shape))
