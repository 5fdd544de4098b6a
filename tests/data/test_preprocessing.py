"""Preprocessing of §4.1: orientation, isotropic spacing, sizes divisible by 4, [-1, 1], inverse."""

import numpy as np
import pytest
import torch

from firereg.data.image import Image
from firereg.data.preprocessing import PreprocessConfig, canonical_directions, model_grid, preprocess

LPS_ANISO = np.array([[-0.9, 0.0, 0.0, 90.0],
                      [0.0, -0.9, 0.0, 110.0],
                      [0.0, 0.0, 3.0, -40.0],
                      [0.0, 0.0, 0.0, 1.0]])


def _box_image(shape=(60, 70, 16), affine=LPS_ANISO):
    data = np.zeros(shape, dtype=np.float32)
    data[20:40, 25:50, 4:12] = 100.0
    return Image(data, affine, ndim=3, source="box")


def test_model_grid_is_ras_isotropic_divisible_by_4_and_centred():
    image = _box_image()
    shape, affine = model_grid(image, PreprocessConfig(spacing=1.28))
    assert all(s % 4 == 0 for s in shape)
    np.testing.assert_allclose(affine[:3, :3], np.diag([1.28, 1.28, 1.28]), atol=1e-12)
    centre = lambda a, s: a[:3, :3] @ ((np.asarray(s) - 1) / 2) + a[:3, 3]  # noqa: E731
    np.testing.assert_allclose(centre(affine, shape), centre(LPS_ANISO, image.spatial_shape), atol=1e-9)
    # the grid covers the field of view: 60*0.9 = 54 mm -> 43 voxels -> 44
    assert shape == (44, 52, 40)


def test_oblique_directions_are_kept_and_permuted_to_ras():
    rot = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # axes: S, -R, -A
    angle = np.deg2rad(10)
    tilt = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    affine = np.eye(4)
    affine[:3, :3] = tilt @ rot @ np.diag([1.0, 2.0, 1.5])
    directions = canonical_directions(affine, 3)[:3, :3]
    assert np.all(np.diag(directions) > 0.9)  # each axis points along +R, +A, +S
    np.testing.assert_allclose(directions.T @ directions, np.eye(3), atol=1e-12)


def test_intensities_map_robustly_to_minus_one_one():
    image = _box_image()
    image.data[0, 0, 0] = 1e6  # an outlier does not squash the range
    out = preprocess(image)
    data = out.image.data
    assert data.min() == pytest.approx(-1.0) and data.max() == pytest.approx(1.0)
    assert out.intensity_range[1] < 1e3
    assert (data > 0.9).mean() > 0.03  # the box is bright, not squashed by the outlier


def test_world_position_of_the_content_is_preserved():
    image = _box_image()
    out = preprocess(image)
    def centroid_world(img: Image, mask: np.ndarray) -> np.ndarray:
        idx = np.argwhere(mask).mean(axis=0)
        return img.affine[:3, :3] @ idx + img.affine[:3, 3]
    np.testing.assert_allclose(centroid_world(out.image, out.image.data > 0),
                               centroid_world(image, image.data > 50), atol=0.7)


def test_inverse_mapping_returns_to_the_original_grid():
    i, j, k = np.meshgrid(*(np.arange(n) for n in (40, 44, 12)), indexing="ij")
    smooth = (50 * np.sin(i / 9.0) + 30 * np.cos(j / 7.0) + 20 * np.sin(k / 4.0)).astype(np.float32)
    image = Image(smooth, LPS_ANISO, ndim=3)
    out = preprocess(image, PreprocessConfig(spacing=0.9, percentiles=(0.0, 100.0)))
    back = out.denormalize(out.to_original(out.tensor()))[0, 0].numpy()
    assert back.shape == image.spatial_shape
    inner = (slice(3, -3), slice(3, -3), slice(1, -1))
    scale = smooth.max() - smooth.min()
    assert np.abs(back[inner] - smooth[inner]).max() < 0.02 * scale


def test_labels_follow_the_image_and_come_back():
    image = _box_image()
    labels = Image((image.data > 50).astype(np.int32) * 3, LPS_ANISO, ndim=3)
    out = preprocess(image)
    model_labels = out.labels_to_model_grid(labels)
    assert set(model_labels.unique().tolist()) == {0, 3}
    agree = ((model_labels[0, 0] == 3) == torch.from_numpy(out.image.data > 0)).float().mean()
    assert agree > 0.98
    back = out.to_original(model_labels, labels=True)[0, 0].numpy()
    assert (back == labels.data).mean() > 0.98
    wrong = Image(labels.data[:-1], LPS_ANISO, ndim=3)
    with pytest.raises(ValueError, match="does not match"):
        out.labels_to_model_grid(wrong)


def test_2d_and_series_inputs():
    image2d = Image(_box_image().data[:, :, 8], LPS_ANISO, ndim=2)
    out2d = preprocess(image2d)
    assert out2d.image.ndim == 2 and all(s % 4 == 0 for s in out2d.shape)
    cine = Image(np.stack([_box_image().data] * 3, axis=-1), LPS_ANISO, ndim=3)
    out = preprocess(cine, PreprocessConfig(spacing=2.0))
    assert out.image.is_series and out.tensor().shape[0] == 3
    np.testing.assert_array_equal(out.image.data[..., 0], out.image.data[..., 2])


def test_fixed_shape_and_bad_configs():
    out = preprocess(_box_image(), PreprocessConfig(spacing=2.0, shape=(32, 32, 32)))
    assert out.shape == (32, 32, 32)
    with pytest.raises(ValueError, match="spacing"):
        PreprocessConfig(spacing=0)
    with pytest.raises(ValueError, match="shape"):
        PreprocessConfig(shape=(30, 32, 32))
    with pytest.raises(ValueError, match="percentiles"):
        PreprocessConfig(percentiles=(99.0, 1.0))
    with pytest.raises(ValueError, match="constant"):
        preprocess(Image(np.ones((20, 20, 20), np.float32), np.eye(4), ndim=3))
