"""NIfTI I/O: world coordinates survive a round trip, and bad files get a clear error naming them."""

import gzip

import nibabel as nib
import numpy as np
import pytest

from firereg.data.image import Image
from firereg.data.io import (
    ImageFileError,
    read_displacement_field,
    read_image,
    read_labels,
    write_displacement_field,
    write_image,
    write_labels,
)


def _oblique() -> np.ndarray:
    """An oblique, anisotropic grid: a rotation times voxel sizes (not sheared: ITK and ANTs do
    not read a sheared sform as nibabel does, and firereg refuses one)."""
    a, b = np.deg2rad(10.0), np.deg2rad(-17.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    m = np.eye(4)
    m[:3, :3] = rz @ rx @ np.diag([0.95, 0.97, 2.95])
    m[:3, 3] = [-91.0, -126.5, -72.0]
    return m


OBLIQUE = _oblique()


def _save(path, data, affine=OBLIQUE):
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def test_round_trip_keeps_the_world_coordinates_of_a_voxel(tmp_path):
    data = np.random.default_rng(0).random((7, 8, 5)).astype(np.float32)
    image = Image(data, OBLIQUE, ndim=3)
    back = read_image(write_image(image, tmp_path / "img.nii.gz"))
    np.testing.assert_array_equal(back.data, data)
    voxel = np.array([3, 5, 2, 1.0])
    np.testing.assert_allclose(back.affine @ voxel, OBLIQUE @ voxel, atol=1e-4)
    expected = OBLIQUE[:3, :3] @ voxel[:3] + OBLIQUE[:3, 3]
    np.testing.assert_allclose((back.affine @ voxel)[:3], expected, atol=1e-4)
    assert back.spacing == pytest.approx(np.linalg.norm(OBLIQUE[:3, :3], axis=0), abs=1e-5)
    header = nib.load(tmp_path / "img.nii.gz").header
    assert header["sform_code"] == 1 and header["qform_code"] == 1


@pytest.mark.parametrize("shape", [(9, 10), (9, 10, 1), (9, 1, 10), (1, 9, 10)])
def test_2d_images_arrive_as_xy_or_xy1(tmp_path, shape):
    data = np.arange(90, dtype=np.float32).reshape(shape)
    image = read_image(_save(tmp_path / "slice.nii", data), ndim=2)
    assert image.ndim == 2 and image.data.shape == (9, 10)
    np.testing.assert_array_equal(image.data, data.reshape(9, 10))


def test_series_are_refused_unless_allowed(tmp_path):
    path = _save(tmp_path / "cine.nii.gz", np.random.rand(6, 6, 3, 5).astype(np.float32))
    with pytest.raises(ImageFileError, match="series of 5 frames"):
        read_image(path)
    cine = read_image(path, allow_series=True)
    assert cine.is_series and cine.num_frames == 5 and cine.spatial_shape == (6, 6, 3)
    assert cine.tensor().shape == (5, 1, 6, 6, 3)
    np.testing.assert_array_equal(cine.frame(2).data, cine.data[..., 2])


def test_labels_round_trip_with_a_small_integer_type(tmp_path):
    labels = np.zeros((5, 6, 4), dtype=np.int64)
    labels[1:3, 2:4, 1] = 7
    path = write_labels(Image(labels, OBLIQUE, ndim=3), tmp_path / "seg.nii.gz")
    assert nib.load(path).get_data_dtype() == np.uint8
    back = read_labels(path)
    np.testing.assert_array_equal(back.data, labels)


def test_displacement_field_uses_the_itk_layout(tmp_path):
    field = np.random.rand(4, 5, 6, 3).astype(np.float32)
    path = write_displacement_field(field, OBLIQUE, tmp_path / "warp.nii.gz")
    img = nib.load(path)
    assert img.shape == (4, 5, 6, 1, 3)
    assert img.header.get_intent()[0] == "vector"
    back, affine = read_displacement_field(path)
    np.testing.assert_array_equal(back, field)
    np.testing.assert_allclose(affine, OBLIQUE, atol=1e-5)
    field2d = np.random.rand(4, 5, 2).astype(np.float32)
    back2d, _ = read_displacement_field(write_displacement_field(field2d, OBLIQUE, tmp_path / "w2.nii"))
    np.testing.assert_array_equal(back2d, field2d)


def test_partial_nan_is_filled_but_nan_filled_is_refused(tmp_path):
    data = np.ones((5, 5, 5), dtype=np.float32)
    data[0, 0, 0] = np.nan
    data[1, 1, 1] = -3.0
    image = read_image(_save(tmp_path / "some_nan.nii", data))
    assert image.data[0, 0, 0] == -3.0 and np.isfinite(image.data).all()
    path = _save(tmp_path / "all_nan.nii", np.full((5, 5, 5), np.nan, dtype=np.float32))
    with pytest.raises(ImageFileError, match=r"all_nan\.nii: holds no finite value"):
        read_image(path)


def _bad_files(tmp_path):
    good = _save(tmp_path / "good.nii.gz", np.random.rand(6, 6, 6).astype(np.float32))
    raw = good.read_bytes()
    cases = {}
    trunc = tmp_path / "truncated.nii.gz"
    trunc.write_bytes(raw[: len(raw) // 2])
    cases["truncated"] = (trunc, "truncated|not a readable")
    magic = tmp_path / "magic.nii.gz"
    body = gzip.decompress(raw)
    magic.write_bytes(gzip.compress(body[:344] + b"XXXX" + body[348:]))  # NIfTI magic at 344
    cases["magic"] = (magic, "not a readable|corrupt")
    text = tmp_path / "notes.nii"
    text.write_text("this is not an image")
    cases["text"] = (text, "not a readable")
    cases["missing"] = (tmp_path / "missing.nii.gz", "no such file")
    tiny = _save(tmp_path / "tiny.nii", np.ones((1, 1, 1), dtype=np.float32))
    cases["tiny"] = (tiny, "too small")
    five = _save(tmp_path / "five.nii", np.ones((3, 3, 3, 2, 2), dtype=np.float32))
    cases["5d"] = (five, "5 dimensions")
    cplx = _save(tmp_path / "complex.nii", np.ones((4, 4, 4), dtype=np.complex64))
    cases["complex"] = (cplx, "complex")
    for label, value in (("zero", 0.0), ("negative", -1.0), ("nan", np.nan)):
        target = tmp_path / f"{label}_spacing.nii"
        _save(target, np.ones((4, 4, 4), dtype=np.float32), np.eye(4))
        body = bytearray(target.read_bytes())
        body[80:84] = np.float32(value).tobytes()  # pixdim[1], stored little-endian by nibabel
        target.write_bytes(bytes(body))
        cases[f"{label} spacing"] = (target, "invalid voxel spacing")
    return cases


def test_bad_files_get_one_clear_error_naming_the_file(tmp_path):
    for name, (path, pattern) in _bad_files(tmp_path).items():
        with pytest.raises(ImageFileError, match=pattern) as exc:
            read_image(path)
        assert str(exc.value).startswith(str(path)), name


def test_wrong_dimensionality_and_non_integer_labels_are_refused(tmp_path):
    path = _save(tmp_path / "vol.nii", np.random.rand(6, 6, 6).astype(np.float32))
    with pytest.raises(ImageFileError, match="is a 3D image.*expected 2D"):
        read_image(path, ndim=2)
    with pytest.raises(ImageFileError, match="non-integer"):
        read_labels(path)


def test_int8_and_float64_inputs_become_float32(tmp_path):
    for dtype in (np.int8, np.float64):
        data = (np.arange(64).reshape(4, 4, 4) % 100).astype(dtype)
        image = read_image(_save(tmp_path / f"{np.dtype(dtype).name}.nii", data))
        assert image.data.dtype == np.float32
        np.testing.assert_array_equal(image.data, data.astype(np.float32))


def test_writes_are_atomic_and_refuse_bad_targets(tmp_path):
    image = Image(np.zeros((4, 4, 4), np.float32), np.eye(4), ndim=3)
    with pytest.raises(ImageFileError, match="does not exist"):
        write_image(image, tmp_path / "nowhere" / "x.nii.gz")
    with pytest.raises(ImageFileError, match=r"\.nii or \.nii\.gz"):
        write_image(image, tmp_path / "x.png")
    write_image(image, tmp_path / "x.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nii.gz"]  # no temporary left behind
