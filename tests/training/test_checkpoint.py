"""Checkpoints: exact resume, atomic saves, and no unpickling of untrusted files."""

import pickle

import numpy as np
import pytest
import torch

from firereg.config import ModelConfig
from firereg.model import FireModel
from firereg.training import build_optimizers, training_step
from firereg.training.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    load_model,
    save_checkpoint,
)

CONFIG = ModelConfig(ndim=2, width=4)


def _batch():
    return torch.rand(1, 1, 20, 20) * 2 - 1, torch.rand(1, 1, 20, 20) * 2 - 1


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    torch.manual_seed(0)
    model = FireModel(CONFIG)
    opts = build_optimizers(model)
    for _ in range(2):
        training_step(model, opts, *_batch())
    save_checkpoint(tmp_path, model, step=2, optimizers=opts)
    # uninterrupted: two more steps with fresh random batches
    reference = [training_step(model, opts, *_batch())["total"] for _ in range(2)]
    ref_weights = {k: v.clone() for k, v in model.state_dict().items()}

    torch.manual_seed(123)  # scramble the generator: resume must restore it
    resumed = FireModel(CONFIG)
    resumed_opts = build_optimizers(resumed)
    info = load_checkpoint(tmp_path, resumed, optimizers=resumed_opts)
    assert info.step == 2
    again = [training_step(resumed, resumed_opts, *_batch())["total"] for _ in range(2)]
    assert again == reference
    for k, v in resumed.state_dict().items():
        assert torch.equal(v, ref_weights[k]), k


def test_latest_points_at_the_newest_and_old_ones_are_pruned(tmp_path):
    model = FireModel(CONFIG)
    for step in (10, 20, 30):
        save_checkpoint(tmp_path, model, step=step, keep=2)
    assert latest_checkpoint(tmp_path).name == "step-00000030"
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000020", "step-00000030"]
    assert latest_checkpoint(tmp_path / "empty") is None


def test_an_interrupted_save_leaves_the_last_good_checkpoint(tmp_path, monkeypatch):
    model = FireModel(CONFIG)
    save_checkpoint(tmp_path, model, step=1)
    import firereg.training.checkpoint as ckpt

    def crash(*_args, **_kwargs):
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(ckpt, "_write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, model, step=2)
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path).name == "step-00000001"
    assert not list(tmp_path.glob(".tmp-*"))
    assert load_model(latest_checkpoint(tmp_path)).config == CONFIG


def test_model_loads_from_config_and_weights_only(tmp_path):
    model = FireModel(CONFIG)
    path = save_checkpoint(tmp_path, model, step=0, save_rng=False)
    loaded = load_model(path)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)


def test_a_pickle_disguised_as_a_model_is_refused_without_being_unpickled(tmp_path):
    model = FireModel(CONFIG)
    path = save_checkpoint(tmp_path, model, step=0)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (path / "model.safetensors").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_model(path)
    assert not marker.exists()
    torch.save({"x": 1}, path / "model.safetensors")  # a torch pickle archive
    with pytest.raises(CheckpointError, match="safetensors"):
        load_model(path)


def test_bad_configs_and_mismatched_models_are_refused(tmp_path):
    path = save_checkpoint(tmp_path, FireModel(CONFIG), step=0)
    meta = (path / "checkpoint.json").read_text()
    (path / "checkpoint.json").write_text(meta.replace('"width": 4', '"width": 4, "evil": 1'))
    with pytest.raises(CheckpointError, match="unknown key"):
        load_model(path)
    (path / "checkpoint.json").write_text(meta)
    with pytest.raises(CheckpointError, match="not for this model"):
        load_checkpoint(path, FireModel(ModelConfig(ndim=2, width=8)))
    (path / "checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(path)
    with pytest.raises(CheckpointError, match="no checkpoint.json"):
        load_model(tmp_path / "nothing")


def test_numpy_and_python_rngs_are_restored(tmp_path):
    import random

    np.random.seed(5)
    random.seed(5)
    save_checkpoint(tmp_path, FireModel(CONFIG), step=0)
    expected = (np.random.rand(), random.random())
    np.random.seed(99)
    random.seed(99)
    load_checkpoint(tmp_path, FireModel(CONFIG))
    assert (np.random.rand(), random.random()) == expected
