"""The experiment config of ``firereg evaluate``: every key checked, defaults by kind, shipped configs."""

from pathlib import Path

import pytest
import yaml

from firereg.config import ConfigError
from firereg.demo.brain_demo import demo_config
from firereg.evaluation.experiment_config import METHODS, config_from_dict, load_config

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "configs" / "experiments"
BASE = {"name": "x", "kind": "brain", "model": "t1-t2-2d", "modality_moving": "T1", "modality_fixed": "T2"}


def test_defaults_follow_the_kind():
    brain = config_from_dict(BASE)
    assert brain.transforms == 20 and brain.syn_metric == "mi" and brain.methods == METHODS
    assert brain.label_table == {8: "brain stem", 7: "cerebellum", 3: "white matter"}
    cardiac = config_from_dict({"name": "c", "kind": "cardiac", "model": "cine-2d"})
    assert cardiac.transforms == 1 and cardiac.syn_metric == "cc"
    assert cardiac.modality_moving == cardiac.modality_fixed == "cine"
    assert cardiac.label_table == {3: "LV cavity", 2: "myocardium"}
    assert config_from_dict({**BASE, "modality_moving": "t2"}).syn_metric == "cc"  # same modality


@pytest.mark.parametrize(("change", "words"), [
    ({"colour": "red"}, ["unknown key", "colour"]),
    ({"protocol": {"transforms": 3}}, ["protocol", "unknown key", "transforms"]),
    ({"ants": {"threads": 2, "syn": {"iterations": [1]}}}, ["ants.syn", "iterations", "reg_iterations"]),
    ({"methods": ["fire", "demons"]}, ["unknown method", "demons"]),
    ({"methods": ["fire", "fire"]}, ["twice"]),
    ({"methods": []}, ["methods"]),
    ({"kind": "lung"}, ["kind"]),
    ({"dims": 4}, ["dims"]),
    ({"modality_fixed": None}, ["modality_fixed", "required"]),
    ({"protocol": {"transforms_per_image": 0}}, ["transforms_per_image"]),
    ({"protocol": {"augmentation": {"rotation": 500.0}}}, ["augmentation", "rotation"]),
    ({"protocol": {"augmentation": {"twist": 1.0}}}, ["augmentation", "twist"]),
    ({"labels": {"x": "brain stem"}}, ["labels"]),
    ({"device": "tpu"}, ["device"]),
    ({"torch_threads": 0}, ["torch_threads"]),
])
def test_bad_values_are_refused_by_name(change, words):
    with pytest.raises(ConfigError) as exc:
        config_from_dict({**BASE, **change}, "exp.yaml")
    message = str(exc.value)
    assert message.startswith("exp.yaml:")
    for word in words:
        assert word in message


def test_cardiac_pairs_get_no_added_transform():
    with pytest.raises(ConfigError, match="transforms_per_image must be 1"):
        config_from_dict({"name": "c", "kind": "cardiac", "model": "m",
                          "protocol": {"transforms_per_image": 20}})
    config = config_from_dict({"name": "c", "kind": "cardiac", "model": "m"})
    with pytest.raises(ConfigError, match="transforms_per_image must be 1"):
        config.with_overrides(transforms=5)


def test_overrides_are_validated_and_applied():
    config = config_from_dict(BASE).with_overrides(max_images=2, transforms=3, torch_threads=1)
    assert config.protocol.max_images == 2 and config.transforms == 3 and config.torch_threads == 1
    assert config.with_overrides().torch_threads == 1  # None leaves a value as it is
    with pytest.raises(ConfigError, match="max_images"):
        config_from_dict(BASE).with_overrides(max_images=0)


def test_missing_file_and_bad_yaml_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such experiment config"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_the_demo_config_file_is_the_demo_s_experiment():
    assert load_config(EXPERIMENTS / "demo_brain_2d_t1_t2.yaml") == demo_config()
    demo = demo_config()
    assert demo.model == "t1-t2-2d" and demo.protocol.max_images == 4 and demo.transforms == 20
    assert demo.ants.threads == 2


