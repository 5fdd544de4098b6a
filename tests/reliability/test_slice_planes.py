"""2D images in any slice plane. A coronal or sagittal slice (stored ``(X, 1, Z)``, ``(1, Y, Z)``, or
``(X, Y, 1)`` with a coronal affine) used to fail with a bare ``Singular matrix`` (or "too small to
register"), in ``register`` and in ``register-series``. Now it registers in world coordinates, and
the transforms it writes (3D ones: ITK cannot hold such a plane in 2D) do in ANTs what firereg did.
"""

import ants
import nibabel as nib
import numpy as np
import pytest
import scipy.io
import torch
from reliability_helpers import rotation, run_cli

from firereg.config import ModelConfig
from firereg.model import FireModel
from firereg.training.checkpoint import save_checkpoint

IN_PLANE = (30, 28)
LPS = np.diag([-1.0, -1.0, 1.0])

# name: (the stored axis of size 1, the world axis the plane's normal is along, in-plane rotation)
PLANES = {
    "coronal (X, 1, Z)": (1, 1, 12.0),
    "sagittal (1, Y, Z)": (0, 0, -9.0),
    "coronal stored (X, Y, 1)": (2, 1, 7.0),
}


def _slice_grid(plane: str, offset=(0.0, 0.0, 0.0)) -> tuple[tuple[int, ...], np.ndarray]:
    """Stored shape and affine of one slice in ``plane``, its centre near the world origin."""
    stored_axis, normal, degrees = PLANES[plane]
    in_plane_world = [a for a in range(3) if a != normal]
    columns = np.zeros((3, 3))
    # the two in-plane voxel axes run along the plane's world axes, rotated within the plane;
    # the stored axis of size 1 runs along the normal
    voxel_axes = [a for a in range(3) if a != stored_axis]
    spacing = {voxel_axes[0]: 2.0, voxel_axes[1]: 1.8, stored_axis: 3.0}
    for voxel_axis, world_axis in zip(voxel_axes, in_plane_world, strict=True):
        columns[world_axis, voxel_axis] = spacing[voxel_axis]
    columns[normal, stored_axis] = spacing[stored_axis]
    affine = np.eye(4)
    affine[:3, :3] = rotation(normal, degrees) @ columns
    shape = [0, 0, 0]
    shape[stored_axis] = 1
    for voxel_axis, size in zip(voxel_axes, IN_PLANE, strict=True):
        shape[voxel_axis] = size
    centre = affine[:3, :3] @ ((np.array(shape) - 1) / 2)
    affine[:3, 3] = -centre + np.asarray(offset)
    return tuple(shape), affine


