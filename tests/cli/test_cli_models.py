"""``firereg models`` and model selection in ``firereg register`` / ``register-series``, on a
temporary registry of tiny width-4 models (``FIREREG_PRETRAINED_DIR``), never on shipped weights."""

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from firereg.cli.main import main
from firereg.config import ModelConfig
from firereg.model import FireModel
from firereg.pretrained import ModelCard
from firereg.pretrained.registry import ENV_VAR
from firereg.training.checkpoint import save_checkpoint

COMMAND = "firereg train --config configs/tiny.yaml --iterations 10"


def _card(name: str, a: str, b: str, ndim: int = 2) -> ModelCard:
    return ModelCard(name=name, modality_a=a, modality_b=b, ndim=ndim, spacing_mm=2.0, dataset="test",
                     config="configs/tiny.yaml", command=COMMAND, iterations=10, machine="test",
                     validation={"dice_unaligned": 0.4, "dice_affine": 0.6, "dice": 0.7, "pairs": 4})


@pytest.fixture
def registry(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "pretrained"
    root.mkdir()
    monkeypatch.setenv(ENV_VAR, str(root))
    return root


@pytest.fixture
def tiny(registry, tmp_path) -> Path:
    """A registry with a 2D T1 <-> T2 model "tiny" and a 2D cine model "tiny-cine"."""
    checkpoint = save_checkpoint(tmp_path / "run", FireModel(ModelConfig(ndim=2, width=4)), 10,
                                 save_rng=False)
    for card in (_card("tiny", "T1", "T2"), _card("tiny-cine", "cine", "cine")):
        folder = registry / card.name
        folder.mkdir()
        for name in ("model.safetensors", "checkpoint.json"):
            shutil.copyfile(checkpoint / name, folder / name)
        card.save(folder / "card.json")
    return registry


def _image(path: Path, shape: tuple[int, ...], seed: int = 0) -> str:
    data = np.random.default_rng(seed).random(shape).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([1.5, 1.5, 1.5, 1.0])), path)
    return str(path)


def _register(tmp_path: Path, *extra: str, shape=(32, 28)) -> list[str]:
    return ["register", "--moving", _image(tmp_path / "m.nii.gz", shape, 0), "--fixed",
            _image(tmp_path / "f.nii.gz", shape, 1), "--out", str(tmp_path / "out"), "--device", "cpu",
            *extra]


def test_models_lists_the_cards_and_their_training_command(tiny, capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "tiny " in out and "T1 <-> T2" in out and "tiny-cine" in out and "cine <-> cine" in out
    assert "0.400 -> 0.600 -> 0.700 (4 pairs)" in out and "2 mm" in out
    assert f"trained with: {COMMAND}" in out
    assert main(["models", "--json"]) == 0
    cards = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in cards] == ["tiny", "tiny-cine"] and cards[0]["command"] == COMMAND


def test_models_says_so_when_none_are_shipped(registry, capsys):
    assert main(["models"]) == 0
    assert "No trained models are shipped" in capsys.readouterr().out
    assert main(["models", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_models_package_ships_a_run(registry, tmp_path, capsys):
    save_checkpoint(tmp_path / "run", FireModel(ModelConfig(ndim=2, width=4)), 12,
                    extra={"validation": {"dice_unaligned": 0.3, "dice_affine": 0.5, "dice": 0.6,
                                          "pairs": 2}})
    args = ["models", "package", str(tmp_path / "run"), "--name", "t1-t2-2d", "--modality-a", "T1",
            "--modality-b", "T2", "--dataset", "SPM", "--config", "configs/x.yaml", "--command", COMMAND,
            "--machine", "laptop"]
    assert main(args) == 2
    assert "data.spacing" in capsys.readouterr().err
    assert main([*args, "--spacing", "1.28"]) == 0
    assert "card.json, checkpoint.json, model.safetensors" in capsys.readouterr().out
    card = ModelCard.load(registry / "t1-t2-2d" / "card.json")
    assert (card.iterations, card.spacing_mm, card.command, card.machine) == (12, 1.28, COMMAND, "laptop")


def test_register_with_a_named_model_takes_the_direction_from_the_modalities(tiny, tmp_path, capsys):
    code = main(_register(tmp_path, "--model", "tiny", "--moving-modality", "T2", "--fixed-modality", "T1"))
    assert code == 0, capsys.readouterr().err
    assert "moving T2 is its modality B" in capsys.readouterr().out
    out = tmp_path / "out"
    assert {"warped.nii.gz", "warp.nii.gz", "affine.mat", "report.json"} <= {p.name for p in out.iterdir()}
    report = json.loads((out / "report.json").read_text())
    assert (report["model"], report["direction"], report["spacing_mm"]) == ("tiny", "ba", 2.0)
    assert report["model_card"]["name"] == "tiny" and "moving T2" in report["selection"]
    assert nib.load(out / "warped.nii.gz").shape == (32, 28)


def test_register_without_a_model_uses_the_shipped_one_for_the_pair(tiny, tmp_path, capsys):
    assert main(_register(tmp_path, "--spacing", "3.0")) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert (report["model"], report["direction"], report["spacing_mm"]) == ("tiny", "ab", 3.0)
    assert report["selection"].startswith("no --model: tiny")


def test_register_refuses_a_pairing_the_model_cannot_register(tiny, tmp_path, capsys):
    code = main(_register(tmp_path, "--model", "tiny", "--moving-modality", "PD", "--fixed-modality", "T2"))
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err == ("firereg register: error: model tiny registers T1 <-> T2; it cannot register PD -> T2 "
                   "(no shipped 2D model takes PD -> T2)")
    assert not (tmp_path / "out").exists()


def test_register_refuses_a_2d_model_on_3d_images(tiny, tmp_path, capsys):
    assert main(_register(tmp_path, "--model", "tiny", shape=(24, 24, 24))) == 2
    err = capsys.readouterr().err.strip()
    assert err == "firereg register: error: model tiny is 2D; the input images are 3D"
    assert not (tmp_path / "out").exists()


def test_register_without_any_model_says_to_pass_one(registry, tmp_path, capsys):
    assert main(["register", "--moving", "missing.nii", "--fixed", "missing.nii", "--out",
                 str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no models are shipped with this install; pass --model PATH" in err
    assert not (tmp_path / "out").exists()


def test_register_series_defaults_to_the_2d_cine_model(tiny, tmp_path, capsys):
    cine = _image(tmp_path / "cine.nii.gz", (28, 24, 2, 3))
    out = tmp_path / "series"
    assert main(["register-series", "--cine", cine, "--out", str(out), "--device", "cpu"]) == 0, \
        capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert (report["model"], report["model_card"]["name"], report["spacing_mm"]) == ("tiny-cine",
                                                                                       "tiny-cine", 2.0)
    assert nib.load(out / "warped_4d.nii.gz").shape == (28, 24, 2, 3)
    assert main(["register-series", "--cine", cine, "--out", str(tmp_path / "x"), "--model", "tiny",
                 "--device", "cpu"]) == 2
    assert "register-series needs an intra-modal model" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_models_marks_a_diffeomorphic_model():
    from firereg.cli.models import format_table
    from firereg.pretrained import list_models

    cards = {c.name: c for c in list_models()}
    table = format_table([cards["t1-t2-2d"], cards["t1-t2-2d-diffeo"]])
    assert table.count("diffeomorphic fields") == 1
    assert table.index("diffeomorphic fields") > table.index("t1-t2-2d-diffeo")
