"""firereg train: logs, checkpoints, exact resume, refusals, and 2-process data parallelism.

The data are the SYNTHETIC cardiac phantom, written small into a temporary folder.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from firereg.config import ConfigError
from firereg.data.sources.cardiac_phantom import PhantomConfig, write_acdc_phantom
from firereg.losses import TERM_NAMES
from firereg.training.checkpoint import latest_checkpoint, load_model
from firereg.training.experiment import experiment_from_dict, load_experiment
from firereg.training.loop import train

SMALL = PhantomConfig(size=(72, 72), pixel_spacing_mm=2.7, num_slices=3, slice_spacing_mm=13.0,
                      num_phases=20, supersample=1, through_plane_samples=1)


@pytest.fixture(scope="module")
def phantom_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantom")
    write_acdc_phantom(root, 5, SMALL, seed=1)  # paper split of 5: 3 train, 1 val, 1 test
    return root


def _config(root: Path, **train) -> dict:
    return {
        "model": {"ndim": 2, "width": 4},
        "optim": {"lr_affine": 1e-4, "lr_nonrigid": 1e-4, "lr_synthesis": 1e-3},
        "data": {"source": "phantom", "root": str(root), "modality_a": "cine",
                 "modality_b": "cine", "dims": 2, "spacing": 4.0},
        "augmentation": {"rotation": 5.0, "translation": 0.05, "min_change": 0.0,
                         "max_change": 0.5},
        "train": {"iterations": 6, "batch_size": 2, "validate_every": 3, "validation_pairs": 2,
                  "checkpoint_every": 3, "log_every": 1, "seed": 0,
                  "curriculum": {"aligned_steps": 2, "ramp_steps": 2}, **train},
    }


def _weights(path: Path) -> dict:
    return load_model(latest_checkpoint(path)).state_dict()


def test_a_run_logs_every_term_validates_and_checkpoints(tmp_path, phantom_root):
    config = experiment_from_dict(_config(phantom_root))
    result = train(config, tmp_path / "run", progress=False, device="cpu")
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert log[0].split(",") == ["step", "seconds", *TERM_NAMES] and len(log) == 7
    val = (tmp_path / "run" / "val.csv").read_text().splitlines()
    assert len(val) == 3 and val[0].startswith("step,dice_unaligned")
    assert 0.0 <= result.last_validation["dice"] <= 1.0
    assert latest_checkpoint(tmp_path / "run").name == "step-00000006"
    assert load_experiment(tmp_path / "run" / "config.yaml") == config
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["processes"] == 1 and summary["steps"] == 6


def test_resume_matches_an_uninterrupted_run(tmp_path, phantom_root):
    full = experiment_from_dict(_config(phantom_root))
    train(full, tmp_path / "full", progress=False, device="cpu")
    half = experiment_from_dict(_config(phantom_root, iterations=3))
    train(half, tmp_path / "resumed", progress=False, device="cpu")
    train(full, tmp_path / "resumed", resume=True, progress=False, device="cpu")
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = (tmp_path / "resumed" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4", "5", "6"]
    seconds = [float(r.split(",")[1]) for r in rows[1:]]
    assert seconds == sorted(seconds) and seconds[3] > seconds[2]  # the clock goes on after resume


def test_refusals(tmp_path, phantom_root):
    config = experiment_from_dict(_config(phantom_root, iterations=1))
    train(config, tmp_path / "run", progress=False, device="cpu")
    with pytest.raises(ValueError, match="pass --resume"):
        train(config, tmp_path / "run", progress=False, device="cpu")
    other = experiment_from_dict(_config(phantom_root, iterations=1, seed=5))
    with pytest.raises(ValueError, match="train.seed"):
        train(other, tmp_path / "run", resume=True, progress=False, device="cpu")
    with pytest.raises(ValueError, match="holds no checkpoint"):
        train(config, tmp_path / "empty", resume=True, progress=False, device="cpu")


@pytest.mark.parametrize("change, message", [
    ({"train": {"iterations": 0}}, "train.iterations"),
    ({"model": {"ndim": 2, "widht": 4}}, "unknown key"),
    ({"data": {"source": "brainweb"}}, "data.source"),
    ({"augmentation": {"rotation": 500.0}}, "rotation"),
    ({"extra": {}}, "unknown section"),
])
def test_bad_configs_are_refused_by_name(phantom_root, change, message):
    data = _config(phantom_root)
    data.update(change)
    with pytest.raises(ConfigError, match=message):
        experiment_from_dict(data)


def test_two_cpu_processes_train_with_identical_weights(tmp_path, phantom_root):
    config_path = tmp_path / "ddp.yaml"
    config_path.write_text(yaml.safe_dump(_config(phantom_root, iterations=3)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "firereg", "train", "--config", str(config_path), "--out", str(tmp_path / "ddp"),
         "--device", "cpu", "--no-progress"],
        capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("firereg train:") == 1  # only rank 0 reports
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["processes"] == 2
    first, second = summary["parameter_checksums"]
    assert first == second
    assert latest_checkpoint(tmp_path / "ddp").name == "step-00000003"


def test_denormal_flushing_is_scoped_to_2d_training(tmp_path, phantom_root):
    train(experiment_from_dict(_config(phantom_root, iterations=1)), tmp_path / "run",
          progress=False, device="cpu")
    tiny = torch.tensor([1e-42], dtype=torch.float32)  # a denormal float32
    assert float(tiny * 1.0) != 0.0  # flushing was switched off again after the run


@pytest.mark.parametrize("path", sorted(Path(__file__).parents[2].joinpath("configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_config_is_valid(path):
    config = load_experiment(path)
    assert config.model.ndim == config.data.dims


def test_init_from_starts_a_new_run_from_another_run_s_weights(tmp_path, phantom_root):
    from firereg.config import ModelConfig
    from firereg.model import FireModel
    from firereg.training.checkpoint import CheckpointError, load_initial_weights

    train(experiment_from_dict(_config(phantom_root, iterations=3)), tmp_path / "base", progress=False,
          device="cpu")
    base = _weights(tmp_path / "base")
    # the weights are copied exactly into a model read differently (diffeomorphic head)
    diffeo = FireModel(ModelConfig(ndim=2, width=4, diffeomorphic=True))
    assert load_initial_weights(tmp_path / "base", diffeo).name == "step-00000003"
    assert all(torch.equal(diffeo.state_dict()[k], base[k]) for k in base)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_initial_weights(tmp_path / "base", FireModel(ModelConfig(ndim=2, width=8)))
    with pytest.raises(CheckpointError, match="neither a folder nor a shipped model"):
        load_initial_weights("no-such-model", diffeo)
    # one Adam step at lr 1e-4 moves a weight by about 1e-4: the run started from base's weights
    data = _config(phantom_root, iterations=1, init_from=str(tmp_path / "base"),
                   curriculum={"aligned_steps": 0, "ramp_steps": 0})
    data["model"]["diffeomorphic"] = True
    data["optim"]["lr_synthesis"] = 1e-4
    train(experiment_from_dict(data), tmp_path / "tuned", progress=False, device="cpu")
    tuned = _weights(tmp_path / "tuned")
    assert max(float((tuned[k] - base[k]).abs().max()) for k in base) < 3e-4
    fresh = _weights(tmp_path / "base")  # against a fresh start, which differs by far more
    assert max(float((FireModel(ModelConfig(ndim=2, width=4)).state_dict()[k] - fresh[k]).abs().max())
               for k in fresh) > 1e-2
