"""``firereg train --config bad.yaml``: every bad config is one line naming the key, exit 2, and no
run folder is created."""

import copy

import pytest
import yaml
from reliability_helpers import assert_one_line_error, run_cli, training_config


def _set(section, key, value, sub=None):
    def edit(config):
        target = config.setdefault(section, {})
        if sub is not None:
            target = target.setdefault(sub, {})
        target[key] = value
    return edit


CASES = {
    # unknown keys, in every section
    "unknown section": (lambda c: c.update(trainer={"iterations": 5}), "unknown section(s) ['trainer']"),
    "unknown model key": (_set("model", "widht", 4), "unknown key(s) ['widht']"),
    "unknown optim key": (_set("optim", "lr", 0.1), "unknown key(s) ['lr']"),
    "unknown data key": (_set("data", "spacng", 2.0), "unknown key(s) ['spacng']"),
    "unknown augmentation key": (_set("augmentation", "rotate", 5.0), "unknown key(s) ['rotate']"),
    "unknown train key": (_set("train", "iteratons", 5), "unknown key(s) ['iteratons']"),
    "unknown curriculum key": (_set("train", "steps", 5, sub="curriculum"), "unknown key(s) ['steps']"),
    # out-of-range values
    "iterations 0": (_set("train", "iterations", 0), "train.iterations must be an int >= 1"),
    "batch_size -1": (_set("train", "batch_size", -1), "train.batch_size must be an int >= 1"),
    "checkpoint_every 0": (_set("train", "checkpoint_every", 0), "train.checkpoint_every"),
    "max_grad_norm -1": (_set("train", "max_grad_norm", -1.0), "train.max_grad_norm must be > 0"),
    "curriculum aligned_steps -3": (_set("train", "aligned_steps", -3, sub="curriculum"),
                                    "train.curriculum.aligned_steps"),
    "lr_affine -1": (_set("optim", "lr_affine", -1.0), "lr_affine must be a float in (0, 0.1]"),
    "lr_synthesis 5": (_set("optim", "lr_synthesis", 5.0), "lr_synthesis must be a float in (0, 0.1]"),
    "lr_nonrigid 0.99 (legal before, diverges)": (_set("optim", "lr_nonrigid", 0.99),
                                                  "lr_nonrigid must be a float in (0, 0.1], got 0.99"),
    "lr_affine .inf": (_set("optim", "lr_affine", float("inf")), "lr_affine must be a float in (0, 0.1]"),
    "betas (2, 3)": (_set("optim", "betas", [2.0, 3.0]), "betas must be two floats"),
    "spacing 0": (_set("data", "spacing", 0.0), "data.spacing must be between 0.1 and 20"),
    "spacing 1000": (_set("data", "spacing", 1000.0), "data.spacing must be between 0.1 and 20"),
    "shape not a multiple of 4": (_set("data", "shape", [30, 30]), "data.shape must hold 2 multiples of 4"),
    "source unknown": (_set("data", "source", "brainweb"), "data.source must be one of"),
    "dims 4": (_set("data", "dims", 4), "data.dims must be 2 or 3"),
    "model ndim != data dims": (_set("model", "ndim", 3), "model.ndim (3) must equal data.dims (2)"),
    "width 0": (_set("model", "width", 0), "width must be a positive int"),
    "padding_mode circular": (_set("model", "padding_mode", "circular"), "padding_mode"),
    "rotation 500": (_set("augmentation", "rotation", 500.0), "rotation must be in [0, 180]"),
    # wrong types
    "lr as text": (_set("optim", "lr_affine", "fast"), "lr_affine must be a float"),
    "batch_size 2.5": (_set("train", "batch_size", 2.5), "train.batch_size must be an int"),
    "model section a list": (lambda c: c.update(model=[2, 4]), "expected a mapping"),
    "seed as text": (_set("train", "seed", "zero"), "train.seed must be an int"),
    # data that is not there
    "missing data root": (_set("data", "root", "/nonexistent/firereg-data"), "/nonexistent/firereg-data"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_config_is_one_line_naming_the_key(tmp_path, capsys, phantom_root, case):
    edit, fragment = CASES[case]
    config = copy.deepcopy(training_config(phantom_root))
    edit(config)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    code, _, err = run_cli(capsys, "train", "--config", path, "--out", tmp_path / "run", "--device",
                           "cpu", "--no-progress")
    assert_one_line_error(code, err, "train", fragment)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, fragment", [
    (b"model: {ndim: 2\n  width: [\n", "not valid YAML (expected ',' or '}', but got ':' at line 2"),
    (b"- a list\n- not a mapping\n", "expected a mapping with sections"),
    (b"\xff\xfe\x00 binary", "not a text (UTF-8) YAML file"),
    (b"model: !!python/object/apply:os.system ['touch MARKER']\n", "could not determine a constructor"),
], ids=["invalid YAML", "not a mapping", "binary", "python tag"])
def test_an_unreadable_config_is_one_line(tmp_path, capsys, monkeypatch, text, fragment):
    monkeypatch.chdir(tmp_path)  # the python tag would create ./MARKER if YAML ran it
    path = tmp_path / "bad.yaml"
    path.write_bytes(text)
    code, _, err = run_cli(capsys, "train", "--config", path, "--out", tmp_path / "run", "--no-progress")
    assert_one_line_error(code, err, "train", str(path), fragment)
    assert not (tmp_path / "MARKER").exists() and not (tmp_path / "run").exists()


def test_bad_command_line_values(tmp_path, capsys, phantom_config):
    common = ["train", "--config", phantom_config, "--device", "cpu", "--no-progress"]
    code, _, err = run_cli(capsys, *common, "--out", tmp_path / "a", "--iterations", "0")
    assert_one_line_error(code, err, "train", "--iterations must be a finite number in [1, 1e+09], got 0")
    code, _, err = run_cli(capsys, *common, "--out", tmp_path / "b", "--resume")
    assert_one_line_error(code, err, "train", "--resume, but the folder holds no checkpoint")
    code, _, err = run_cli(capsys, "train", "--config", tmp_path / "none.yaml", "--out", tmp_path / "c")
    assert_one_line_error(code, err, "train", "no such config file")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
