"""Cross-brain pairs (``moving_brain``): a second brain on another grid, paired by world z, scored
on grey and white matter derived by one rule on both sides."""

import dataclasses
import json
import shutil

import numpy as np
import pytest

from firereg.config import ConfigError
from firereg.data.augmentation import AugmentationConfig
from firereg.data.image import Image
from firereg.data.io import read_image, read_labels, write_image, write_labels
from firereg.evaluation.cases import build_cases, source_images
from firereg.evaluation.cross_brain import matching_slice
from firereg.evaluation.experiment_config import config_from_dict
from firereg.evaluation.runner import MethodRunner, score


def _volume(affine, shape=(4, 4, 10)) -> Image:
    return Image(np.zeros(shape, np.float32), np.asarray(affine, float), 3)


SPM = [[-2, 0, 0, 90], [0, 2, 0, -126], [0, 0, 2, -72], [0, 0, 0, 1]]


def test_matching_slice_is_the_slice_at_the_same_world_z():
    fixed = _volume(SPM)
    icbm = _volume([[1, 0, 0, -98], [0, 1, 0, -134], [0, 0, 1, -72], [0, 0, 0, 1]], (4, 4, 30))
    assert [matching_slice(fixed, k, icbm) for k in (0, 3, 7)] == [0, 6, 14]  # z = -72 + 2k
    # a second brain stored head-to-foot: slice 0 at the top
    flipped = _volume([[1, 0, 0, -98], [0, 1, 0, -134], [0, 0, -1, -43], [0, 0, 0, 1]], (4, 4, 30))
    assert matching_slice(fixed, 0, flipped) == 29 and matching_slice(fixed, 7, flipped) == 15


def test_matching_slice_refuses_planes_that_do_not_coincide():
    fixed = _volume(SPM)
    offset = _volume([[1, 0, 0, -98], [0, 1, 0, -134], [0, 0, 1, -72.5], [0, 0, 0, 1]], (4, 4, 30))
    with pytest.raises(ValueError, match="no slice at the world z of fixed slice 1"):
        matching_slice(fixed, 1, offset)
    coronal = _volume([[1, 0, 0, -98], [0, 0, 1, -134], [0, 1, 0, -72], [0, 0, 0, 1]], (4, 30, 4))
    with pytest.raises(ValueError, match="axial planes are not the fixed brain's"):
        matching_slice(fixed, 1, coronal)
    with pytest.raises(ValueError, match="no slice"):
        matching_slice(fixed, 9, _volume([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, -72], [0, 0, 0, 1]]))


@pytest.fixture(scope="module")
def two_brains(synthetic_brain, tmp_path_factory):
    """The synthetic SPM-layout brain with tissue maps, and the same anatomy as a 'second brain' in
    the ICBM layout on another grid: x stored the other way round and 1 mm slices (each 2 mm slice
    twice), so only world coordinates can pair them."""
    root = tmp_path_factory.mktemp("two_brains")
    spm = root / "spm"
    shutil.copytree(synthetic_brain, spm)
    labels = read_labels(spm / "labels.nii.gz", ndim=3)
    t1 = read_image(spm / "t1.nii.gz", ndim=3)
    grey, white = (labels.data == 1).astype(np.float32), (labels.data == 3).astype(np.float32)
    write_image(labels.with_data(grey), spm / "grey.nii.gz")
    write_image(labels.with_data(white), spm / "white.nii.gz")
    tissue = np.where(labels.data == 1, 1, np.where(labels.data == 3, 3, 0)).astype(np.int32)

    second = root / "second"
    second.mkdir()
    a = labels.affine  # x = -2 i + 40, y = 2 j - 44, z = 2 k - 4
    flipped = np.array([[2.0, 0, 0, a[0, 3] - 2 * (labels.spatial_shape[0] - 1)], [0, 2, 0, a[1, 3]],
                        [0, 0, 1, a[2, 3]], [0, 0, 0, 1]])

    def restack(data):
        return np.repeat(data[::-1], 2, axis=2)

    write_image(Image(restack(t1.data), flipped, 3), second / "t1.nii.gz")
    write_labels(Image(restack(tissue), flipped, 3), second / "labels.nii.gz")
    write_image(Image(restack(grey), flipped, 3), second / "grey.nii.gz")
    write_image(Image(restack(white), flipped, 3), second / "white.nii.gz")
    (second / "done.json").write_text(json.dumps({"dataset": "second_test_brain"}))
    return spm, second


def _config(spm, second, **overrides):
    data = {"name": "cross", "kind": "brain", "model": "t1-t2-2d", "modality_moving": "T1",
            "modality_fixed": "T2", "dims": 2, "data_root": str(spm), "spacing": 2.0,
            "moving_brain": str(second), "protocol": {"transforms_per_image": 2, "seed": 1}}
    data.update(overrides)
    return config_from_dict(data)


