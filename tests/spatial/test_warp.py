"""Warping images and label maps."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck

from firereg.spatial import (
    compose,
    identity_affine,
    invert_affine,
    warp,
    warp_labels,
)

SIZES = {2: (6, 7), 3: (4, 5, 6)}
F64 = torch.float64
AXES = [(2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]  # (ndim, array axis)


def _shift_affine(ndim, size, axis, k, dtype=F64):
    """Translation whose output voxel i reads input voxel i + k along array axis ``axis``."""
    theta = identity_affine(1, ndim, dtype=dtype)
    theta[0, ndim - 1 - axis, ndim] = 2.0 * k / (size[axis] - 1)
    return theta


def _shift_field(ndim, size, axis, k, dtype=F64):
    u = torch.zeros(1, ndim, *size, dtype=dtype)
    u[:, ndim - 1 - axis] = 2.0 * k / (size[axis] - 1)
    return u


def _valid(x, axis, k, n):
    """Slice of ``x`` along array ``axis`` holding output voxels i with 0 <= i + k < n."""
    dim = 2 + axis
    return x.narrow(dim, max(0, -k), n - abs(k))


def _outside(x, axis, k, n):
    dim = 2 + axis
    return x.narrow(dim, n - k, k) if k > 0 else x.narrow(dim, 0, -k)


def _rotation_affine(ndim, c1, c2, dtype=F64):
    """90-degree rotation in the plane of normalized components (c1, c2): A[c1,c2]=-1, A[c2,c1]=1.

    The output point p samples the input at q with q_c1 = -p_c2 and q_c2 = p_c1.
    """
    theta = torch.zeros(1, ndim, ndim + 1, dtype=dtype)
    for c in range(ndim):
        if c not in (c1, c2):
            theta[0, c, c] = 1.0
    theta[0, c1, c2] = -1.0
    theta[0, c2, c1] = 1.0
    return theta


# ----------------------------------------------------------------------------- identity


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_identity_warp_is_exact(ndim, dtype, tol):
    size = SIZES[ndim]
    img = torch.rand(2, 3, *size, dtype=dtype)
    for transform in (identity_affine(2, ndim, dtype=dtype),
                      torch.zeros(2, ndim, *size, dtype=dtype)):
        for mode in ("linear", "nearest"):
            out = warp(img, transform, mode=mode)
            assert out.shape == img.shape and out.dtype == dtype
            assert (out - img).abs().max() < tol


# ----------------------------------------------------------------------------- integer shifts


@pytest.mark.parametrize("ndim,axis", AXES)
@pytest.mark.parametrize("k", [1, -2])
@pytest.mark.parametrize("kind", ["affine", "displacement"])
def test_integer_voxel_shift_is_exact(ndim, axis, k, kind):
    size = SIZES[ndim]
    n = size[axis]
    img = torch.rand(2, 2, *size, dtype=F64)
    make = _shift_affine if kind == "affine" else _shift_field
    out = warp(img, make(ndim, size, axis, k))  # transform batch 1 broadcasts over the images
    assert out.shape == img.shape
    expected = torch.roll(img, shifts=-k, dims=2 + axis)  # out[i] = img[i + k]
    torch.testing.assert_close(_valid(out, axis, k, n), _valid(expected, axis, k, n),
                               rtol=0, atol=1e-12)
    # voxels that read outside the field of view are 0 with zeros padding
    assert _outside(out, axis, k, n).abs().max() < 1e-12
    # nearest neighbour gives the same result on the valid region
    near = warp(img, make(ndim, size, axis, k), mode="nearest")
    torch.testing.assert_close(_valid(near, axis, k, n), _valid(expected, axis, k, n),
                               rtol=0, atol=0)


@pytest.mark.parametrize("ndim,axis", AXES)
def test_integer_shift_with_coarse_constant_field(ndim, axis):
    # a constant displacement on a coarser grid is resized to the requested output grid
    size = SIZES[ndim]
    coarse = tuple(max(2, s - 2) for s in size)
    u = torch.zeros(1, ndim, *coarse, dtype=F64)
    u[:, ndim - 1 - axis] = 2.0 / (size[axis] - 1)
    img = torch.rand(1, 1, *size, dtype=F64)
    out = warp(img, u, size)
    assert out.shape == img.shape
    n = size[axis]
    torch.testing.assert_close(_valid(out, axis, 1, n), img.narrow(2 + axis, 1, n - 1),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("padding_mode", ["border", "reflection"])
def test_padding_modes_outside_fov(padding_mode):
    size = (5, 6)
    img = torch.rand(1, 1, *size, dtype=F64)
    out = warp(img, _shift_affine(2, size, 1, 1), padding_mode=padding_mode)
    # the last column reads column 6, one past the end: border repeats col 5, reflection col 4
    expected = img[..., -1] if padding_mode == "border" else img[..., -2]
    torch.testing.assert_close(out[..., -1], expected, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- rotations


def test_rot90_2d():
    # A = [[0, -1], [1, 0]] (output (x, y) samples input at (-y, x), x along W, y along H):
    # out[h, w] = img[w, S-1-h], which is torch.rot90(img, k=1, dims=(-2, -1)), i.e. the array
    # rotated from axis H towards axis W (counter-clockwise when displayed with row 0 on top).
    img = torch.rand(2, 3, 6, 6, dtype=F64)
    out = warp(img, _rotation_affine(2, 0, 1))
    torch.testing.assert_close(out, torch.rot90(img, 1, dims=(-2, -1)), rtol=0, atol=1e-12)
    # the inverse (transposed) rotation gives k = -1
    out_inv = warp(img, _rotation_affine(2, 1, 0))
    torch.testing.assert_close(out_inv, torch.rot90(img, -1, dims=(-2, -1)), rtol=0, atol=1e-12)
    # explicit analytic check of one voxel: out[h=0, w=0] = img[0, S-1]
    assert out[0, 0, 0, 0] == img[0, 0, 0, 5]


@pytest.mark.parametrize("c1,c2", [(0, 1), (1, 2), (0, 2)])
def test_rot90_3d_cube(c1, c2):
    # Same rule in 3D: A[c1,c2] = -1, A[c2,c1] = 1 with normalized components c -> array axis
    # a = 2 - c equals torch.rot90(img, k=1, dims=(a2, a1)) over the spatial dims.
    img = torch.rand(1, 2, 5, 5, 5, dtype=F64)
    out = warp(img, _rotation_affine(3, c1, c2))
    a1, a2 = 2 - c1, 2 - c2
    expected = torch.rot90(img, 1, dims=(2 + a2, 2 + a1))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- inverse


@pytest.mark.parametrize("ndim", [2, 3])
def test_warp_then_inverse_translation_is_exact(ndim):
    size = SIZES[ndim]
    img = torch.rand(1, 1, *size, dtype=F64)
    theta = _shift_affine(ndim, size, 0, 1)
    theta[0, 0, ndim] = 2.0 / (size[-1] - 1)  # also one voxel along the last axis
    back = warp(warp(img, theta), invert_affine(theta))
    inner = tuple(slice(1, s - 1) for s in size)
    torch.testing.assert_close(back[(..., *inner)], img[(..., *inner)], rtol=0, atol=1e-12)
    # and composing first gives the identity transform, hence the image everywhere
    torch.testing.assert_close(warp(img, compose(theta, invert_affine(theta))), img,
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_warp_then_inverse_rotation_smooth_image(ndim):
    size = (32, 32) if ndim == 2 else (20, 20, 20)
    axes = [torch.linspace(-1, 1, s, dtype=F64) for s in size]
    mesh = torch.meshgrid(*axes, indexing="ij")
    r2 = sum((m - 0.1 * (i + 1)) ** 2 for i, m in enumerate(mesh))
    img = torch.exp(-r2 / 0.8)[None, None]
    ang = math.radians(12.0)
    theta = identity_affine(1, ndim, dtype=F64)
    theta[0, 0, 0], theta[0, 0, 1] = math.cos(ang), -math.sin(ang)
    theta[0, 1, 0], theta[0, 1, 1] = math.sin(ang), math.cos(ang)
    theta[0, :, ndim] = 0.05
    back = warp(warp(img, theta), invert_affine(theta))
    inner = tuple(slice(s // 4, s - s // 4) for s in size)
    err = (back - img)[(..., *inner)].abs().max()
    assert err < 2.5e-2  # two rounds of linear interpolation blur a smooth blob slightly
    # the forward warp alone is far from the input: the check above is not vacuous
    assert (warp(img, theta) - img)[(..., *inner)].abs().max() > 4 * err


# ----------------------------------------------------------------------------- gradients


def _offgrid_affine(ndim, seed):
    g = torch.Generator().manual_seed(seed)
    theta = identity_affine(1, ndim, dtype=F64)
    theta[..., :ndim] += 0.05 * torch.randn(1, ndim, ndim, generator=g, dtype=F64)
    theta[..., ndim] = 0.07 + 0.02 * torch.rand(1, ndim, generator=g, dtype=F64)
    return theta


def _offgrid_field(ndim, size, seed):
    # 0.2 .. 0.8 voxel offsets: never on a voxel centre, where bilinear is not differentiable
    g = torch.Generator().manual_seed(seed)
    u = torch.empty(1, ndim, *size, dtype=F64)
    for c in range(ndim):
        n = size[ndim - 1 - c]
        frac = 0.2 + 0.6 * torch.rand(1, *size, generator=g, dtype=F64)
        sign = torch.where(torch.rand(1, *size, generator=g) < 0.5, -1.0, 1.0).to(F64)
        u[:, c] = sign * frac * 2.0 / (n - 1)
    return u


GC_SIZES = {2: (4, 5), 3: (3, 4, 5)}


@pytest.mark.parametrize("ndim", [2, 3])
def test_gradcheck_image(ndim):
    size = GC_SIZES[ndim]
    img = torch.rand(1, 2, *size, dtype=F64, requires_grad=True)
    theta = _offgrid_affine(ndim, 0)
    u = _offgrid_field(ndim, size, 1)
    assert gradcheck(lambda x: warp(x, theta), (img,))
    assert gradcheck(lambda x: warp(x, u), (img,))


@pytest.mark.parametrize("ndim", [2, 3])
def test_gradcheck_affine(ndim):
    size = GC_SIZES[ndim]
    img = torch.rand(1, 2, *size, dtype=F64)
    theta = _offgrid_affine(ndim, 2).requires_grad_(True)
    assert gradcheck(lambda t: warp(img, t), (theta,))


@pytest.mark.parametrize("ndim", [2, 3])
def test_gradcheck_displacement(ndim):
    size = GC_SIZES[ndim]
    img = torch.rand(1, 2, *size, dtype=F64)
    u = _offgrid_field(ndim, size, 3).requires_grad_(True)
    assert gradcheck(lambda v: warp(img, v), (u,))


# ----------------------------------------------------------------------------- errors


def test_warp_rejects_bad_input():
    img2, img3 = torch.rand(1, 1, 4, 5), torch.rand(1, 1, 3, 4, 5)
    with pytest.raises(ValueError, match="^warp:"):
        warp(img2, identity_affine(1, 3))  # 3D transform, 2D image
    with pytest.raises(ValueError, match="^warp:"):
        warp(img3, torch.zeros(1, 2, 4, 5))  # 2D field, 3D image
    with pytest.raises(ValueError, match="^warp:"):
        warp(img2, torch.zeros(1, 2, 2))  # wrong-shaped affine
    with pytest.raises(ValueError, match="^warp:"):
        warp(torch.ones(1, 1, 4, 5, dtype=torch.int64), identity_affine(1, 2))
    with pytest.raises(ValueError, match="^warp:"):
        warp(img2, identity_affine(1, 2), mode="cubic")
    with pytest.raises(ValueError, match="^warp:"):
        warp(torch.rand(3, 1, 4, 5), identity_affine(2, 2))  # batch 3 vs 2
    with pytest.raises(ValueError, match="^warp:"):
        warp(torch.rand(1, 4, 5), identity_affine(1, 1).reshape(1, 1, 2))  # 1D


def test_warp_batch_broadcast_and_size():
    img = torch.rand(3, 1, 5, 6, dtype=F64)
    theta = _shift_affine(2, (5, 6), 1, 1)
    out = warp(img, theta)
    assert out.shape == img.shape
    for n in range(3):
        torch.testing.assert_close(out[n], warp(img[n:n + 1], theta)[0], rtol=0, atol=0)
    # an affine warp onto another grid samples the same normalized field of view
    assert warp(img, identity_affine(1, 2, dtype=F64), (9, 11)).shape == (3, 1, 9, 11)
    torch.testing.assert_close(warp(img, identity_affine(1, 2, dtype=F64), (9, 11))[..., ::2, ::2],
                               img, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- labels


def _labels(size, seed=0, values=(0, 2, 5, 7), dtype=torch.int64):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(values), (1, 1, *size), generator=g)
    return torch.tensor(values)[idx].to(dtype)


@pytest.mark.parametrize("method", ["nearest", "onehot"])
@pytest.mark.parametrize("ndim,axis", AXES)
@pytest.mark.parametrize("k", [1, -2])
def test_warp_labels_integer_shift_exact_in_fov(method, ndim, axis, k):
    size = SIZES[ndim]
    n = size[axis]
    lab = _labels(size, seed=axis)
    for transform in (_shift_affine(ndim, size, axis, k), _shift_field(ndim, size, axis, k)):
        out = warp_labels(lab, transform, method=method)
        assert out.shape == lab.shape and out.dtype == lab.dtype
        expected = torch.roll(lab, shifts=-k, dims=2 + axis)
        assert torch.equal(_valid(out, axis, k, n), _valid(expected, axis, k, n))


@pytest.mark.parametrize("method", ["nearest", "onehot"])
@pytest.mark.parametrize("shift", [1.0, 0.75])
def test_warp_labels_outside_fov_is_background(method, shift):
    # Docstring: "Outside the field of view the result is 0 (background)". The last output
    # column samples the input at column index 6 + 1 - shift, i.e. 7.0 or 6.25 for a 7-wide image
    # (last valid index 6): outside the FOV, so it must be 0. A label map with no 0 makes any
    # leak of a foreground label into that column visible.
    size = (5, 7)
    lab = _labels(size, seed=3, values=(2, 5, 7))
    theta = identity_affine(1, 2, dtype=F64)
    theta[0, 0, 2] = 2.0 * shift / (size[1] - 1)
    out = warp_labels(lab, theta, method=method)
    assert torch.all(out[..., -1] == 0), out[..., -1]


@pytest.mark.parametrize("method", ["nearest", "onehot"])
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.float32])
def test_warp_labels_never_invents_labels_and_keeps_dtype(method, ndim, dtype):
    size = SIZES[ndim]
    lab = _labels(size, seed=ndim, values=(2, 5, 7), dtype=dtype)
    theta = _offgrid_affine(ndim, 4)
    theta[..., :ndim] *= 1.1  # a zoom-out: part of the output reads outside the image
    out = warp_labels(lab, theta, method=method)
    assert out.dtype == dtype and out.shape == lab.shape
    present = set(out.unique().tolist())
    assert present <= {0, 2, 5, 7}
    assert len(present & {2, 5, 7}) >= 2


def test_warp_labels_onehot_majority_vote():
    # onehot keeps the label with the largest interpolated weight: reading 0.4 voxel to the right,
    # the nearer voxel's label wins (weight 0.6 against 0.4), as in nearest neighbour
    lab = torch.tensor([[[[1, 1, 4, 4, 4]]]]).expand(1, 1, 3, 5).contiguous()
    theta = identity_affine(1, 2, dtype=F64)
    theta[0, 0, 2] = 2.0 * 0.4 / 4  # output voxel i reads input at i + 0.4
    for method in ("onehot", "nearest"):
        out = warp_labels(lab, theta, method=method)
        assert out[0, 0, 0, :4].tolist() == [1, 1, 4, 4]


def test_warp_labels_rejects_bad_input():
    theta = identity_affine(1, 2)
    with pytest.raises(ValueError, match="^warp_labels:"):
        warp_labels(torch.tensor([[[[0.0, 1.5], [2.0, 3.0]]]]), theta)
    with pytest.raises(ValueError, match="^warp_labels:"):
        warp_labels(torch.zeros(1, 2, 4, 4, dtype=torch.int64), theta)
    with pytest.raises(ValueError, match="^warp_labels:"):
        warp_labels(torch.zeros(1, 1, 4, 4, dtype=torch.int64), theta, method="linear")
    with pytest.raises(ValueError, match="^warp_labels:"):
        warp_labels(torch.zeros(1, 1, 4, 4, 4, dtype=torch.int64), theta)
