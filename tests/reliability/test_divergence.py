"""A loss that goes NaN: ``firereg train`` and ``register --refine-mode network`` stop with one
line naming the term and the step, exit status 3 (not a mistake in the input), keep the last good
checkpoint and write nothing half-made; ``train --resume`` with nothing left to do is refused
without touching the run.

The divergence is made by wrapping the real objective so that one term is NaN from a chosen call
on (a learning rate large enough to diverge within a few steps is now refused by the config); the
command, the loop, ``training_step``'s check and the clean-up are the real ones.
"""

import copy

import pytest
import torch
import yaml
from reliability_helpers import (
    OUTPUTS,
    assert_one_line_error,
    leftovers,
    run_cli,
    save,
    smooth_volume,
    snapshot,
    training_config,
)
from safetensors.torch import load_file

import firereg.training.step as step_module

EXIT_DIVERGED = 3


def _nan_from(monkeypatch, call: int, term: str = "l_reg_acc") -> None:
    """Make ``term`` (and so the total) NaN from the ``call``-th objective on (1-based)."""
    real = step_module.fire_objective
    calls = {"n": 0}

    def objective(*args, **kwargs):
        terms = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] >= call:
            bad = terms[term] * float("nan")
            terms["total"] = terms["total"] + bad
            terms[term] = bad
        return terms

    monkeypatch.setattr(step_module, "fire_objective", objective)


def _config(tmp_path, phantom_root, **train):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(training_config(phantom_root, **train)))
    return path


def _train(capsys, config, out, *extra):
    return run_cli(capsys, "train", "--config", config, "--out", out, "--device", "cpu", "--no-progress",
                   *extra)


def test_a_run_that_diverges_after_a_checkpoint_keeps_it(tmp_path, capsys, monkeypatch, phantom_root):
    _nan_from(monkeypatch, 4)
    out = tmp_path / "run"
    code, stdout, err = _train(capsys, _config(tmp_path, phantom_root), out)
    line = assert_one_line_error(code, err, "train", "training diverged at step 4: l_reg_acc = nan",
                                 "its last good checkpoint, step-00000002, is kept", status=EXIT_DIVERGED)
    assert "train.init_from" in line
    assert "steps in" not in stdout  # no success line (the step-3 validation line is printed)
    assert (out / "latest").read_text().strip() == "step-00000002"
    names = leftovers(out)
    assert not any(n.startswith(("step-00000004", ".tmp")) for n in names), names
    assert "summary.json" not in names
    weights = load_file(str(out / "step-00000002" / "model.safetensors"))
    assert all(bool(torch.isfinite(t).all()) for t in weights.values())


@pytest.mark.parametrize("existing", [False, True], ids=["new folder", "existing empty folder"])
def test_a_run_that_diverges_before_any_checkpoint_leaves_nothing(tmp_path, capsys, monkeypatch,
                                                                  phantom_root, existing):
    _nan_from(monkeypatch, 1, term="l_syn_acc")
    out = tmp_path / "run"
    if existing:
        out.mkdir()
    code, _, err = _train(capsys, _config(tmp_path, phantom_root), out)
    assert_one_line_error(code, err, "train", "training diverged at step 1: l_syn_acc = nan",
                          "no checkpoint had been written", status=EXIT_DIVERGED)
    assert out.exists() == existing
    assert leftovers(out) == []


def test_resume_with_nothing_left_to_do_is_refused_untouched(tmp_path, capsys, phantom_root):
    config = _config(tmp_path, phantom_root, iterations=2)
    out = tmp_path / "run"
    assert _train(capsys, config, out)[0] == 0
    before = snapshot(out)
    for iterations in ("1", "2"):
        code, _, err = _train(capsys, config, out, "--resume", "--iterations", iterations)
        assert_one_line_error(code, err, "train", "--resume, but the run is already at step 2 and "
                              f"{iterations} iterations were asked for: nothing to do",
                              "--iterations N with N > 2")
        assert snapshot(out) == before


@pytest.fixture(scope="module")
def pair_2d(tmp_path_factory):
    root = tmp_path_factory.mktemp("pair2d")
    return {"moving": save(root / "moving.nii.gz", smooth_volume(1, (36, 40))),
            "fixed": save(root / "fixed.nii.gz", smooth_volume(2, (36, 40)))}


@pytest.mark.parametrize("earlier", [False, True], ids=["new --out", "--out with an earlier run"])
def test_network_refinement_that_diverges_writes_nothing(tmp_path, capsys, monkeypatch, pair_2d, earlier):
    out = tmp_path / "out"
    argv = ["register", "--moving", pair_2d["moving"], "--fixed", pair_2d["fixed"], "--model", "t1-t2-2d",
            "--out", out, "--device", "cpu", "--refine", "3", "--refine-mode", "network"]
    if earlier:
        assert run_cli(capsys, *argv[:-4])[0] == 0
        assert set(leftovers(out)) == OUTPUTS
    before = snapshot(out) if earlier else None
    _nan_from(monkeypatch, 2, term="r_smooth")
    code, stdout, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, "register", "--refine-mode network: Eq. 1 went non-finite at "
                          "fine-tuning step 2 of 3 (r_smooth = nan); nothing was written",
                          status=EXIT_DIVERGED)
    assert stdout == ""
    if earlier:
        assert snapshot(out) == before  # no lock, no staging folder, the earlier files as they were
    else:
        assert not out.exists()


def test_absurd_learning_rates_are_refused(tmp_path, capsys, phantom_root):
    config = copy.deepcopy(training_config(phantom_root))
    config["optim"]["lr_synthesis"] = 0.99
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    code, _, err = _train(capsys, path, tmp_path / "run")
    assert_one_line_error(code, err, "train",
                          "OptimConfig.lr_synthesis must be a float in (0, 0.1], got 0.99")
    assert not (tmp_path / "run").exists()
