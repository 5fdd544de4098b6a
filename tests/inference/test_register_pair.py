"""register_pair end to end: the written files mean in ANTs what firereg computed."""

import json

import ants
import numpy as np
import pytest
import torch

from firereg.config import ModelConfig
from firereg.data.image import Image
from firereg.data.io import read_image, read_labels
from firereg.data.preprocessing import PreprocessConfig
from firereg.inference.image_affine import ImageAffineConfig
from firereg.inference.outputs import write_pair_outputs
from firereg.inference.register_pair import register_pair
from firereg.model import FireModel


def _oblique(angle_deg, spacing, origin):
    a = np.deg2rad(angle_deg)
    m = np.eye(4)
    rotation = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    m[:3, :3] = rotation @ np.diag(spacing)
    m[:3, 3] = origin
    return m


def _phantom(shape, affine, centre):
    idx = np.stack(np.meshgrid(*(np.arange(s) for s in shape), indexing="ij"), -1).astype(float)
    world = idx @ affine[:3, :3].T + affine[:3, 3]
    r = np.sqrt((((world - centre) / [24, 18, 20]) ** 2).sum(-1))
    inner = np.sqrt((((world - centre - [5, 0, 0]) / [8, 6, 7]) ** 2).sum(-1))
    image = (1 / (1 + np.exp((r - 1) * 10)) + 1 / (1 + np.exp((inner - 1) * 10))).astype(np.float32)
    labels = (r < 1).astype(np.int32) + (inner < 1)
    return image, labels


def _model_with_a_known_transform():
    model = FireModel(ModelConfig(ndim=3, width=4))
    with torch.no_grad():
        for net, sign in ((model.transform_ab, 1.0), (model.transform_ba, -1.0)):
            bias = torch.tensor([1.0, 0.05, 0, 0.06, -0.05, 1.0, 0, -0.04, 0, 0, 1.0, 0.03])
            bias[[3, 7, 11]] *= sign
            net.affine.dense[-1].bias.copy_(bias)
            net.nonrigid.head.bias.copy_(torch.tensor([0.02, -0.01, 0.015]) * sign)
    return model


@pytest.fixture
def pair():
    fixed_affine = _oblique(10, (1.2, 1.1, 2.0), (-35, -30, -25))
    moving_affine = _oblique(-6, (1.4, 1.3, 1.5), (-38, -33, -30))
    f_img, _ = _phantom((60, 62, 26), fixed_affine, np.array([0.0, 0.0, 0.0]))
    m_img, m_lab = _phantom((52, 54, 36), moving_affine, np.array([3.0, -2.0, 1.0]))
    return (Image(m_img, moving_affine, 3, "moving"), Image(f_img, fixed_affine, 3, "fixed"),
            Image(m_lab, moving_affine, 3, "labels"))


def test_written_transforms_reproduce_warped_in_ants(tmp_path, pair):
    moving, fixed, labels = pair
    model = _model_with_a_known_transform()
    result = register_pair(model, moving, fixed, moving_labels=labels,
                           preprocess_config=PreprocessConfig(spacing=2.0))
    paths = write_pair_outputs(result, tmp_path, fixed_affine=fixed.affine,
                               moving_affine=moving.affine, extra_report={"model": "test"})
    report = json.loads(paths["report"].read_text())
    assert {"folding_percent", "inverse_consistency_mm", "timings", "model"} <= set(report)
    assert report["folding_percent"] == 0.0

    from firereg.data.io import write_image, write_labels

    write_image(moving, tmp_path / "moving.nii.gz")
    write_image(fixed, tmp_path / "fixed.nii.gz")
    write_labels(labels, tmp_path / "labels.nii.gz")
    fixed_ants = ants.image_read(str(tmp_path / "fixed.nii.gz"))
    transforms = [str(paths["warp"]), str(paths["affine"])]
    by_ants = ants.apply_transforms(fixed_ants, ants.image_read(str(tmp_path / "moving.nii.gz")),
                                    transforms, interpolator="linear").numpy()
    warped = read_image(paths["warped"]).data
    assert warped.std() > 0.1
    assert np.corrcoef(warped.ravel(), by_ants.ravel())[0, 1] > 0.99
    labels_ants = ants.apply_transforms(fixed_ants, ants.image_read(str(tmp_path / "labels.nii.gz")),
                                        transforms, interpolator="genericLabel").numpy()
    ours = read_labels(paths["warped_labels"]).data
    for k in (1, 2):
        a, b = ours == k, labels_ants == k
        assert a.sum() > 50 and 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.97
    # the inverse files map the fixed image onto the moving grid
    inverse = ants.apply_transforms(ants.image_read(str(tmp_path / "moving.nii.gz")), fixed_ants,
                                    [str(paths["inverse_warp"]), str(paths["inverse_affine"])])
    assert inverse.shape == moving.spatial_shape