@pytest.mark.parametrize("name", ["brain_2d_t1_t2", "brain_2d_pd_t2", "demo_brain_2d_t1_t2",
                                  "cross_brain_2d_t1_t2", "cross_brain_2d_t1_t2_network",
                                  "diffeo_model_brain_2d_t1_t2"])
def test_brain_experiments_use_their_model_s_training_augmentation(name):
    config = load_config(EXPERIMENTS / f"{name}.yaml")
    model_config = {"t1-t2-2d": "t1_t2_2d", "pd-t2-2d": "pd_t2_2d",
                    "t1-t2-2d-diffeo": "t1_t2_2d_diffeo"}[config.model]
    training = yaml.safe_load((REPO / "configs" / "models" / f"{model_config}.yaml").read_text())
    assert config.protocol.augmentation == training["augmentation"]
    assert (config.modality_moving, config.modality_fixed) == (training["data"]["modality_a"],
                                                               training["data"]["modality_b"])


def test_every_shipped_experiment_config_loads():
    names = sorted(p.stem for p in EXPERIMENTS.glob("*.yaml"))
    assert names == ["brain_2d_pd_t2", "brain_2d_t1_t2", "brain_3d_t1_t2", "cardiac_2d_es_ed",
                     "cross_brain_2d_t1_t2", "cross_brain_2d_t1_t2_avg152", "cross_brain_2d_t1_t2_network",
                     "cross_brain_3d_t1_t2_whole",
                     "demo_brain_2d_t1_t2", "diffeo_model_brain_2d_t1_t2", "heldout_individual_2d_t1",
                     "heldout_individual_2d_t1_avg152", "heldout_individual_robex_2d_t1",
                     "heldout_individual_robex_2d_t1_avg152", "robust_brain_2d_t1_t2_large"]
    for stem in ("cross_brain_2d_t1_t2", "heldout_individual_2d_t1", "heldout_individual_robex_2d_t1"):
        before = load_config(EXPERIMENTS / f"{stem}_avg152.yaml")  # the first-round model, same pairs
        after = load_config(EXPERIMENTS / f"{stem}.yaml")
        assert before.model == "t1-t2-2d-avg152" and after.model in ("t1-t2-2d", "t1-t1-2d")
        assert before.protocol == after.protocol
    network = load_config(EXPERIMENTS / "cross_brain_2d_t1_t2_network.yaml")
    assert "fire_refine_network" in network.methods and network.moving_brain == "icbm152_2009a"
    assert load_config(EXPERIMENTS / "diffeo_model_brain_2d_t1_t2.yaml").model == "t1-t2-2d-diffeo"
    three_d = load_config(EXPERIMENTS / "brain_3d_t1_t2.yaml")
    assert three_d.dims == 3 and three_d.model == "runs/models/t1_t2_3d_cpu" and three_d.spacing == 4.0
    whole = load_config(EXPERIMENTS / "cross_brain_3d_t1_t2_whole.yaml")
    assert (whole.dims, whole.region, whole.fixed_brain_only) == (3, "whole", True)
    assert whole.moving_brain == "icbm152_2009a" and whole.protocol.transforms_per_image == 5
    cross = load_config(EXPERIMENTS / "cross_brain_2d_t1_t2.yaml")
    assert cross.moving_brain == "icbm152_2009a"
    assert cross.label_table == {1: "grey matter", 3: "white matter"}
    robust = load_config(EXPERIMENTS / "robust_brain_2d_t1_t2_large.yaml").protocol.augmentation
    training = yaml.safe_load((REPO / "configs" / "models" / "t1_t2_2d.yaml").read_text())["augmentation"]
    for key in ("rotation", "scaling", "shear", "translation"):  # twice the training range
        assert robust[key] == pytest.approx(2 * training[key])
    cardiac = load_config(EXPERIMENTS / "cardiac_2d_es_ed.yaml")
    assert cardiac.kind == "cardiac" and cardiac.model == "cine-2d" and cardiac.syn_metric == "cc"
