"""The models shipped inside the package: they load offline, their cards match their weights."""

import json

import pytest
import torch

from firereg.pretrained import list_models, load_pretrained, select_model
from firereg.pretrained.registry import pretrained_root

SHIPPED = {card.name: card for card in list_models()}
EXPECTED_2D = {"t1-t2-2d": ("T1", "T2"), "pd-t2-2d": ("PD", "T2"), "t1-pd-2d": ("T1", "PD"),
               "t1-t1-2d": ("T1", "T1")}


def test_the_2d_brain_models_are_shipped() -> None:
    assert set(EXPECTED_2D) <= set(SHIPPED)
    for name, (a, b) in EXPECTED_2D.items():
        card = SHIPPED[name]
        assert (card.modality_a, card.modality_b, card.ndim) == (a, b, 2)
        assert card.command.startswith("firereg train --config configs/models/")
        assert card.iterations > 0


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_loads_and_matches_its_card(name: str) -> None:
    model, card = load_pretrained(name)
    meta = json.loads((pretrained_root() / name / "checkpoint.json").read_text())
    assert meta["step"] == card.iterations
    assert model.config.ndim == card.ndim
    assert meta["extra"]["validation"]["dice"] == pytest.approx(card.validation["dice"])
    # weights are trained: T_af's last layer has left its zero initialisation
    assert model.transform_ab.affine.dense[-1].weight.abs().sum() > 0
    size = (1, 1) + (24,) * card.ndim
    with torch.no_grad():
        out = model.register(torch.zeros(size), torch.zeros(size), "ab")
    assert torch.isfinite(out.displacement).all() and torch.isfinite(out.affine).all()


def test_default_2d_choice_is_t1_to_t2() -> None:
    selection = select_model(None, ndim=2, moving_modality=None, fixed_modality=None, direction=None)
    assert selection.card.name == "t1-t2-2d" and selection.direction == "ab"
    reverse = select_model(None, ndim=2, moving_modality="T2", fixed_modality="PD", direction=None)
    assert reverse.card.name == "pd-t2-2d" and reverse.direction == "ba"


def test_t1_to_t1_uses_the_intra_modal_model_and_other_intra_modal_pairs_need_refine() -> None:
    from firereg.pretrained import ModelSelectionError

    t1 = select_model(None, ndim=2, moving_modality="T1", fixed_modality="T1")
    assert (t1.card.name, t1.direction) == ("t1-t1-2d", "ab")
    with pytest.raises(ModelSelectionError, match="add --refine"):
        select_model(None, ndim=2, moving_modality="T2", fixed_modality="T2")
    t2 = select_model(None, ndim=2, moving_modality="T2", fixed_modality="T2", intra_modal=True)
    assert (t2.card.name, t2.direction) == ("t1-t2-2d", "ba")
    # a named T1 <-> T2 model still takes a T1 -> T1 pair through its T1 side when asked to
    old = select_model("t1-t2-2d-avg152", ndim=2, moving_modality="T1", fixed_modality="T1", intra_modal=True)
    assert (old.card.name, old.direction) == ("t1-t2-2d-avg152", "ab") and "intra-modal" in old.how
    t2 = select_model("t1-t2-2d", ndim=2, moving_modality="T2", fixed_modality="T2", intra_modal=True)
    assert t2.direction == "ba" and "intra-modal" in t2.how
    with pytest.raises(ModelSelectionError, match="no shipped 2D model registers FLAIR -> FLAIR"):
        select_model(None, ndim=2, moving_modality="FLAIR", fixed_modality="FLAIR", intra_modal=True)


def test_the_diffeomorphic_model_says_so_and_is_preferred_for_diffeomorphic_registration() -> None:
    model, card = load_pretrained("t1-t2-2d-diffeo")
    assert card.diffeomorphic and model.config.diffeomorphic
    assert card.command.startswith("firereg train --config configs/models/t1_t2_2d_diffeo.yaml")
    assert not SHIPPED["t1-t2-2d"].diffeomorphic
    assert select_model(None, ndim=2, prefer_diffeomorphic=True).model == "t1-t2-2d-diffeo"
    assert select_model(None, ndim=2).model == "t1-t2-2d"


def test_the_synthesized_subject_models_name_their_recipe_and_the_first_round_model_stays() -> None:
    for name in ("t1-t2-2d", "t1-t1-2d"):
        card = SHIPPED[name]
        assert "synthesized" in card.recipe and card.config.endswith("_synth.yaml")
        assert {"synth_dice", "synth_pairs"} <= set(card.validation)
    # t1-t2-2d and t1-t2-2d-diffeo start from it (train.init_from), so it is kept
    assert SHIPPED["t1-t2-2d-avg152"].iterations == 3250