def test_same_image_with_an_untrained_model_is_the_identity(pair):
    moving, _, _ = pair
    result = register_pair(FireModel(ModelConfig(ndim=3, width=4)), moving, moving,
                           preprocess_config=PreprocessConfig(spacing=2.0))
    np.testing.assert_allclose(result.affine, np.eye(4), atol=1e-9)
    assert np.abs(result.warp).max() == 0.0
    np.testing.assert_allclose(result.warped.data, moving.data, atol=1e-5)
    assert result.report["inverse_consistency_mm"] == pytest.approx(0.0, abs=1e-9)


def test_inverse_consistency_is_measured_in_mm(pair):
    moving, fixed, _ = pair
    model = _model_with_a_known_transform()
    with torch.no_grad():  # break the symmetry: B->A no longer undoes A->B
        model.transform_ba.nonrigid.head.bias.zero_()
    result = register_pair(model, moving, fixed, preprocess_config=PreprocessConfig(spacing=2.0))
    assert result.report["inverse_consistency_mm"] > 0.3


def test_wrong_dimensionality_is_refused(pair):
    moving, fixed, _ = pair
    with pytest.raises(ValueError, match="2D model needs a single 2D image"):
        register_pair(FireModel(ModelConfig(ndim=2, width=4)), moving, fixed)


def test_apply_reproduces_warped_and_its_labels(tmp_path, pair):
    from firereg.inference.apply import apply_transforms, transform_files

    moving, fixed, labels = pair
    result = register_pair(_model_with_a_known_transform(), moving, fixed, moving_labels=labels,
                           preprocess_config=PreprocessConfig(spacing=2.0))
    write_pair_outputs(result, tmp_path, fixed_affine=fixed.affine, moving_affine=moving.affine)
    warp, affine = transform_files(tmp_path)
    again = apply_transforms(moving, fixed, warp, affine)
    np.testing.assert_allclose(again.data, result.warped.data, atol=2e-3)
    again_labels = apply_transforms(labels, fixed, warp, affine, labels=True)
    assert (again_labels.data == result.warped_labels.data).mean() > 0.995
    with pytest.raises(ValueError, match="not a firereg registration folder"):
        transform_files(tmp_path / "nothing")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_the_image_affine_stage_aligns_a_shifted_phantom_an_untrained_network_cannot():
    affine = _oblique(0, (2.0, 2.0, 2.0), (-40, -40, -30))
    f_img, f_lab = _phantom((40, 40, 32), affine, np.array([0.0, 0.0, 0.0]))
    m_img, m_lab = _phantom((40, 40, 32), affine, np.array([6.0, -4.0, 3.0]))  # the head moved
    moving, fixed = Image(m_img, affine, 3, "moving"), Image(f_img, affine, 3, "fixed")
    labels = Image(m_lab, affine, 3, "labels")
    model = FireModel(ModelConfig(ndim=3, width=4))  # untrained: the identity
    settings = dict(moving_labels=labels, preprocess_config=PreprocessConfig(spacing=2.0))
    before = register_pair(model, moving, fixed, **settings)
    after = register_pair(model, moving, fixed, **settings,
                          image_affine=ImageAffineConfig(metric="ncc", factors=(2, 1), steps=(100, 100)))
    report = after.report["image_affine"]
    assert before.report["image_affine"] is None and report["kept"]
    assert "image_affine_s" in after.report["timings"]
    outer_before = _dice(before.warped_labels.data >= 1, f_lab >= 1)
    outer_after = _dice(after.warped_labels.data >= 1, f_lab >= 1)
    assert outer_before < 0.85 and outer_after > 0.97
    # the world translation of the moving head, recovered in the written (LPS, fixed -> moving) affine
    shift_ras = np.array([6.0, -4.0, 3.0])
    np.testing.assert_allclose(after.affine[:3, 3] * [-1, -1, 1], shift_ras, atol=0.6)
    # the backward matrix is the inverse of the forward one
    np.testing.assert_allclose(after.inverse_affine @ after.affine, np.eye(4), atol=1e-6)
