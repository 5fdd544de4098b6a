"""ANTs conversions and baselines on small synthetic images with known geometry."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from firereg.data.image import Image
from firereg.evaluation import folding_percent, log_jacobian_std, mean_dice
from firereg.evaluation.ants_baselines import THREADS_ENV, ants_affine, ants_syn, unaligned
from firereg.evaluation.ants_io import from_ants, to_ants
from firereg.inference.world import Grid, physical_from_voxel

ants = pytest.importorskip("ants")

SHIFT_RAS = np.array([6.0, -4.5])  # moving content = fixed content moved by this, in mm


def _affine(spacing, origin, rotation=None):
    a = np.eye(4)
    d = len(spacing)
    rot = np.eye(3) if rotation is None else rotation
    a[:3, :d] = (rot @ np.diag(list(spacing) + [1.0] * (3 - d)))[:, :d]
    a[:3, 3] = list(origin) + [0.0] * (3 - len(origin))
    return a


def _scene(affine, shape, offset):
    """A phantom sampled on a 2D grid, its content moved by ``offset`` (RAS mm): image, organ mask."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).astype(float)
    world = idx @ affine[:2, :2].T + affine[:2, 3]
    p = world - np.array([8.0, 40.0]) - offset
    body = ((p / [20.0, 16.0]) ** 2).sum(-1) <= 1
    organ = (((p - [5.0, -3.0]) / [8.0, 5.0]) ** 2).sum(-1) <= 1
    value = 0.4 * body + 0.5 * organ + 0.3 * np.exp(-((p - [-8.0, 6.0]) ** 2).sum(-1) / 20)
    value = value + 0.1 * np.sin(p[..., 0] / 3) * body
    return value.astype(np.float32), organ.astype(np.int32)


@pytest.fixture(scope="module")
def pair():
    fixed_affine = _affine((1.2, 0.9), (-30.0, 12.0))
    moving_affine = _affine((1.0, 1.1), (-26.0, 9.0))  # another grid of the same world
    fixed_data, fixed_labels = _scene(fixed_affine, (64, 64), np.zeros(2))
    moving_data, moving_labels = _scene(moving_affine, (70, 60), SHIFT_RAS)
    return {
        "fixed": Image(fixed_data, fixed_affine, 2),
        "moving": Image(moving_data, moving_affine, 2),
        "moving_labels": Image(moving_labels, moving_affine, 2),
        "fixed_labels": fixed_labels,
    }


def _scores(result, pair):
    corr = np.corrcoef(result.warped.data.ravel(), pair["fixed"].data.ravel())[0, 1]
    dice = mean_dice(torch.as_tensor(result.warped_labels.data), torch.as_tensor(pair["fixed_labels"]), [1])
    return corr, dice


# --- conversions --------------------------------------------------------------------------------


def test_round_trip_of_an_oblique_anisotropic_3d_image_is_exact():
    rotation = Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix()
    affine = _affine((0.8, 1.3, 2.5), (-12.5, 30.25, 7.0), rotation)
    data = np.random.default_rng(0).random((5, 6, 7)).astype(np.float32)
    image = Image(data, affine, 3)
    converted = to_ants(image)
    assert converted.dimension == 3
    back = from_ants(converted)
    assert back.ndim == 3 and back.data.dtype == np.float32
    assert np.array_equal(back.data, data)
    assert np.allclose(back.affine, affine, rtol=0, atol=1e-12)
    # ANTs places voxel (1, 2, 3) at the LPS point firereg's world frame gives
    expected = (physical_from_voxel(Grid((5, 6, 7), affine)) @ [1, 2, 3, 1])[:3]
    assert np.allclose(ants.transform_index_to_physical_point(converted, (1, 2, 3)), expected, atol=1e-4)


def test_round_trip_of_a_2d_image_and_of_labels_is_exact():
    rotation = Rotation.from_euler("z", 23, degrees=True).as_matrix()
    affine = _affine((0.7, 1.9), (3.5, -8.0), rotation)
    data = np.random.default_rng(1).random((9, 11)).astype(np.float32)
    converted = to_ants(Image(data, affine, 2))
    assert converted.dimension == 2
    back = from_ants(converted)
    assert back.ndim == 2 and np.array_equal(back.data, data)
    assert np.allclose(back.affine, affine, rtol=0, atol=1e-12)
    expected = (physical_from_voxel(Grid((9, 11), affine)) @ [2, 3, 1])[:2]
    assert np.allclose(ants.transform_index_to_physical_point(converted, (2, 3)), expected, atol=1e-4)
    labels = np.arange(-2, 97, dtype=np.int32).reshape(9, 11)
    back_labels = from_ants(to_ants(Image(labels, affine, 2)), dtype=np.int32)
    assert back_labels.data.dtype == np.int32 and np.array_equal(back_labels.data, labels)
    # the plane's z position has no 2D ANTs counterpart: it comes back from a reference
    placed = affine.copy()
    placed[2, 3] = 5.0
    assert np.allclose(from_ants(to_ants(Image(data, placed, 2)), reference_affine=placed).affine, placed,
                       rtol=0, atol=1e-12)


