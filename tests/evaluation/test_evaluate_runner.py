"""The runner: FIRE's whole transform as one field in mm, and a run's records."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from firereg.data.preprocessing import PreprocessConfig
from firereg.evaluation.cases import build_cases
from firereg.evaluation.experiment_config import config_from_dict
from firereg.evaluation.runner import fire_displacement, run_experiment
from firereg.inference.register_pair import register_pair
from firereg.inference.world import Grid, physical_from_voxel
from firereg.pretrained.registry import select_model


@pytest.fixture(scope="module")
def perturbed(tiny_model_run):
    """The tiny model with its (zero-initialised) transform heads made to move things."""
    selection = select_model(str(tiny_model_run), ndim=2)
    model = selection.load()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    return selection, model


def test_fire_displacement_is_the_transform_register_pair_resamples_with(brain_experiment, perturbed):
    _, model = perturbed
    case = build_cases(config_from_dict(brain_experiment()))[1]
    result = register_pair(model, case.moving, case.fixed, preprocess_config=PreprocessConfig(spacing=2.0))
    u = fire_displacement(result.affine, result.warp, case.fixed)
    assert np.abs(u).max() > 1.0  # a real transform, in mm
    # x + u(x) in LPS mm -> moving voxels -> bilinear sample: the warped image register_pair made
    d = 2
    fixed_m = physical_from_voxel(Grid(case.fixed.spatial_shape, case.fixed.affine))
    moving_m = physical_from_voxel(Grid(case.moving.spatial_shape, case.moving.affine))
    axes = [np.arange(s, dtype=np.float64) for s in case.fixed.spatial_shape]
    x = np.stack(np.meshgrid(*axes, indexing="ij"), -1) @ fixed_m[:d, :d].T + fixed_m[:d, d]
    voxels = (x + u - moving_m[:d, d]) @ np.linalg.inv(moving_m[:d, :d]).T
    inside = np.all((voxels >= 0) & (voxels <= np.array(case.moving.spatial_shape) - 1), axis=-1)
    sampled = ndimage.map_coordinates(case.moving.data.astype(np.float64), np.moveaxis(voxels, -1, 0),
                                      order=1)
    assert inside.mean() > 0.5
    assert np.abs(sampled - result.warped.data)[inside].max() < 1e-4


def test_a_run_records_every_method_on_every_case(brain_experiment, perturbed):
    selection, model = perturbed
    config = config_from_dict(brain_experiment(methods=["unaligned", "fire_affine", "fire"], torch_threads=1))
    cases = build_cases(config)[:2]
    threads = torch.get_num_threads()
    seen = []
    run = run_experiment(config, cases, model=model, selection=selection, spacing=2.0, progress=False,
                         on_case=seen.append)
    assert torch.get_num_threads() == threads  # restored after the run
    assert [r["id"] for r in run.records] == [c.id for c in cases] == [r["id"] for r in seen]
    for record in run.records:
        assert set(record["methods"]) == {"unaligned", "fire_affine", "fire"}
        fire = record["methods"]["fire"]
        assert 0.0 <= fire["mean_dice"] <= 1.0 and fire["inverse_consistency_mm"] >= 0.0
        assert fire["registration_seconds"] <= fire["total_seconds"]
        assert record["methods"]["unaligned"]["inverse_consistency_mm"] is None
        assert record["methods"]["fire_affine"]["log_jacobian_std"] == pytest.approx(0.0, abs=1e-6)
    assert run.settings["fire"]["affine_only"] is False and run.settings["fire_affine"]["affine_only"]
    assert run.settings["fire"]["torch_threads"] == 1
    assert set(run.example["warped_labels"]) == {"unaligned", "fire_affine", "fire"}


def test_refinement_columns_run_their_own_refinement(brain_experiment, perturbed):
    selection, model = perturbed
    methods = ["fire", "fire_refine", "fire_refine_network"]
    config = config_from_dict(brain_experiment(methods=methods, torch_threads=1))
    case = build_cases(config)[0]
    run = run_experiment(config, [case], model=model, selection=selection, spacing=2.0, progress=False,
                         warm_up=False)
    scores = run.records[0]["methods"]
    assert scores["fire"]["extra"]["refine"] is None and scores["fire"]["extra"]["finetune"] is None
    assert scores["fire_refine"]["extra"]["refine"]["steps"] >= 1
    assert scores["fire_refine"]["extra"]["finetune"] is None
    network = scores["fire_refine_network"]["extra"]
    assert network["refine"] is None and network["finetune"]["steps"] == 30
    # the fine-tuning is part of the registration time
    assert scores["fire_refine_network"]["registration_seconds"] >= network["timings"]["finetune_s"] > 0
    assert run.settings["fire_refine_network"]["finetune"] == {"steps": 30, "lr": 1e-4,
                                                                "train_synthesis": False}
    assert run.settings["fire_refine"]["finetune"] is None
    # the network's weights are those it started with: fine-tuning works on a copy
    again = run_experiment(config_from_dict(brain_experiment(methods=["fire"], torch_threads=1)), [case],
                           model=model, selection=selection, spacing=2.0, progress=False, warm_up=False)
    assert scores["fire"]["mean_dice"] == again.records[0]["methods"]["fire"]["mean_dice"]


def test_fire_is_timed_a_second_time_on_the_gpu_device_without_changing_its_scores(brain_experiment,
                                                                                   perturbed):
    from firereg.evaluation.runner import default_gpu_device, gpu_note

    selection, model = perturbed
    config = config_from_dict(brain_experiment(methods=["fire_affine", "fire", "fire_refine"],
                                               torch_threads=1))
    case = build_cases(config)[0]
    # the GPU path, run on a second CPU device (this machine may have no GPU): every FIRE-affine and
    # FIRE record gets a second timing, the refinement column does not
    run = run_experiment(config, [case], model=model, selection=selection, spacing=2.0, progress=False,
                         warm_up=False, gpu_device="cpu")
    scores = run.records[0]["methods"]
    for method in ("fire_affine", "fire"):
        gpu = scores[method]["gpu_timing"]
        assert gpu["device"] == "cpu" and 0 < gpu["registration_seconds"] <= gpu["total_seconds"]
    assert "gpu_timing" not in scores["fire_refine"]
    plain = run_experiment(config, [case], model=model, selection=selection, spacing=2.0, progress=False,
                           warm_up=False)
    for method in ("fire_affine", "fire"):
        assert scores[method]["mean_dice"] == plain.records[0]["methods"][method]["mean_dice"]
    cuda = torch.cuda.is_available()
    assert default_gpu_device(config, "cpu") == ("cuda" if cuda else None)
    assert (gpu_note(config, "cpu") is None) == cuda
    assert default_gpu_device(config, "cuda") is None and gpu_note(config, "cuda") is None
    off = config_from_dict(brain_experiment(methods=["fire"], gpu_timing=False))
    assert default_gpu_device(off, "cpu") is None and gpu_note(off, "cpu") is None