def test_cross_brain_pairs_the_second_brain_by_world_and_scores_tissue(two_brains):
    spm, second = two_brains
    identity = dataclasses.asdict(AugmentationConfig.identity())
    config = _config(spm, second, protocol={"transforms_per_image": 1, "seed": 1, "augmentation": identity})
    assert config.label_table == {1: "grey matter", 3: "white matter"}
    images, info = source_images(config)
    assert [im.name for im in images] == [f"second_to_spm_avg152_k00{k}" for k in (1, 2, 3)]
    assert info.dataset == "second->spm_avg152" and "cross-brain" in info.description
    for image in images:
        # the moving image keeps its own grid: x stored the other way round
        assert image.moving.affine[0, 0] == 2.0 and image.fixed.affine[0, 0] == -2.0
        assert set(np.unique(image.fixed_labels.data)) == {0, 1, 3}
    runner = MethodRunner(config)
    for case in build_cases(config, images):
        scores = score(case, runner.run("unaligned", case), config.label_table)
        # same anatomy, other grid: read at the same world points it overlaps exactly
        assert scores["dice"] == {"grey matter": 1.0, "white matter": 1.0}


def test_cross_brain_moves_the_second_brain_by_the_protocol(two_brains):
    spm, second = two_brains
    config = _config(spm, second)
    cases = build_cases(config)
    assert len(cases) == 3 * 2
    runner = MethodRunner(config)
    dice = [score(c, runner.run("unaligned", c), config.label_table)["mean_dice"] for c in cases]
    assert max(dice) < 0.98


def test_cross_brain_three_d_slabs_span_the_same_world_z(two_brains):
    spm, second = two_brains
    config = _config(spm, second, dims=3)
    (image,) = source_images(config)[0]
    assert image.fixed.spatial_shape == (40, 44, 3) and image.moving.spatial_shape == (40, 44, 5)
    assert np.isclose(image.moving.affine[2, 3], image.fixed.affine[2, 3])  # both start at the slab's z


def test_moving_brain_config_is_checked(two_brains, tmp_path):
    spm, second = two_brains
    with pytest.raises(ConfigError, match="moving_brain is for kind brain"):
        config_from_dict({"name": "c", "kind": "cardiac", "model": "cine-2d", "moving_brain": str(second)})
    with pytest.raises(ValueError, match="neither a folder nor a prepared dataset"):
        source_images(_config(spm, tmp_path / "nowhere"))
    (spm_without := tmp_path / "spm").mkdir()
    for item in spm.iterdir():
        if item.name not in ("grey.nii.gz", "white.nii.gz"):
            (shutil.copytree if item.is_dir() else shutil.copy)(item, spm_without / item.name)
    with pytest.raises(ValueError, match="needs its tissue maps"):
        source_images(_config(spm_without, second))


def test_fixed_brain_only_zeroes_the_fixed_image_outside_grey_white_and_csf(tmp_path):
    from firereg.evaluation.cross_brain import fixed_brain_only

    affine = np.array(SPM, dtype=float)
    shape = (6, 5, 4)
    tissue = np.zeros(shape, np.float32)
    tissue[1:4, 1:4, 1:3] = 0.3  # each map 0.3 inside a box: 0.9 >= 0.5 there, 0 outside
    for name in ("grey", "white", "csf"):
        write_image(Image(tissue, affine, 3), tmp_path / f"{name}.nii.gz")
    head = Image(np.full(shape, 7.0, np.float32), affine, 3)
    brain = fixed_brain_only(head, tmp_path)
    assert brain.data.sum() == 7.0 * 3 * 3 * 2 and np.all(brain.data[1:4, 1:4, 1:3] == 7.0)
    assert np.allclose(brain.affine, affine)
    (tmp_path / "csf.nii.gz").unlink()
    with pytest.raises(ValueError, match=r"missing \['csf.nii.gz'\]"):
        fixed_brain_only(head, tmp_path)


def test_whole_region_evaluates_one_whole_volume_and_is_checked(two_brains):
    spm, second = two_brains
    config = _config(spm, second, dims=3, region="whole")
    (image,) = source_images(config)[0]
    assert "_whole_" in image.name  # one "slab" of every slice
    assert image.fixed.spatial_shape == read_image(spm / "t2.nii.gz", ndim=3).spatial_shape
    with pytest.raises(ConfigError, match="region: whole is for kind brain with dims 3"):
        _config(spm, second, region="whole")  # dims 2
    with pytest.raises(ConfigError, match="region must be one of"):
        _config(spm, second, dims=3, region="half")
    with pytest.raises(ConfigError, match="fixed_brain_only is for cross-brain pairs"):
        _config(spm, second, moving_brain=None, fixed_brain_only=True)
