"""Untrusted model files never run code: models and checkpoints load only from safetensors plus a
validated JSON config, and a config cannot make firereg allocate what the weights do not hold.

The payload is a pickle whose ``__reduce__`` creates a marker file when unpickled; each test first
checks that unpickling it really would create the marker, then that firereg refuses it (one line,
exit 2) without creating it.
"""

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from reliability_helpers import assert_one_line_error, leftovers, run_cli


class Payload:
    """Unpickling this opens (so creates) ``marker``: any code could run in its place."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickled(marker: Path, how: str) -> bytes:
    if how == "pickle.dumps":
        return pickle.dumps({"weights": Payload(marker)})
    path = marker.with_suffix(".tmp")
    torch.save({"model": Payload(marker)}, path)
    data = path.read_bytes()
    path.unlink()
    return data


def _register(capsys, pair, model, out):
    return run_cli(capsys, "register", "--moving", pair["moving"], "--fixed", pair["fixed"],
                   "--model", model, "--out", out, "--device", "cpu", "--spacing", "2")


@pytest.mark.parametrize("how", ["pickle.dumps", "torch.save"])
@pytest.mark.parametrize("layout", ["checkpoint folder", "run folder (latest)"])
def test_a_pickle_renamed_model_safetensors_is_refused_unopened(tmp_path, capsys, models, pair, how,
                                                                 layout):
    marker = tmp_path / "marker"
    data = _pickled(marker, how)
    run = shutil.copytree(models["3d"], tmp_path / "evil-run")
    (run / "step-00000000" / "model.safetensors").write_bytes(data)  # beside a valid checkpoint.json
    model = run if layout == "run folder (latest)" else run / "step-00000000"
    code, _, err = _register(capsys, pair, model, tmp_path / "out")
    assert_one_line_error(code, err, "register", "model.safetensors", "not a valid safetensors file",
                          "never unpickled")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()
    # and the payload was real: unpickling it does create its marker
    if how == "pickle.dumps":
        pickle.loads(data)
    else:
        torch.load(_write(tmp_path / "check.pt", data), weights_only=False)
    assert marker.exists()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt", ".bin"])
def test_a_pickle_file_given_as_model_is_refused_unopened(tmp_path, capsys, pair, suffix):
    marker = tmp_path / "marker"
    path = _write(tmp_path / f"model{suffix}", _pickled(marker, "torch.save"))
    code, _, err = _register(capsys, pair, path, tmp_path / "out")
    assert_one_line_error(code, err, "register", f"model{suffix}", "not a checkpoint folder")
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload was real
    assert marker.exists()


def test_a_checkpoint_folder_with_only_a_pickle_is_refused(tmp_path, capsys, models, pair):
    marker = tmp_path / "marker"
    folder = shutil.copytree(models["3d"] / "step-00000000", tmp_path / "ckpt")
    (folder / "model.safetensors").unlink()
    _write(folder / "model.pt", _pickled(marker, "torch.save"))
    code, _, err = _register(capsys, pair, folder, tmp_path / "out")
    assert_one_line_error(code, err, "register", "model.safetensors: missing")
    assert not marker.exists()


def _edit_config(folder: Path, edit) -> None:
    path = folder / "checkpoint.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("edit, fragment", [
    (lambda m: m["model_config"].update(width=100_000), "weights do not fit the model"),
    (lambda m: m["model_config"].update(ndim=3, width=2_000), "weights do not fit the model"),
    (lambda m: m["model_config"].update(__class__="os.system"), "unknown key"),
    (lambda m: m["model_config"].update(width=-4), "width must be a positive int"),
    (lambda m: m.update(format="pickle"), "unknown checkpoint format"),
    (lambda m: m.update(model_config=["not", "a", "mapping"]), "invalid model config"),
], ids=["width 100000", "width 2000", "unknown key", "negative width", "other format",
        "config not a mapping"])
def test_a_crafted_checkpoint_config_is_refused_before_allocating(tmp_path, capsys, models, pair, edit,
                                                                   fragment):
    """A config far larger than its weights (width 10^5: terabytes of parameters) is checked
    against the safetensors tensors on a meta-device skeleton, so nothing is allocated."""
    import resource

    folder = shutil.copytree(models["3d"] / "step-00000000", tmp_path / "ckpt")
    _edit_config(folder, edit)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    code, _, err = _register(capsys, pair, folder, tmp_path / "out")
    assert_one_line_error(code, err, "register", fragment)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000
    assert leftovers(tmp_path / "out") == []


def test_a_checkpoint_json_that_is_not_json_is_refused(tmp_path, capsys, models, pair):
    folder = shutil.copytree(models["3d"] / "step-00000000", tmp_path / "ckpt")
    (folder / "checkpoint.json").write_bytes(b"\x80\x04\x95 pickle, not JSON")
    code, _, err = _register(capsys, pair, folder, tmp_path / "out")
    assert_one_line_error(code, err, "register", "checkpoint.json: not valid json")


def test_train_resume_never_unpickles_optimizer_or_rng_state(tmp_path, capsys, phantom_config):
    """--resume reads optimizer.safetensors and rng.safetensors with safetensors too."""
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--config", phantom_config, "--out", run, "--device", "cpu",
                           "--no-progress", "--iterations", "2")
    assert code == 0, err
    marker = tmp_path / "marker"
    for name in ("optimizer.safetensors", "rng.safetensors"):
        original = (run / "step-00000002" / name).read_bytes()
        (run / "step-00000002" / name).write_bytes(_pickled(marker, "torch.save"))
        code, _, err = run_cli(capsys, "train", "--config", phantom_config, "--out", run, "--device",
                               "cpu", "--no-progress", "--iterations", "4", "--resume")
        assert_one_line_error(code, err, "train", name, "never unpickled")
        assert not marker.exists()
        (run / "step-00000002" / name).write_bytes(original)