def test_a_2d_plane_outside_the_xy_plane_is_refused():
    coronal = _affine((1.0, 1.0), (0.0, 0.0), Rotation.from_euler("x", 90, degrees=True).as_matrix())
    with pytest.raises(ValueError, match="x-y plane"):
        to_ants(Image(np.zeros((4, 4), np.float32), coronal, 2))


def test_unaligned_matches_ants_identity_resampling_between_oblique_3d_grids():
    fixed_affine = _affine((1.0, 1.2, 1.5), (-10.0, -12.0, -8.0),
                           Rotation.from_euler("xyz", [10, 5, -20], degrees=True).as_matrix())
    moving_affine = _affine((0.9, 1.0, 1.3), (-11.0, -9.0, -10.0),
                            Rotation.from_euler("xyz", [-5, 15, 10], degrees=True).as_matrix())
    shape = (16, 18, 14)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).astype(float)
    world = idx @ moving_affine[:3, :3].T + moving_affine[:3, 3]
    data = (np.sin(world[..., 0] / 4) + np.cos(world[..., 1] / 5) * world[..., 2] / 10).astype(np.float32)
    moving, fixed = Image(data, moving_affine, 3), Image(np.zeros((15, 16, 12), np.float32), fixed_affine, 3)
    ours = unaligned(moving, fixed).warped.data
    by_ants = ants.resample_image_to_target(to_ants(moving), to_ants(fixed), interp_type="linear").numpy()
    # compare where the fixed voxel reads well inside the moving image (borders differ by convention)
    fixed_world = np.stack(np.meshgrid(*[np.arange(n) for n in fixed.spatial_shape], indexing="ij"), -1)
    fixed_world = fixed_world @ fixed_affine[:3, :3].T + fixed_affine[:3, 3]
    moving_voxel = (fixed_world - moving_affine[:3, 3]) @ np.linalg.inv(moving_affine[:3, :3]).T
    inside = ((moving_voxel > 0.5) & (moving_voxel < np.array(shape) - 1.5)).all(-1)
    assert inside.sum() > 300
    assert np.allclose(ours[inside], by_ants[inside], atol=1e-4)


# --- baselines ----------------------------------------------------------------------------------


def test_unaligned_is_the_world_identity(pair):
    result = unaligned(pair["moving"], pair["fixed"], pair["moving_labels"])
    assert result.method == "unaligned" and result.registration_seconds == 0.0
    assert np.array_equal(result.warped.affine, pair["fixed"].affine)
    assert result.warped.spatial_shape == pair["fixed"].spatial_shape
    assert result.displacement.shape == (64, 64, 2) and not result.displacement.any()
    corr, dice = _scores(result, pair)
    assert corr < 0.8 and dice < 0.5  # the shift is visible


def test_ants_affine_recovers_a_known_translation(pair, tmp_path):
    base_corr, base_dice = _scores(unaligned(pair["moving"], pair["fixed"], pair["moving_labels"]), pair)
    threads_before = os.environ.get(THREADS_ENV)
    result = ants_affine(pair["moving"], pair["fixed"], moving_labels=pair["moving_labels"], threads=1,
                         seed=3, work_dir=tmp_path)
    corr, dice = _scores(result, pair)
    assert corr > 0.95 and corr > base_corr
    assert dice > 0.9 and dice > base_dice
    assert result.warped.spatial_shape == (64, 64)
    assert np.array_equal(result.warped.affine, pair["fixed"].affine)
    assert result.warped_labels.data.dtype == np.int32
    # fixed point -> moving point in LPS mm: the content moved by SHIFT_RAS, x and y change sign
    # (ANTs' affine has 6 parameters in 2D: a slight scale or shear remains, so check the mean)
    lps_shift = -SHIFT_RAS
    assert np.abs(result.displacement.reshape(-1, 2).mean(0) - lps_shift).max() < 0.4
    assert np.abs(result.displacement - lps_shift).max() < 1.5
    grid = Grid(pair["fixed"].spatial_shape, pair["fixed"].affine)
    assert folding_percent(result.displacement, grid) == 0.0
    assert log_jacobian_std(result.displacement, grid) < 1e-5  # an affine: constant Jacobian
    settings = result.settings
    assert settings["type_of_transform"] == "Affine" and settings["aff_metric"] == "mattes"
    assert settings["random_seed"] == 3 and settings["threads"] == 1
    assert settings["aff_iterations"] == [2100, 1200, 1200, 10]
    assert 0.0 < result.registration_seconds <= result.total_seconds
    assert result.transforms and all(Path(p).exists() and Path(p).parent == tmp_path
                                     for p in result.transforms)
    assert os.environ.get(THREADS_ENV) == threads_before  # set for the call only


