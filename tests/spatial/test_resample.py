"""Resampling of images and displacement fields between grids of the same field of view."""

from __future__ import annotations

import pytest
import torch

from firereg.spatial import identity_grid, resize_field, resize_image

SIZES = {2: (6, 7), 3: (4, 5, 6)}
F64 = torch.float64


def _targets(size):
    return [tuple(2 * s - 1 for s in size), tuple(max(2, s - 2) for s in size),
            tuple(s + 3 for s in size)]


@pytest.mark.parametrize("ndim", [2, 3])
def test_constant_field_is_kept(ndim):
    size = SIZES[ndim]
    c = torch.tensor([0.3, -0.7, 0.11][:ndim], dtype=F64)
    field = c.reshape(1, ndim, *([1] * ndim)).expand(2, ndim, *size).contiguous()
    for target in _targets(size):
        out = resize_field(field, target)
        assert out.shape == (2, ndim, *target)
        # values are not rescaled: the field is in normalized units
        torch.testing.assert_close(out, c.reshape(1, ndim, *([1] * ndim)).expand_as(out),
                                   rtol=0, atol=1e-14)


@pytest.mark.parametrize("ndim", [2, 3])
def test_linear_field_is_kept(ndim):
    # u(p) = M p + t in normalized coordinates is reproduced exactly (align_corners=True)
    size = SIZES[ndim]
    g = torch.Generator().manual_seed(1)
    m = torch.randn(ndim, ndim, generator=g, dtype=F64)
    t = torch.randn(ndim, generator=g, dtype=F64)

    def linear(sz):
        return (identity_grid(sz, dtype=F64) @ m.T + t).movedim(-1, 1)

    field = linear(size)
    for target in _targets(size):
        torch.testing.assert_close(resize_field(field, target), linear(target), rtol=0, atol=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_same_size_returns_input(ndim):
    size = SIZES[ndim]
    field = torch.randn(1, ndim, *size, dtype=F64)
    assert torch.equal(resize_field(field, size), field)
    img = torch.randn(2, 3, *size)
    assert torch.equal(resize_image(img, list(size)), img)


@pytest.mark.parametrize("ndim", [2, 3])
def test_resize_image_keeps_corners_and_samples(ndim):
    # align_corners=True: upsampling by (2S-1) puts old voxels on every second new voxel
    size = SIZES[ndim]
    img = torch.randn(1, 2, *size, dtype=F64)
    up = resize_image(img, tuple(2 * s - 1 for s in size))
    torch.testing.assert_close(up[(..., *[slice(None, None, 2)] * ndim)], img, rtol=0, atol=1e-12)
    # midpoints along the last axis are averages of neighbours
    mid = up[(..., *[slice(None, None, 2)] * (ndim - 1), slice(1, None, 2))]
    torch.testing.assert_close(mid, 0.5 * (img[..., :-1] + img[..., 1:]), rtol=0, atol=1e-12)


def test_resize_rejects_bad_input():
    with pytest.raises(ValueError, match="^resize_field:"):
        resize_field(torch.zeros(1, 1, 5), (7,))  # 1D
    with pytest.raises(ValueError, match="^resize_field:"):
        resize_field(torch.zeros(1, 3, 4, 5), (6, 7))  # 3 components on a 2D grid
    with pytest.raises(ValueError, match="^resize_image:"):
        resize_image(torch.zeros(1, 1, 5), (7,))  # 1D
    with pytest.raises(ValueError, match="^resize_image:"):
        resize_image(torch.zeros(1, 1, 4, 5), (6, 7, 8))


@pytest.mark.parametrize("size", [(6, 7, 8), (6,)])
def test_resize_field_size_length_error_names_resize_field(size):
    # a size that does not match the field's dimensionality: the message should name the
    # function the caller used
    with pytest.raises(ValueError, match="^resize_field:"):
        resize_field(torch.zeros(1, 2, 4, 5), size)
