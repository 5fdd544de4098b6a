"""firereg train on synthesized subjects: the config, the known-transform term, exact resume and
the held-out guard. The bank is the toy one of tests/conftest.py (no cache, no download)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml

from firereg.config import ConfigError
from firereg.losses import TERM_NAMES
from firereg.training import synth_source
from firereg.training.checkpoint import latest_checkpoint, load_model
from firereg.training.experiment import SupervisionConfig, experiment_from_dict, load_experiment
from firereg.training.loop import KNOWN_TERMS, train

REPO = Path(__file__).resolve().parents[2]


def _config(**train) -> dict:
    return {
        "model": {"ndim": 2, "width": 4},
        "optim": {"lr_affine": 1e-3, "lr_nonrigid": 1e-3, "lr_synthesis": 1e-3},
        "data": {"source": "synth", "modality_a": "T1", "modality_b": "T2", "dims": 2, "spacing": 4.0},
        "augmentation": {"rotation": 5.0, "translation": 0.05, "min_change": 0.0, "max_change": 0.5},
        "synthesis": {"tissues": ["p"]},
        "train": {"iterations": 6, "batch_size": 2, "validate_every": 3, "validation_pairs": 2,
                  "checkpoint_every": 3, "log_every": 1, "seed": 0,
                  "supervision": {"weight": 1.0, "hold_steps": 2, "anneal_steps": 2}, **train},
    }


@pytest.fixture
def toy_source(monkeypatch, synth_bank_toy):
    """Every bank the run asks for (training and validation brain) is the toy bank."""
    monkeypatch.setattr(synth_source, "model_grid_bank", lambda *args, **kwargs: synth_bank_toy)
    return synth_bank_toy


def test_supervision_weight_holds_then_anneals_to_zero():
    s = SupervisionConfig(weight=2.0, hold_steps=10, anneal_steps=4)
    assert [s.weight_at(k) for k in (0, 9, 10, 11, 12, 13, 100)] == [2.0, 2.0, 1.5, 1.0, 0.5, 0.0, 0.0]
    assert SupervisionConfig().weight_at(5) == 0.0  # the paper's objective alone
    assert SupervisionConfig(weight=1.0).weight_at(10**6) == 1.0  # no anneal: it stays


@pytest.mark.parametrize("change, message", [
    ({"synthesis": {"appearance": {"colour": 2}}}, "unknown key.*colour"),
    ({"data": {"source": "spm", "dims": 2}, "synthesis": {}}, "needs data.source: synth"),
    ({"data": {"source": "spm", "dims": 2}, "synthesis": None}, "supervision needs data.source: synth"),
    ({"train": {"supervision": {"weight": -1}}}, "supervision.weight"),
])
def test_bad_synthesis_configs_are_refused_in_one_line(change, message):
    config = _config()
    for section, value in change.items():
        if value is None:
            config.pop(section)
        else:
            config[section] = value
    with pytest.raises(ConfigError, match=message) as info:
        experiment_from_dict(config, "run.yaml")
    assert "\n" not in str(info.value)


def test_the_shipped_synth_configs_load():
    for path in sorted((REPO / "configs").rglob("*synth*.yaml")):
        config = load_experiment(path)
        assert config.data.source == "synth" and config.synthesis is not None, path


def test_a_synth_run_logs_the_known_term_and_resumes_exactly(tmp_path, toy_source):
    once = train(experiment_from_dict(_config()), tmp_path / "once", progress=False, device="cpu",
                 datasets={})
    log = (tmp_path / "once" / "log.csv").read_text().splitlines()
    assert log[0].split(",") == ["step", "seconds", *TERM_NAMES, *KNOWN_TERMS]
    weights = [float(row.split(",")[-2]) for row in log[1:]]
    assert weights == [1.0, 1.0, 0.5, 0.0, 0.0, 0.0]
    assert once.last_terms["l_known"] > 0
    train(experiment_from_dict(_config(iterations=3)), tmp_path / "twice", progress=False, device="cpu",
          datasets={})
    train(experiment_from_dict(_config()), tmp_path / "twice", resume=True, progress=False, device="cpu",
          datasets={})
    a = load_model(latest_checkpoint(tmp_path / "once")).state_dict()
    b = load_model(latest_checkpoint(tmp_path / "twice")).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_held_out_brain_in_the_bank_is_refused_before_the_run_folder(tmp_path, toy_source):
    toy_source.files.append(tmp_path / "heldout_individuals" / "ds000240-sub-01" / "t1.nii.gz")
    with pytest.raises(ConfigError, match="held-out"):
        train(experiment_from_dict(_config()), tmp_path / "run", progress=False, device="cpu", datasets={})
    assert not (tmp_path / "run").exists()


def test_the_config_round_trips_with_its_synthesis_section(tmp_path):
    config = experiment_from_dict(_config())
    again = experiment_from_dict(yaml.safe_load(yaml.safe_dump(config.to_dict())))
    assert again == config and again.synthesis["tissues"] == ["p"]


def test_the_validation_brain_is_scored_in_val_csv(tmp_path, toy_source):
    config = _config(iterations=3)
    config["synthesis"] = {"tissues": ["all"], "validation_tissues": ["p"]}
    result = train(experiment_from_dict(config), tmp_path / "run", progress=False, device="cpu", datasets={})
    rows = (tmp_path / "run" / "val.csv").read_text().splitlines()
    assert rows[0].split(",") == ["step", "dice_unaligned", "dice_affine", "dice", "pairs",
                                  "synth_dice_unaligned", "synth_dice_affine", "synth_dice", "synth_pairs"]
    assert result.last_validation["synth_pairs"] == 2 and 0 < result.last_validation["synth_dice"] <= 1


def test_a_validation_brain_cannot_also_train():
    config = _config()
    config["synthesis"] = {"tissues": ["p"], "validation_tissues": ["p"]}
    with pytest.raises(ConfigError, match="both in tissues"):
        experiment_from_dict(config)


def test_a_bf16_run_keeps_float32_weights_and_finite_terms(tmp_path, toy_source):
    result = train(experiment_from_dict(_config(iterations=2, precision="bf16")), tmp_path / "run",
                   progress=False, device="cpu", datasets={})
    weights = load_model(latest_checkpoint(tmp_path / "run")).state_dict()
    assert all(v.dtype == torch.float32 for v in weights.values() if v.is_floating_point())
    assert all(math.isfinite(v) for v in result.last_terms.values())
    with pytest.raises(ConfigError, match="train.precision"):
        experiment_from_dict(_config(precision="fp8"))