def _phantom(shape, affine, centre=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Two smooth ellipsoids in world mm (zero near the edges of the slice), sampled on the grid."""
    idx = np.stack(np.meshgrid(*(np.arange(s) for s in shape), indexing="ij"), -1).astype(float)
    world = idx @ affine[:3, :3].T + affine[:3, 3] - np.asarray(centre)
    r = np.sqrt(((world / [15.0, 13.0, 12.0]) ** 2).sum(-1))
    inner = np.sqrt((((world - [4.0, -3.0, 3.0]) / [6.0, 5.0, 5.0]) ** 2).sum(-1))
    return (100 / (1 + np.exp((r - 1) * 12)) + 60 / (1 + np.exp((inner - 1) * 8))).astype(np.float32)


def _save(path, data, affine):
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """2D width-4 models: "untrained" (the identity) and "known" (a fixed affine and a constant
    non-rigid shift, through the last layers' biases)."""
    root = tmp_path_factory.mktemp("plane_models")
    known = FireModel(ModelConfig(ndim=2, width=4))
    with torch.no_grad():
        for net, sign in ((known.transform_ab, 1.0), (known.transform_ba, -1.0)):
            net.affine.dense[-1].bias.copy_(torch.tensor([1.0, 0.06, 0.05 * sign, -0.05, 1.0, -0.04 * sign]))
            net.nonrigid.head.bias.copy_(torch.tensor([0.02, -0.015]) * sign)
    save_checkpoint(root / "untrained", FireModel(ModelConfig(ndim=2, width=4)), step=0)
    save_checkpoint(root / "known", known, step=0)
    return {"untrained": root / "untrained", "known": root / "known"}


def _register(capsys, model, moving, fixed, out):
    code, _, err = run_cli(capsys, "register", "--moving", moving, "--fixed", fixed, "--model", model,
                           "--out", out, "--device", "cpu", "--spacing", "2.0")
    assert code == 0, err
    return out


def _itk_affine(path) -> np.ndarray:
    params = scipy.io.loadmat(str(path))["AffineTransform_double_3_3"].ravel()
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = params[:9].reshape(3, 3), params[9:]
    return m


def _in_plane(data: np.ndarray) -> np.ndarray:
    """A one-slice volume's two in-plane axes, in order (any stored layout)."""
    return np.squeeze(np.asarray(data, dtype=np.float64))


@pytest.mark.parametrize("plane", list(PLANES))
def test_a_slice_registered_onto_itself_by_an_untrained_model_stays_as_it_is(tmp_path, capsys, models,
                                                                              plane):
    shape, affine = _slice_grid(plane)
    image = _save(tmp_path / "slice.nii.gz", _phantom(shape, affine), affine)
    out = _register(capsys, models["untrained"], image, image, tmp_path / "out")
    warped = nib.load(out / "warped.nii.gz")
    moving = nib.load(image)
    np.testing.assert_allclose(_in_plane(warped.get_fdata()), _in_plane(moving.get_fdata()), atol=1e-3)
    # the same world grid (a slice stored (X, Y, 1) with a coronal affine comes back (X, 1, Y))
    for voxel in ([0, 0], [29, 0], [0, 27], [13, 17]):
        def world(img, v=voxel):
            index = [0, 0, 0]
            stored = [a for a in range(3) if img.shape[a] != 1]
            index[stored[0]], index[stored[1]] = v
            return img.affine[:3, :3] @ index + img.affine[:3, 3]
        np.testing.assert_allclose(world(warped), world(moving), atol=1e-4)
    np.testing.assert_allclose(_itk_affine(out / "affine.mat"), np.eye(4), atol=1e-9)
    warp = nib.load(out / "warp.nii.gz")
    assert warp.shape[3:] == (1, 3) and 1 in warp.shape[:2]  # 3D vectors, read by ITK as 3D
    assert np.abs(warp.get_fdata()).max() < 1e-9


@pytest.mark.parametrize("model", ["untrained", "known"])
@pytest.mark.parametrize("plane", list(PLANES))
def test_ants_reapplies_the_written_transforms_to_the_same_result(tmp_path, capsys, models, plane,
                                                                  model):
    """The moving slice is the fixed one shifted 6 and -4 mm within the plane (and 2 mm through it):
    an untrained model writes exactly that shift; ANTs, given the original files and the written
    ``warp.nii.gz`` + ``affine.mat``, reproduces ``warped.nii.gz``; and so does ``firereg apply``."""
    stored_axis, normal, degrees = PLANES[plane]
    fixed_shape, fixed_affine = _slice_grid(plane)
    in_plane = [a for a in range(3) if a != stored_axis]
    unit = fixed_affine[:3, :3] / np.linalg.norm(fixed_affine[:3, :3], axis=0)
    shift = 6.0 * unit[:, in_plane[0]] - 4.0 * unit[:, in_plane[1]] + 2.0 * unit[:, stored_axis]
    moving_shape, moving_affine = _slice_grid(plane, offset=shift)
    fixed = _save(tmp_path / "fixed.nii.gz", _phantom(fixed_shape, fixed_affine), fixed_affine)
    moving = _save(tmp_path / "moving.nii.gz", _phantom(moving_shape, moving_affine, centre=(1.0, 2.0, -1.5)),
                   moving_affine)
    out = _register(capsys, models[model], moving, fixed, tmp_path / "out")
    ours = _in_plane(nib.load(out / "warped.nii.gz").get_fdata())
    written = _itk_affine(out / "affine.mat")
    if model == "untrained":  # fixed point x -> moving point x + shift (ITK's LPS frame)
        np.testing.assert_allclose(written[:3, :3], np.eye(3), atol=1e-6)
        np.testing.assert_allclose(written[:3, 3], LPS @ shift, atol=1e-4)
        np.testing.assert_allclose(ours, _in_plane(nib.load(moving).get_fdata()), atol=1e-3)
    else:
        assert np.abs(ours - _in_plane(nib.load(moving).get_fdata())).mean() > 2.0
    fixed_ants, moving_ants = ants.image_read(str(fixed)), ants.image_read(str(moving))
    assert fixed_ants.dimension == 3  # ANTs reads a one-slice file as a volume
    by_ants = ants.apply_transforms(fixed_ants, moving_ants, [str(out / "warp.nii.gz"),
                                                              str(out / "affine.mat")],
                                    interpolator="linear").numpy()
    by_ants = _in_plane(by_ants)
    assert ours.std() > 10 and by_ants.shape == ours.shape
    assert np.corrcoef(ours.ravel(), by_ants.ravel())[0, 1] > 0.9999
    assert np.abs(ours - by_ants).mean() < 1e-3  # of values up to 160
    inverse = ants.apply_transforms(moving_ants, fixed_ants, [str(out / "inverse_warp.nii.gz"),
                                                              str(out / "inverse_affine.mat")])
    assert inverse.shape == moving_shape
    code, _, err = run_cli(capsys, "apply", "--transforms", out, "--input", moving, "--reference", fixed,
                           "--out", tmp_path / "applied.nii.gz")
    assert code == 0, err
    applied = _in_plane(nib.load(tmp_path / "applied.nii.gz").get_fdata())
    np.testing.assert_allclose(applied, ours, atol=1e-3)


def _coronal_cine(frames: int, slices: int) -> tuple[np.ndarray, np.ndarray]:
    """A cine whose slices (the third voxel axis) are coronal planes, the phantom moving a little
    from frame to frame: ``(X, Z, slices, T)`` with the third axis along A."""
    affine = np.array([[2.0, 0.0, 0.0, -29.0], [0.0, 0.0, 4.0, -4.0], [0.0, 1.8, 0.0, -24.3],
                       [0.0, 0.0, 0.0, 1.0]])
    shape = (*IN_PLANE, slices)
    data = np.stack([_phantom(shape, affine, centre=(1.5 * t, 0.0, -t)) for t in range(frames)], -1)
    return data, affine


@pytest.mark.parametrize("model", ["untrained", "known"])
def test_register_series_on_a_coronal_cine(tmp_path, capsys, models, model):
    data, affine = _coronal_cine(frames=4, slices=2)
    cine = _save(tmp_path / "cine.nii.gz", data, affine)
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "register-series", "--cine", cine, "--model", models[model],
                           "--out", out, "--device", "cpu", "--spacing", "2.0", "--reference", "1")
    assert code == 0, err
    warped = nib.load(out / "warped_4d.nii.gz")
    assert warped.shape == data.shape and np.allclose(warped.affine, affine, atol=1e-5)
    if model == "untrained":
        np.testing.assert_allclose(warped.get_fdata(), data, atol=1e-3)
    for t in (0, 3):
        warp = out / "warps" / f"warp_t{t:02d}.nii.gz"
        if model == "untrained":
            assert np.abs(nib.load(warp).get_fdata()).max() < 1e-9
        frame = _save(tmp_path / f"frame{t}.nii.gz", data[..., t], affine)
        by_ants = ants.apply_transforms(ants.image_read(str(frame)), ants.image_read(str(frame)),
                                        [str(warp)], interpolator="linear").numpy()
        ours = warped.get_fdata()[..., t]
        assert np.corrcoef(ours.ravel(), by_ants.ravel())[0, 1] > 0.9999
        assert np.abs(ours - by_ants).mean() < 1e-3


def test_register_series_on_a_one_slice_coronal_cine(tmp_path, capsys, models):
    """A one-slice cine stored ``(X, 1, Z, T)``: the identity for an untrained model, on its grid."""
    data, affine = _coronal_cine(frames=3, slices=1)
    stored = np.moveaxis(data, 2, 1)  # (X, 1, Z, T), the slice axis second
    stored_affine = affine[:, [0, 2, 1, 3]]
    cine = _save(tmp_path / "cine.nii.gz", stored, stored_affine)
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "register-series", "--cine", cine, "--model", models["untrained"],
                           "--out", out, "--device", "cpu", "--spacing", "2.0")
    assert code == 0, err
    warped = nib.load(out / "warped_4d.nii.gz")  # (X, Z, 1, T): the same world grid
    assert warped.shape == data.shape and np.allclose(warped.affine, affine, atol=1e-5)
    np.testing.assert_allclose(warped.get_fdata(), data, atol=1e-3)
    assert np.abs(nib.load(out / "warps" / "warp_t02.nii.gz").get_fdata()).max() < 1e-9