def test_ants_affine_is_reproducible_with_one_thread_and_a_seed(pair):
    first = ants_affine(pair["moving"], pair["fixed"], threads=1, seed=7)
    second = ants_affine(pair["moving"], pair["fixed"], threads=1, seed=7)
    assert np.array_equal(first.displacement, second.displacement)
    assert first.warped_labels is None and first.transforms == ()
    assert ants.config._random_seed is None  # the seed was set for the call only


@pytest.mark.parametrize(("metric", "ants_metric", "sampling"), [("mi", "mattes", 32), ("cc", "CC", 4)])
def test_ants_syn_registers_without_folding(pair, metric, ants_metric, sampling):
    result = ants_syn(pair["moving"], pair["fixed"], metric=metric, moving_labels=pair["moving_labels"],
                      threads=1, reg_iterations=(20, 10, 0))
    assert result.method == f"ants_syn_{metric}"
    corr, dice = _scores(result, pair)
    assert corr > 0.95 and dice > 0.9
    grid = Grid(pair["fixed"].spatial_shape, pair["fixed"].affine)
    assert result.displacement.shape == (64, 64, 2)
    assert folding_percent(result.displacement, grid) == 0.0
    assert 0.0 < log_jacobian_std(result.displacement, grid) < 0.2  # non-rigid, but smooth
    settings = result.settings
    assert settings["type_of_transform"] == "SyN"
    assert settings["syn_metric"] == ants_metric and settings["syn_sampling"] == sampling
    assert settings["affine_stage"]["aff_metric"] == "mattes"
    assert settings["reg_iterations"] == [20, 10, 0]
    assert settings["syn_shrink_factors"] == [4, 2, 1] and settings["syn_smoothing_sigmas"] == [2, 1, 0]


def test_baselines_refuse_bad_inputs(pair):
    with pytest.raises(ValueError, match="metric"):
        ants_syn(pair["moving"], pair["fixed"], metric="msq")
    wrong_grid = Image(np.zeros((64, 64), np.int32), pair["fixed"].affine, 2)
    with pytest.raises(ValueError, match="grid"):
        ants_affine(pair["moving"], pair["fixed"], moving_labels=wrong_grid)
    with pytest.raises(ValueError, match="threads"):
        ants_affine(pair["moving"], pair["fixed"], threads=0)
    with pytest.raises(ValueError, match="one entry per level"):
        ants_affine(pair["moving"], pair["fixed"], aff_iterations=(10, 10))


def test_ants_affine_runs_in_process_without_a_thread_count(pair):
    result = ants_affine(pair["moving"], pair["fixed"], moving_labels=pair["moving_labels"],
                         aff_iterations=(100, 50), aff_shrink_factors=(2, 1), aff_smoothing_sigmas=(1, 0))
    corr, dice = _scores(result, pair)
    assert corr > 0.95 and dice > 0.9
    assert result.settings["threads"] == "ITK's count in the calling process"
    assert result.settings["aff_shrink_factors"] == [2, 1]


UNGUARDED_SCRIPT = """
import numpy as np
from firereg.data.image import Image
from firereg.evaluation.ants_baselines import ants_affine

image = Image(np.random.default_rng(0).random((24, 24)).astype(np.float32), np.eye(4), 2)
ants_affine(image, image, threads=1)  # no `if __name__ == "__main__":` guard
print("finished")
"""


def test_an_unguarded_script_gets_a_clear_error_not_a_hang(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode != 0 and "finished" not in done.stdout
    assert 'if __name__ == "__main__":' in done.stderr and "threads=None" in done.stderr
    guarded = tmp_path / "guarded.py"
    guarded.write_text(UNGUARDED_SCRIPT.replace("ants_affine(image", "if __name__ == '__main__':\n"
                                                "    ants_affine(image").replace("print(", "    print("))
    done = subprocess.run([sys.executable, str(guarded)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip().endswith("finished"), done.stderr[-2000:]
