"""The evaluation pairs: replayable transforms of the moving image, an untouched fixed image, labels
that move with their image, ES -> ED cardiac pairs, and oblique 2D planes made axial."""

import dataclasses

import numpy as np
import pytest
import torch

from firereg.data.augmentation import AugmentationConfig
from firereg.data.image import Image
from firereg.data.io import read_image, read_labels
from firereg.data.preprocessing import PreprocessConfig, preprocess
from firereg.evaluation.cases import build_case, build_cases, in_plane, selected_indices, source_images
from firereg.evaluation.experiment_config import config_from_dict
from firereg.evaluation.runner import MethodRunner, score


def _config(make, **protocol):
    data = make()
    data["protocol"] = {**data["protocol"], **protocol}
    return config_from_dict(data)


def test_cases_replay_exactly_from_image_transform_and_seed(brain_experiment):
    config = _config(brain_experiment)
    images, data = source_images(config)
    assert [im.name for im in images] == ["spm_avg152_k001", "spm_avg152_k002", "spm_avg152_k003"]
    assert data.synthetic_images and data.synthetic_transforms and "SYNTHETIC" in data.description
    first, again = build_cases(config, images), build_cases(config, images)
    assert len(first) == 3 * 3
    assert first[4].id == "spm_avg152_k002/t01/seed5"
    for a, b in zip(first, again, strict=True):
        assert a.id == b.id and np.array_equal(a.moving.data, b.moving.data)
        assert np.array_equal(a.moving_labels.data, b.moving_labels.data)
    one = build_case(config, images, first[4].image_index, first[4].transform_index)  # replay alone
    assert one.id == first[4].id and one.meta["transform"] == first[4].meta["transform"]
    assert np.array_equal(one.moving.data, first[4].moving.data)
    assert np.array_equal(one.moving_labels.data, first[4].moving_labels.data)
    # transforms differ between j and between images; another seed gives other cases
    assert not np.array_equal(first[0].moving.data, first[1].moving.data)
    assert first[0].meta["transform"] != first[3].meta["transform"]
    other = build_cases(_config(brain_experiment, seed=6), images)
    assert not np.array_equal(other[0].moving.data, first[0].moving.data)


def test_the_fixed_image_is_the_untransformed_other_modality(brain_experiment, synthetic_brain):
    config = _config(brain_experiment)
    for case in build_cases(config):
        folder = synthetic_brain / "slices" / case.image_name.removeprefix("spm_avg152_")
        t2 = read_image(folder / "t2.nii.gz", ndim=2)
        labels = read_labels(folder / "labels.nii.gz", ndim=2)
        assert np.array_equal(case.fixed.data, t2.data) and np.allclose(case.fixed.affine, t2.affine)
        assert np.array_equal(case.fixed_labels.data, labels.data)
        assert np.allclose(case.moving.affine, t2.affine)  # same grid: only the content moved
        assert not np.array_equal(case.moving_labels.data, labels.data)


def test_identity_transform_gives_dice_one_in_the_unaligned_method(brain_experiment):
    identity = dataclasses.asdict(AugmentationConfig.identity())
    config = _config(brain_experiment, augmentation=identity, transforms_per_image=1)
    runner = MethodRunner(config)
    for case in build_cases(config):
        assert np.array_equal(case.moving_labels.data, case.fixed_labels.data)
        scores = score(case, runner.run("unaligned", case), config.label_table)
        assert scores["dice"] == {"brain stem": 1.0, "cerebellum": 1.0, "white matter": 1.0}
        assert scores["hd95_mm"] == {"brain stem": 0.0, "cerebellum": 0.0, "white matter": 0.0}
        assert scores["mean_dice"] == 1.0 and scores["folding_percent"] == 0.0


def test_labels_move_with_their_image(brain_experiment, synthetic_brain):
    config = _config(brain_experiment)
    for case in build_cases(config)[:4]:
        moving, labels = case.moving.data, case.moving_labels.data
        folder = synthetic_brain / "slices" / case.image_name.removeprefix("spm_avg152_")
        original = read_image(folder / "t1.nii.gz", ndim=2).data
        # the transformed labels still sit on white-matter intensity (0.9 +- texture, T1) ...
        assert abs(moving[labels == 3].mean() - original[case.fixed_labels.data == 3].mean()) < 0.05
        # ... which the untransformed labels on the transformed image do not
        assert abs(moving[case.fixed_labels.data == 3].mean() - 0.9) > 0.05
        unaligned = score(case, MethodRunner(config).run("unaligned", case), config.label_table)
        assert unaligned["mean_dice"] < 0.9


