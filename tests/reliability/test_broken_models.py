"""Broken model files: a shipped model copied and damaged with safetensors (a NaN in one tensor,
an infinity, one tensor cast to int64) is refused when it is loaded, before any output exists, by
``register`` (with and without ``--refine``), ``explain`` and ``train.init_from``, with one line
naming the file and the tensor. Before, NaN weights made ``register --refine`` and ``explain``
crash with a segmentation fault (leaving the output lock), plain ``register`` write NaN outputs
with exit 0, and int64 weights load as garbage."""

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from reliability_helpers import assert_one_line_error, leftovers, run_cli, save, smooth_volume
from safetensors.torch import load_file, save_file

import firereg.pretrained

SHIPPED = Path(firereg.pretrained.__file__).parent / "t1-t2-2d"
TENSOR = "transform_ab.affine.dense.0.weight"


@pytest.fixture(scope="module")
def pair_2d(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pair2d")
    return {"moving": save(root / "moving.nii.gz", smooth_volume(1, (36, 40))),
            "fixed": save(root / "fixed.nii.gz", smooth_volume(2, (36, 40)))}


def _damaged(folder: Path, damage: str) -> Path:
    """A copy of the shipped t1-t2-2d model (card included) with ``TENSOR`` damaged."""
    shutil.copytree(SHIPPED, folder)
    state = load_file(str(folder / "model.safetensors"))
    tensor = state[TENSOR].clone()
    if damage == "nan":
        tensor.view(-1)[5] = float("nan")
    elif damage == "inf":
        tensor.view(-1)[5] = float("inf")
    elif damage == "int64":
        tensor = (tensor * 1000).to(torch.int64)
    elif damage == "float64 beyond float32":
        tensor = tensor.double()
        tensor.view(-1)[5] = 1e300
    state[TENSOR] = tensor
    save_file(state, str(folder / "model.safetensors"))
    return folder


MESSAGES = {"nan": "holds NaN", "inf": "holds infinite values", "int64": "is int64; model weights must "
            "be floating point", "float64 beyond float32": "holds values beyond the range of float32"}


@pytest.mark.parametrize("damage", list(MESSAGES))
@pytest.mark.parametrize("command", ["register", "register --refine", "explain"])
def test_a_damaged_model_is_refused_at_load(tmp_path, capsys, pair_2d, damage, command):
    model = _damaged(tmp_path / "broken-model", damage)
    out = tmp_path / "out"
    name, *flags = command.split()
    if flags:
        flags.append("2")  # --refine 2
    code, stdout, err = run_cli(capsys, name, "--moving", pair_2d["moving"], "--fixed", pair_2d["fixed"],
                                "--model", model, "--out", out, "--device", "cpu", *flags)
    line = assert_one_line_error(code, err, name, f"{model}/model.safetensors",
                                 f"tensor '{TENSOR}' {MESSAGES[damage]}")
    assert "broken" in line or damage == "int64"
    assert stdout == ""
    assert not out.exists(), leftovers(out)  # no output folder, no lock


def test_a_damaged_run_folder_and_init_from_are_refused(tmp_path, capsys, pair_2d, models, phantom_config):
    """As a training run folder (``latest``), and as ``train.init_from``: no run folder is made."""
    run = shutil.copytree(models["2d"], tmp_path / "run")
    step = run / "step-00000000"
    state = load_file(str(step / "model.safetensors"))
    name = sorted(state)[0]
    state[name] = state[name].clone()
    state[name].view(-1)[0] = float("nan")
    save_file(state, str(step / "model.safetensors"))
    code, _, err = run_cli(capsys, "register", "--moving", pair_2d["moving"], "--fixed", pair_2d["fixed"],
                           "--model", run, "--out", tmp_path / "out", "--device", "cpu", "--spacing", "4")
    assert_one_line_error(code, err, "register", f"{step}/model.safetensors", f"tensor '{name}' holds NaN")
    assert not (tmp_path / "out").exists()

    config = yaml.safe_load(phantom_config.read_text())
    config["train"]["init_from"] = str(run)
    path = tmp_path / "init.yaml"
    path.write_text(yaml.safe_dump(config))
    train_out = tmp_path / "train-out"
    code, _, err = run_cli(capsys, "train", "--config", path, "--out", train_out, "--no-progress",
                           "--device", "cpu")
    assert_one_line_error(code, err, "train", f"{step}/model.safetensors", "holds NaN")
    assert not train_out.exists(), leftovers(train_out)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64])
def test_other_floating_types_are_accepted(tmp_path, capsys, pair_2d, dtype):
    """float16/bfloat16/float64 weights load (cast to the model's float32), and register works."""
    folder = shutil.copytree(SHIPPED, tmp_path / "model")
    state = {k: v.to(dtype) for k, v in load_file(str(folder / "model.safetensors")).items()}
    save_file(state, str(folder / "model.safetensors"))
    code, _, err = run_cli(capsys, "register", "--moving", pair_2d["moving"], "--fixed", pair_2d["fixed"],
                           "--model", folder, "--out", tmp_path / "out", "--device", "cpu")
    assert code == 0, err
