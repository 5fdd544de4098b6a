"""Held-out individuals without labels: the known transform, NCC, endpoint error, a tiny run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from firereg.data.augmentation import AugmentationConfig, TransformParams, apply, sample_params
from firereg.data.image import Image
from firereg.data.io import write_image
from firereg.evaluation.experiment_config import config_from_dict
from firereg.evaluation.individual import (
    _voxel_points_mm,
    endpoint_error_mm,
    known_fixed_to_moving,
    ncc,
    warp_by_displacement,
)
from firereg.inference.world import Grid

# a 2D plane with anisotropic voxels: 1 mm along i, 3 mm along j (RAS), not at the origin
AFFINE_2D = np.array([[1.0, 0, 0, -20.0], [0, 3.0, 0, 7.0], [0, 0, 2.0, 5.0], [0, 0, 0, 1]])
SHAPE_2D = (40, 21)


def _smooth_image() -> np.ndarray:
    i, j = np.meshgrid(np.arange(SHAPE_2D[0]), np.arange(SHAPE_2D[1]), indexing="ij")
    return (np.exp(-((i - 19.5) / 9.0) ** 2 - ((j - 10.0) / 4.0) ** 2)
            + 0.3 * np.sin(i / 5.0) * np.cos(j / 3.0)).astype(np.float32)


def test_ncc_is_one_for_identical_and_affinely_related_images():
    a = _smooth_image()
    assert ncc(a, a) == pytest.approx(1.0)
    assert ncc(a, 3.0 * a + 2.0, a > 0.2) == pytest.approx(1.0)
    assert ncc(a, -a) == pytest.approx(-1.0)
    assert ncc(a, np.ones_like(a)) == 0.0


def test_endpoint_error_of_a_known_translation_is_the_shift_in_mm():
    grid = Grid(SHAPE_2D, AFFINE_2D)
    t = 0.2  # normalized shift of component 0 = the last array axis (j, 3 mm voxels)
    params = TransformParams(affine=torch.tensor([[1.0, 0.0, t], [0.0, 1.0, 0.0]], dtype=torch.float64))
    truth, residual = known_fixed_to_moving(params, grid)
    shift_mm = t * (SHAPE_2D[1] - 1) / 2 * 3.0  # 6 mm
    identity = np.zeros((*SHAPE_2D, 2))
    assert endpoint_error_mm(identity, truth, grid) == pytest.approx(shift_mm)
    exact = truth - _voxel_points_mm(grid)
    assert endpoint_error_mm(exact, truth, grid) == pytest.approx(0.0, abs=1e-9)
    assert residual < 1e-9
    # moving(p) = fixed(phi(p)) reads the fixed image 6 mm further along j: T_true(x) = x - 6 mm in
    # world j (+A in RAS, so -A... i.e. +6 mm of LPS y, whose axis points posterior)
    np.testing.assert_allclose(exact[..., 1], shift_mm, atol=1e-9)
    np.testing.assert_allclose(exact[..., 0], 0.0, atol=1e-9)


def test_the_exact_inverse_of_a_random_protocol_transform_has_zero_error_and_realigns():
    grid = Grid(SHAPE_2D, AFFINE_2D)
    fixed = _smooth_image()
    params = sample_params(2, AugmentationConfig(), 7, size=SHAPE_2D)
    assert params.control is not None
    moved, _ = apply(params, torch.as_tensor(fixed)[None, None])
    moving = Image(moved[0, 0].numpy(), AFFINE_2D, 2)
    truth, residual = known_fixed_to_moving(params, grid)
    exact = truth - _voxel_points_mm(grid)
    assert residual < 1e-6
    assert endpoint_error_mm(exact, truth, grid) == pytest.approx(0.0, abs=1e-9)
    assert endpoint_error_mm(np.zeros_like(exact), truth, grid) > 1.0
    inner = np.zeros(SHAPE_2D, bool)
    inner[8:-8, 4:-4] = True
    realigned = warp_by_displacement(moving, grid, exact)
    unaligned = warp_by_displacement(moving, grid, np.zeros_like(exact))
    assert ncc(realigned, fixed, inner) > 0.995 > ncc(unaligned, fixed, inner)


@pytest.fixture(scope="module")
def individual_folder(tmp_path_factory):
    """A small T1-like head (bright scalp ring, brain, darker ventricles) with a brain mask, 1.5 mm."""
    root = tmp_path_factory.mktemp("individuals") / "fake-sub"
    root.mkdir()
    shape = (40, 44, 12)
    i, j, k = np.meshgrid(*(np.arange(s) for s in shape), indexing="ij")
    r = ((i - 19.5) / 17.0) ** 2 + ((j - 21.5) / 19.0) ** 2 + ((k - 5.5) / 9.0) ** 2
    brain = r <= 0.7
    head = r <= 1.0
    t1 = np.where(head, 0.8, 0.0) + np.where(brain, -0.2 + 0.1 * np.sin(i / 2.0) * np.cos(j / 3.0), 0.0)
    t1 -= 0.3 * ((((i - 19.5) / 4.0) ** 2 + ((j - 21.5) / 6.0) ** 2) <= 1.0) * brain
    affine = np.array([[-1.5, 0, 0, 30.0], [0, 1.5, 0, -33.0], [0, 0, 1.5, -9.0], [0, 0, 0, 1]])
    write_image(Image(t1.astype(np.float32), affine, 3), root / "t1.nii.gz")
    write_image(Image(brain.astype(np.float32), affine, 3), root / "brain_mask.nii.gz")
    return root


def test_a_tiny_run_scores_ncc_and_endpoint_error(individual_folder, tiny_model_run, tmp_path):
    from firereg.evaluation.evaluate import run_evaluation

    config = config_from_dict({
        "name": "tiny_individual", "kind": "individual", "individual": str(individual_folder),
        "model": str(tiny_model_run), "spacing": 2.0, "dims": 2, "torch_threads": 1,
        "protocol": {"transforms_per_image": 2, "seed": 3, "max_images": 1},
        "methods": ["unaligned", "fire_affine", "fire"]})
    assert config.modality_moving == config.modality_fixed == "T1" and config.syn_metric == "cc"
    outcome = run_evaluation(config, tmp_path / "out", progress=False)
    records = json.loads((tmp_path / "out" / "cases.json").read_text())["cases"]
    assert len(records) == 2
    for record in records:
        scores = record["methods"]
        known = scores["unaligned"]["known_displacement_mm"]
        assert known > 1.0
        assert scores["unaligned"]["endpoint_error_mm"] == pytest.approx(known, rel=1e-9)
        for method in ("unaligned", "fire_affine", "fire"):
            assert -1.0 <= scores[method]["ncc"] <= 1.0
            assert scores[method]["known_displacement_mm"] == pytest.approx(known)
            assert scores[method]["inverse_residual_mm"] < 1e-4
            assert scores[method]["folding_percent"] >= 0.0
    assert outcome.tables[0].key == "similarity"
    text = (tmp_path / "out" / "results.md").read_text()
    assert "endpoint error (mm)" in text and "NCC in the mask" in text and "held-out individual" in text
    csv = (tmp_path / "out" / "results.csv").read_text()
    assert "similarity,endpoint error (mm),unaligned" in csv


def test_the_individual_kind_is_checked():
    from firereg.config import ConfigError

    base = {"name": "x", "kind": "individual", "model": "t1-t2-2d"}
    with pytest.raises(ConfigError, match="individual is required"):
        config_from_dict(base)
    with pytest.raises(ConfigError, match="must be 'T1'"):
        config_from_dict({**base, "individual": "robex-ref", "modality_moving": "T2"})
    with pytest.raises(ConfigError, match="for kind individual only"):
        config_from_dict({"name": "x", "kind": "brain", "model": "m", "modality_moving": "T1",
                          "modality_fixed": "T2", "individual": "robex-ref"})
    config = config_from_dict({**base, "individual": "robex-ref"})
    assert config.transforms == 20 and config.label_table == {1: "brain/head mask"}


@pytest.mark.parametrize("name", ["heldout_individual_2d_t1", "heldout_individual_robex_2d_t1"])
def test_the_shipped_configs_load(name):
    from pathlib import Path

    from firereg.evaluation.experiment_config import load_config

    config = load_config(Path(__file__).parents[2] / "configs" / "experiments" / f"{name}.yaml")
    assert config.kind == "individual" and config.dims == 2 and config.transforms == 20