def test_max_images_spreads_the_choice_over_the_split():
    assert selected_indices(13, 4) == [0, 4, 8, 12]
    assert selected_indices(13, None) == list(range(13)) == selected_indices(13, 20)
    assert selected_indices(3, 1) == [1]
    assert selected_indices(5, 2) == [0, 4]


def test_three_d_cases_are_the_test_slab(brain_experiment, synthetic_brain):
    config = _config(lambda: brain_experiment(dims=3), transforms_per_image=2)
    images, _ = source_images(config)
    assert [im.name for im in images] == ["spm_avg152_test_k001-003"]
    volume = read_image(synthetic_brain / "t2.nii.gz", ndim=3)
    fixed = images[0].fixed
    assert fixed.spatial_shape == (40, 44, 3) and np.array_equal(fixed.data, volume.data[:, :, 1:4])
    assert np.allclose(fixed.affine[:3, 3], volume.affine[:3, :3] @ [0, 0, 1] + volume.affine[:3, 3])
    cases = build_cases(config, images)
    assert len(cases) == 2 and cases[0].moving.ndim == 3


def _oblique(data: np.ndarray) -> Image:
    angle = np.deg2rad(35.0)
    rot = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([1.5, 1.4, 8.0])
    affine[:3, 3] = [-30.0, 12.0, 40.0]
    return Image(data, affine, 2)


def test_in_plane_makes_an_oblique_slice_axial_without_changing_what_the_model_sees():
    rng = np.random.default_rng(0)
    image = _oblique(rng.random((36, 30)).astype(np.float32))
    (flat,) = in_plane(image)
    assert np.allclose(flat.affine[2, :2], 0.0)  # the plane is now the x-y plane (ANTs 2D)
    assert np.allclose(flat.spacing, image.spacing)
    config = PreprocessConfig(spacing=1.5)
    assert torch.allclose(preprocess(image, config).tensor(), preprocess(flat, config).tensor(), atol=1e-5)
    axial = Image(image.data, np.diag([-2.0, 2.0, 2.0, 1.0]), 2)
    assert in_plane(axial)[0] is axial  # axial RAS slices are left alone


@pytest.fixture(scope="module")
def tiny_phantom(tmp_path_factory):
    from firereg.data.sources.cardiac_phantom import PhantomConfig, write_acdc_phantom

    root = tmp_path_factory.mktemp("phantom")
    config = PhantomConfig(size=(64, 64), pixel_spacing_mm=3.0, num_slices=3, num_phases=20, supersample=1,
                           through_plane_samples=1)
    write_acdc_phantom(root, 2, config, seed=0)
    return root


def test_cardiac_cases_are_es_to_ed_per_slice_with_lv_and_myocardium(tiny_phantom):
    from firereg.data.sources.acdc import acdc_cases, paper_split

    config = config_from_dict({"name": "c", "kind": "cardiac", "model": "cine-2d",
                               "data_root": str(tiny_phantom)})
    images, data = source_images(config)
    assert data.synthetic_images and not data.synthetic_transforms and "SYNTHETIC" in data.description
    (test_case,) = [c for c in paper_split(acdc_cases(tiny_phantom)) if c.split == "test"]
    cases = build_cases(config, images)
    assert cases and all(c.id.startswith(f"{test_case.name}_z") and c.id.endswith("_ES-ED") for c in cases)
    es = read_image(test_case.frames[test_case.es], ndim=3)
    ed_labels = read_labels(test_case.frame_labels[test_case.ed], ndim=3)
    for case in cases:
        z = case.meta["slice"]
        assert case.transform_index is None and case.meta["moving_frame"] == test_case.es
        assert np.array_equal(case.moving.data, es.data[:, :, z])
        assert np.array_equal(case.fixed_labels.data, ed_labels.data[:, :, z])
        assert np.isin(case.fixed_labels.data, [2, 3]).any()
        assert np.allclose(case.fixed.affine[2, :2], 0.0)  # oblique short axis made axial for ANTs
