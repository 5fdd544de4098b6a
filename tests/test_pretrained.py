"""Shipped models: cards, the registry, how a model and direction are chosen, and packaging a run.

Nothing here depends on real shipped weights: every test builds its own registry in a temporary
folder (``FIREREG_PRETRAINED_DIR``) from tiny width-4 models.
"""

import json
import shutil
import tomllib
from pathlib import Path

import pytest
import torch

from firereg.config import ModelConfig
from firereg.model import FireModel
from firereg.pretrained import (
    CardError,
    ModelCard,
    ModelSelectionError,
    list_models,
    load_pretrained,
    model_path,
    package_run,
    pretrained_root,
    select_model,
    select_series_model,
)
from firereg.pretrained.registry import ENV_VAR
from firereg.training.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
VALIDATION = {"dice_unaligned": 0.41, "dice_affine": 0.63, "dice": 0.72, "pairs": 8}


def make_card(name: str, a: str, b: str, ndim: int = 2, **changes) -> ModelCard:
    fields = dict(name=name, modality_a=a, modality_b=b, ndim=ndim, spacing_mm=2.0,
                  dataset="SPM avg152 (test)", config="configs/spm_2d_t1_t2_cpu.yaml",
                  command=f"firereg train --config configs/{name}.yaml", iterations=100,
                  machine="test", validation=dict(VALIDATION))
    fields.update(changes)
    return ModelCard(**fields)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[int, Path]:
    """One tiny 2D and one tiny 3D checkpoint folder."""
    base = tmp_path_factory.mktemp("ckpt")
    return {ndim: save_checkpoint(base / f"run{ndim}", FireModel(ModelConfig(ndim=ndim, width=4)), 7,
                                  save_rng=False)
            for ndim in (2, 3)}


def ship(root: Path, card: ModelCard, checkpoints: dict[int, Path]) -> Path:
    """Put ``card`` with a tiny checkpoint of its ndim into the registry ``root``."""
    folder = root / card.name
    folder.mkdir(parents=True)
    for name in ("model.safetensors", "checkpoint.json"):
        shutil.copyfile(checkpoints[card.ndim] / name, folder / name)
    card.save(folder / "card.json")
    return folder


@pytest.fixture
def registry(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "pretrained"
    root.mkdir()
    monkeypatch.setenv(ENV_VAR, str(root))
    return root


@pytest.fixture
def shipped(registry, checkpoints) -> Path:
    for card in (make_card("t1-t2-2d", "T1", "T2"), make_card("t1-t2-3d", "T1", "T2", ndim=3),
                 make_card("pd-t2-2d", "PD", "T2"), make_card("cine-2d", "cine", "cine")):
        ship(registry, card, checkpoints)
    return registry


# --- cards -------------------------------------------------------------------------------------


def test_card_round_trips_through_json(tmp_path):
    card = make_card("t1-t2-2d", "T1", "T2", diffeomorphic=True, notes="synthetic test")
    path = card.save(tmp_path / "card.json")
    assert ModelCard.load(path) == card
    assert json.loads(path.read_text())["validation"] == VALIDATION
    assert card.modalities == "T1 <-> T2"


def test_card_carries_its_recipe_and_heldout_figures(tmp_path):
    heldout = {"cross_brain_2d_t1_t2": {"FIRE dice": 61.2, "ANTs-SyN dice": 60.2}}
    card = make_card("t1-t2-2d", "T1", "T2", recipe="synthesized subjects", heldout=heldout,
                     validation={**VALIDATION, "synth_dice": 0.5, "synth_pairs": 16})
    again = ModelCard.load(card.save(tmp_path / "card.json"))
    assert again.heldout == heldout and again.recipe == "synthesized subjects"
    with pytest.raises(CardError, match="finite numbers"):
        make_card("t1-t2-2d", "T1", "T2", heldout={"x": {"FIRE dice": float("nan")}})


def test_card_refuses_unknown_and_missing_keys_and_bad_values(tmp_path):
    data = make_card("t1-t2-2d", "T1", "T2").to_dict()
    with pytest.raises(CardError, match=r"unknown key\(s\) \['colour'\]"):
        ModelCard.from_dict({**data, "colour": "red"})
    with pytest.raises(CardError, match=r"missing key\(s\) \['machine'\]"):
        ModelCard.from_dict({k: v for k, v in data.items() if k != "machine"})
    with pytest.raises(CardError, match="ndim must be 2 or 3"):
        ModelCard.from_dict({**data, "ndim": 4})
    with pytest.raises(CardError, match="modality_b must be a non-empty string"):
        ModelCard.from_dict({**data, "modality_b": " "})
    with pytest.raises(CardError, match="unknown validation key"):
        ModelCard.from_dict({**data, "validation": {"hd95": 3.0}})
    (tmp_path / "card.json").write_text(json.dumps({**data, "extra": 1}))
    with pytest.raises(CardError, match=r"card\.json: unknown key"):
        ModelCard.load(tmp_path / "card.json")


# --- the registry ------------------------------------------------------------------------------


def test_registry_root_defaults_to_the_package_and_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert pretrained_root() == ROOT / "src" / "firereg" / "pretrained"
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert pretrained_root() == tmp_path


def test_list_models_reads_cards_and_ignores_folders_without_one(shipped):
    (shipped / "half-done").mkdir()
    (shipped / ".tmp-x-123").mkdir()
    assert [c.name for c in list_models()] == ["cine-2d", "pd-t2-2d", "t1-t2-2d", "t1-t2-3d"]
    assert model_path("t1-t2-2d") == shipped / "t1-t2-2d"


def test_a_card_whose_name_is_not_its_folder_is_refused(registry, checkpoints):
    folder = ship(registry, make_card("t1-t2-2d", "T1", "T2"), checkpoints)
    folder.rename(registry / "other")
    with pytest.raises(CardError, match="names the model 't1-t2-2d', but its folder is 'other'"):
        list_models()


def test_load_pretrained_builds_the_model_of_the_card(shipped):
    model, card = load_pretrained("t1-t2-3d")
    assert isinstance(model, FireModel) and model.config.ndim == 3 and card.name == "t1-t2-3d"
    with pytest.raises(ModelSelectionError, match="no shipped model is named 'nope'.*t1-t2-2d"):
        load_pretrained("nope")


# --- choosing by name --------------------------------------------------------------------------


@pytest.mark.parametrize(("moving", "fixed", "direction"), [
    ("T1", "T2", "ab"), ("T2", "T1", "ba"), ("t2", "t1", "ba"), ("T1", None, "ab"),
    ("T2", None, "ba"), (None, "T2", "ab"), (None, "T1", "ba"), (None, None, "ab"),
])
def test_a_named_model_takes_its_direction_from_the_modalities(shipped, moving, fixed, direction):
    s = select_model("t1-t2-2d", ndim=2, moving_modality=moving, fixed_modality=fixed, direction=None)
    assert (s.direction, s.model, s.card.name) == (direction, "t1-t2-2d", "t1-t2-2d")
    assert s.checkpoint == shipped / "t1-t2-2d" and s.how.startswith(f"--model t1-t2-2d; {direction}")


def test_a_named_model_follows_an_agreeing_direction_and_refuses_a_contradicting_one(shipped):
    assert select_model("t1-t2-2d", ndim=2, direction="ba").direction == "ba"
    assert select_model("t1-t2-2d", ndim=2, moving_modality="T2", direction="ba").direction == "ba"
    with pytest.raises(ModelSelectionError, match="--direction ba contradicts --moving-modality T1 "
                       "--fixed-modality T2.*direction ab"):
        select_model("t1-t2-2d", ndim=2, moving_modality="T1", fixed_modality="T2", direction="ba")


def test_a_pairing_the_named_model_cannot_register_is_refused_naming_the_models_that_can(shipped):
    with pytest.raises(ModelSelectionError) as exc:
        select_model("t1-t2-2d", ndim=2, moving_modality="PD", fixed_modality="T2", direction=None)
    assert str(exc.value) == ("model t1-t2-2d registers T1 <-> T2; it cannot register PD -> T2 "
                              "(models for PD -> T2: pd-t2-2d)")
    with pytest.raises(ModelSelectionError, match=r"cannot register T1 -> PD \(no shipped 2D model "):
        select_model("t1-t2-2d", ndim=2, moving_modality="T1", fixed_modality="PD")
    with pytest.raises(ModelSelectionError, match="cannot take a FLAIR moving image"):
        select_model("t1-t2-2d", ndim=2, moving_modality="FLAIR")


def test_a_named_model_of_other_dimensions_is_refused_suggesting_the_right_one(shipped):
    with pytest.raises(ModelSelectionError) as exc:
        select_model("t1-t2-2d", ndim=3, moving_modality=None, fixed_modality=None, direction=None)
    assert str(exc.value) == ("model t1-t2-2d is 2D; the input images are 3D (shipped 3D models for "
                              "T1 <-> T2: t1-t2-3d)")
    with pytest.raises(ModelSelectionError, match=r"^model pd-t2-2d is 2D; the input images are 3D$"):
        select_model("pd-t2-2d", ndim=3)


def test_an_unknown_name_is_refused_listing_the_shipped_models(shipped):
    with pytest.raises(ModelSelectionError) as exc:
        select_model("t1-flair-2d", ndim=2)
    message = str(exc.value)
    assert "--model t1-flair-2d: no such checkpoint" in message
    assert all(name in message for name in ("t1-t2-2d", "t1-t2-3d", "pd-t2-2d", "cine-2d"))


# --- choosing without --model ------------------------------------------------------------------


@pytest.mark.parametrize(("ndim", "moving", "fixed", "name", "direction"), [
    (2, None, None, "t1-t2-2d", "ab"), (3, None, None, "t1-t2-3d", "ab"),
    (2, "T2", "T1", "t1-t2-2d", "ba"), (3, "t2", "t1", "t1-t2-3d", "ba"),
    (2, "PD", "T2", "pd-t2-2d", "ab"), (2, "T2", "PD", "pd-t2-2d", "ba"),
    (2, "PD", None, "pd-t2-2d", "ab"), (2, None, "PD", "pd-t2-2d", "ba"),
    (2, "cine", "cine", "cine-2d", "ab"),
])
def test_without_a_model_the_shipped_one_for_the_pair_and_dimensions_is_used(
        shipped, ndim, moving, fixed, name, direction):
    s = select_model(None, ndim=ndim, moving_modality=moving, fixed_modality=fixed, direction=None)
    assert (s.model, s.direction, s.card.ndim) == (name, direction, ndim)
    assert s.checkpoint == shipped / name and s.how.startswith(f"no --model: {name}")


def test_without_a_model_a_direction_picks_the_side_of_the_default_pair(shipped):
    assert select_model(None, ndim=2, direction="ba").direction == "ba"
    with pytest.raises(ModelSelectionError, match="--direction ab contradicts"):
        select_model(None, ndim=2, moving_modality="T2", fixed_modality="T1", direction="ab")


def test_without_a_model_an_unmatched_or_ambiguous_request_is_refused(shipped, registry):
    with pytest.raises(ModelSelectionError) as exc:
        select_model(None, ndim=2, moving_modality="PD", fixed_modality="T1")
    assert "no shipped 2D model registers PD -> T1" in str(exc.value)
    assert "t1-t2-2d (T1 <-> T2, 2D)" in str(exc.value) and "pass --model" in str(exc.value)
    with pytest.raises(ModelSelectionError, match="no shipped 3D model registers PD -> T2"):
        select_model(None, ndim=3, moving_modality="PD", fixed_modality="T2")
    with pytest.raises(ModelSelectionError, match="several shipped 2D models take a T2 moving image: "
                       r"pd-t2-2d \(PD <-> T2\), t1-t2-2d \(T1 <-> T2\)"):
        select_model(None, ndim=2, moving_modality="T2")


def test_without_a_model_an_empty_registry_says_to_pass_one(registry):
    with pytest.raises(ModelSelectionError, match="no models are shipped with this install; pass "
                       "--model PATH"):
        select_model(None, ndim=2)


def test_a_model_of_either_orientation_is_found_and_ab_is_preferred(registry, checkpoints):
    ship(registry, make_card("t2-t1-2d", "T2", "T1"), checkpoints)
    s = select_model(None, ndim=2)
    assert (s.model, s.direction) == ("t2-t1-2d", "ba")
    ship(registry, make_card("t1-t2-2d", "T1", "T2"), checkpoints)
    s = select_model(None, ndim=2)
    assert (s.model, s.direction) == ("t1-t2-2d", "ab") and "also fitting: t2-t1-2d" in s.how


def test_register_diffeomorphic_prefers_a_model_trained_diffeomorphic(shipped, checkpoints):
    ship(shipped, make_card("t1-t2-2d-diffeo", "T1", "T2", diffeomorphic=True), checkpoints)
    plain = select_model(None, ndim=2)
    assert plain.model == "t1-t2-2d" and "also fitting: t1-t2-2d-diffeo" in plain.how
    diffeo = select_model(None, ndim=2, prefer_diffeomorphic=True)
    assert (diffeo.model, diffeo.direction) == ("t1-t2-2d-diffeo", "ab")
    assert select_model(None, ndim=2, moving_modality="T2", fixed_modality="T1",
                        prefer_diffeomorphic=True).model == "t1-t2-2d-diffeo"
    intra = select_model(None, ndim=2, moving_modality="T1", fixed_modality="T1", intra_modal=True,
                         prefer_diffeomorphic=True)
    assert intra.model == "t1-t2-2d-diffeo"
    assert select_model(None, ndim=2, moving_modality="T1", fixed_modality="T1",
                        intra_modal=True).model == "t1-t2-2d"
    # a named model is used as named
    assert select_model("t1-t2-2d", ndim=2, prefer_diffeomorphic=True).model == "t1-t2-2d"


# --- paths -------------------------------------------------------------------------------------


def test_a_path_is_used_as_given_without_modality_checks(shipped, checkpoints):
    run = checkpoints[2].parent
    s = select_model(str(run), ndim=2, moving_modality="PD", fixed_modality="FLAIR", direction=None)
    assert (s.checkpoint, s.card, s.direction) == (checkpoints[2], None, "ab")
    assert s.model == str(checkpoints[2]) and "modalities not checked" in s.how
    assert select_model(str(checkpoints[2]), ndim=2, direction="ba").direction == "ba"
    with pytest.raises(ModelSelectionError, match="is 2D; the input images are 3D"):
        select_model(str(run), ndim=3)
    assert isinstance(s.load(), FireModel)


def test_a_path_with_a_card_gets_the_same_checks_as_a_name(shipped):
    folder = str(shipped / "t1-t2-2d")
    s = select_model(folder, ndim=2, moving_modality="T2", fixed_modality="T1")
    assert (s.direction, s.card.name, s.model) == ("ba", "t1-t2-2d", folder)
    with pytest.raises(ModelSelectionError, match="cannot register PD -> T2"):
        select_model(folder, ndim=2, moving_modality="PD", fixed_modality="T2")


def test_a_folder_that_is_not_a_checkpoint_is_refused(shipped, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSelectionError, match="not a checkpoint folder"):
        select_model(str(tmp_path / "empty"), ndim=2)


# --- register-series ---------------------------------------------------------------------------


def test_series_default_is_the_2d_cine_model_and_inter_modal_models_are_refused(shipped, checkpoints):
    s = select_series_model(None)
    assert (s.model, s.direction, s.card.ndim) == ("cine-2d", "ab", 2)
    assert select_series_model(str(checkpoints[3])).card is None  # a 3D checkpoint goes per volume
    with pytest.raises(ModelSelectionError, match="register-series needs an intra-modal model"):
        select_series_model("t1-t2-2d")


def test_series_without_a_cine_model_is_refused(registry, checkpoints):
    ship(registry, make_card("t1-t2-2d", "T1", "T2"), checkpoints)
    with pytest.raises(ModelSelectionError, match="no shipped 2D model registers cine -> cine"):
        select_series_model(None)


# --- packaging a run ---------------------------------------------------------------------------


def _training_run(run: Path, *, validation: dict | None, spacing: float | None = 1.5) -> FireModel:
    from firereg.training import build_optimizers

    model = FireModel(ModelConfig(ndim=2, width=4))
    optimizers = build_optimizers(model)
    extra = {"terms": {"total": 1.0}}
    if validation is not None:
        extra["validation"] = validation
    save_checkpoint(run, model, 40, optimizers=optimizers, extra=extra)
    if spacing is not None:
        (run / "config.yaml").write_text(f"data:\n  modality_a: T1\n  modality_b: T2\n  spacing: {spacing}\n")
    return model


PACKAGE = dict(modality_a="T1", modality_b="T2", dataset="SPM avg152", command="firereg train --config "
               "configs/spm_2d_t1_t2_cpu.yaml", config="configs/spm_2d_t1_t2_cpu.yaml", machine="2 CPUs")


def test_package_run_ships_only_the_weights_the_config_and_a_card(registry, tmp_path):
    model = _training_run(tmp_path / "run", validation=VALIDATION)
    assert {p.name for p in (tmp_path / "run" / "step-00000040").iterdir()} >= {"optimizer.safetensors",
                                                                                 "rng.safetensors"}
    folder = package_run(tmp_path / "run", "t1-t2-2d", **PACKAGE)
    assert folder == registry / "t1-t2-2d"
    assert sorted(p.name for p in folder.iterdir()) == ["card.json", "checkpoint.json", "model.safetensors"]
    assert sorted(p.name for p in registry.iterdir()) == ["t1-t2-2d"]  # no temporary folder left
    meta = json.loads((folder / "checkpoint.json").read_text())
    assert sorted(meta) == ["extra", "format", "model_config", "step"]
    assert meta["extra"] == {"validation": VALIDATION}
    card = ModelCard.load(folder / "card.json")
    assert (card.iterations, card.ndim, card.spacing_mm, card.validation) == (40, 2, 1.5, VALIDATION)
    assert card.command == PACKAGE["command"] and card.modalities == "T1 <-> T2"
    loaded, loaded_card = load_pretrained("t1-t2-2d")
    assert loaded_card == card
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert not card.diffeomorphic
    with pytest.raises(ValueError, match="trained with displacement fields"):
        package_run(tmp_path / "run", "t1-t2-2d-x", **PACKAGE, diffeomorphic=True)
    # a card that contradicts its weights is refused when loaded
    card_path = folder / "card.json"
    card_path.write_text(card_path.read_text().replace('"diffeomorphic": false', '"diffeomorphic": true'))
    with pytest.raises(CardError, match="card says diffeomorphic true"):
        load_pretrained("t1-t2-2d")


def test_package_run_reads_val_csv_and_refuses_what_it_cannot_know(registry, tmp_path):
    _training_run(tmp_path / "run", validation=None, spacing=None)
    (tmp_path / "run" / "val.csv").write_text("step,dice_unaligned,dice_affine,dice,pairs\n"
                                              "20,0.4,0.5,0.6,8\n40,0.41,0.63,0.72,8\n")
    with pytest.raises(ValueError, match="no config.yaml with data.spacing"):
        package_run(tmp_path / "run", "t1-t2-2d", **PACKAGE)
    folder = package_run(tmp_path / "run", "t1-t2-2d", spacing_mm=1.28, **PACKAGE)
    card = ModelCard.load(folder / "card.json")
    assert card.validation == VALIDATION and card.spacing_mm == 1.28
    with pytest.raises(ValueError, match="a model of that name exists"):
        package_run(tmp_path / "run", "t1-t2-2d", spacing_mm=1.28, **PACKAGE)
    package_run(tmp_path / "run", "t1-t2-2d", spacing_mm=2.0, overwrite=True, **PACKAGE)
    assert ModelCard.load(folder / "card.json").spacing_mm == 2.0
    assert sorted(p.name for p in registry.iterdir()) == ["t1-t2-2d"]


def test_package_run_refuses_modalities_the_run_was_not_trained_on(registry, tmp_path):
    _training_run(tmp_path / "run", validation=VALIDATION)
    with pytest.raises(ValueError, match="trained with data.modality_b T2, not PD"):
        package_run(tmp_path / "run", "t1-pd-2d", **{**PACKAGE, "modality_b": "PD"})
    with pytest.raises(ValueError, match="not a training run folder"):
        package_run(tmp_path, "x", **PACKAGE)
    assert list(registry.iterdir()) == []


def test_the_shipped_model_files_are_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["setuptools"]["package-data"]["firereg.pretrained"] == ["*/*.json",
                                                                                   "*/*.safetensors"]


def test_a_folder_whose_card_claims_other_dimensions_points_at_the_shipped_models(shipped, checkpoints,
                                                                                  tmp_path):
    folder = ship(tmp_path / "mine", make_card("t1-t2-2d", "T1", "T2", ndim=3), checkpoints)
    with pytest.raises(ModelSelectionError) as info:  # its card claims 3D, the images are 2D
        select_model(str(folder), ndim=2)
    assert str(info.value) == ("model t1-t2-2d is 3D; the input images are 2D (shipped 2D models "
                               "for T1 <-> T2: t1-t2-2d)")
