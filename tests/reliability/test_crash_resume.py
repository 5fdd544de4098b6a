"""Crash-safe training: ``firereg train`` killed with SIGKILL (mid-run, or in the middle of saving a
checkpoint) and continued with ``--resume`` ends with exactly the weights of an uninterrupted run
of the same seed; a disk that fills up while saving a checkpoint is one line, and resumable.

The runs are tiny (width 4, 20 x 20 model grid, 6 steps, a checkpoint every 2) on the SYNTHETIC
cardiac phantom, one thread each (OMP_NUM_THREADS=1), so the comparison is bit for bit.
"""

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from reliability_helpers import assert_one_line_error, firereg_process, run_cli, subprocess_env

from firereg.cli.main import main
from firereg.training.checkpoint import latest_checkpoint, load_model

ITERATIONS = 6

# Runs firereg, and kills itself with SIGKILL while the step-4 checkpoint's checkpoint.json is half
# written (model, optimizer and RNG tensors already in the temporary folder).
KILL_DURING_SAVE = '''
import json, os, signal, sys
import firereg.training.checkpoint as ck

real_json = ck._write_json


def _write_json(path, data):
    if path.parent.name.startswith(".tmp-step-00000004"):
        text = json.dumps(data)
        path.write_text(text[: len(text) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return real_json(path, data)


ck._write_json = _write_json
from firereg.cli.main import main
sys.exit(main(sys.argv[1:]))
'''


def _train_argv(config: Path, out: Path, *extra) -> list[str]:
    return ["train", "--config", str(config), "--out", str(out), "--device", "cpu", "--no-progress",
            *extra]


def _train_here(config: Path, out: Path, *extra) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        return main(_train_argv(config, out, *extra))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, phantom_config) -> dict:
    """An uninterrupted run, and two runs killed by SIGKILL (from outside mid-run; by itself in a
    checkpoint save), each then resumed here. The three run at once."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("crash")
    script = root / "kill_during_save.py"
    script.write_text(KILL_DURING_SAVE)
    outs = {"mid-run": root / "killed", "during save": root / "killed-in-save"}
    procs = {"mid-run": firereg_process(*_train_argv(phantom_config, outs["mid-run"])),
             "during save": subprocess.Popen(
                 [sys.executable, str(script), *_train_argv(phantom_config, outs["during save"])],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())}
    # SIGKILL the first run from outside, as soon as it has a checkpoint (it then has 4 steps to go)
    latest, deadline = outs["mid-run"] / "latest", time.monotonic() + 240
    while not latest.exists():
        assert procs["mid-run"].poll() is None, procs["mid-run"].communicate()[1][-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.005)
    alive = procs["mid-run"].poll() is None
    os.kill(procs["mid-run"].pid, signal.SIGKILL)
    state = {}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=240)
        out = outs[name]
        state[name] = {"returncode": proc.returncode, "stderr": err, "alive_at_kill": alive,
                       "latest": (out / "latest").read_text().strip(),
                       "summary": (out / "summary.json").exists(),
                       "tmp_folders": sorted(p.name for p in out.glob(".tmp-step-*")),
                       "folders": sorted(p.name for p in out.glob("step-*"))}
    assert _train_here(phantom_config, root / "full") == 0  # uninterrupted, same seed
    for out in outs.values():
        assert _train_here(phantom_config, out, "--resume") == 0
    return {"full": root / "full", "outs": outs, "state": state}


def _assert_same_as_uninterrupted(run: Path, full: Path) -> None:
    summary, reference = (json.loads((p / "summary.json").read_text()) for p in (run, full))
    assert summary["parameter_checksums"] == reference["parameter_checksums"]
    assert summary["steps"] == reference["steps"] == ITERATIONS
    a = load_model(latest_checkpoint(run)).state_dict()
    b = load_model(latest_checkpoint(full)).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert latest_checkpoint(run).name == f"step-{ITERATIONS:08d}"
    # each step logged once, in order, however often it ran; validation at steps 3 and 6
    steps = [r.split(",")[0] for r in (run / "log.csv").read_text().splitlines()[1:]]
    assert steps == [str(s) for s in range(1, ITERATIONS + 1)]
    assert [r.split(",")[0] for r in (run / "val.csv").read_text().splitlines()[1:]] == ["3", "6"]
    assert not list(run.glob(".tmp-step-*"))


def test_sigkill_mid_run_then_resume_matches_an_uninterrupted_run(runs):
    state = runs["state"]["mid-run"]
    assert state["alive_at_kill"], "the run ended before it could be killed"
    assert state["returncode"] == -signal.SIGKILL
    assert not state["summary"]  # killed before the end
    assert state["latest"] in {f"step-{s:08d}" for s in range(2, ITERATIONS, 2)}
    _assert_same_as_uninterrupted(runs["outs"]["mid-run"], runs["full"])


def test_sigkill_while_saving_a_checkpoint_then_resume_matches(runs):
    state = runs["state"]["during save"]
    assert state["returncode"] == -signal.SIGKILL, state["stderr"][-2000:]
    assert state["latest"] == "step-00000002"  # the previous checkpoint stays the latest
    assert state["folders"] == ["step-00000002"]
    assert len(state["tmp_folders"]) == 1  # the torn one: never read, removed by the next save
    _assert_same_as_uninterrupted(runs["outs"]["during save"], runs["full"])


def test_ctrl_c_between_a_checkpoint_and_its_latest_pointer_then_resume_matches(
        tmp_path, capsys, monkeypatch, phantom_config, runs):
    """Interrupted after step-00000004/ is in place but before ``latest`` points at it: exit 130,
    one line; --resume starts again from step 2 and replaces the unreferenced step-00000004/."""
    import firereg.training.checkpoint as ck

    real = ck.atomic_write_text

    def interrupted(path, text):
        if path.name == "latest" and text.strip() == "step-00000004":
            raise KeyboardInterrupt
        return real(path, text)

    monkeypatch.setattr(ck, "atomic_write_text", interrupted)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, *_train_argv(phantom_config, out))
    assert code == 130 and err.strip() == "firereg train: interrupted"
    assert (out / "latest").read_text().strip() == "step-00000002"
    assert sorted(p.name for p in out.glob("step-*")) == ["step-00000002", "step-00000004"]
    monkeypatch.setattr(ck, "atomic_write_text", real)
    assert run_cli(capsys, *_train_argv(phantom_config, out, "--resume"))[0] == 0
    _assert_same_as_uninterrupted(out, runs["full"])


def test_a_disk_full_during_a_checkpoint_save_is_one_line_and_resumable(tmp_path, capsys, monkeypatch,
                                                                       phantom_config, runs):
    """safetensors' own error on a full disk (as its Rust writer reports ENOSPC) at step 4."""
    from safetensors import SafetensorError

    import firereg.training.checkpoint as ck

    real = ck.save_file

    def full_disk(tensors, filename, *args, **kwargs):
        if ".tmp-step-00000004" in filename:
            Path(filename).write_bytes(b"\0" * 100)  # a partial file, then the error
            raise SafetensorError("Error while serializing: I/O error: No space left on device "
                                  "(os error 28)")
        return real(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(ck, "save_file", full_disk)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, *_train_argv(phantom_config, out))
    assert_one_line_error(code, err, "train", "model.safetensors", "no space left on device",
                          "--resume continues from the last one")
    assert (out / "latest").read_text().strip() == "step-00000002"
    assert not list(out.glob(".tmp-step-*")) and not (out / "summary.json").exists()
    monkeypatch.setattr(ck, "save_file", real)
    assert run_cli(capsys, *_train_argv(phantom_config, out, "--resume"))[0] == 0
    _assert_same_as_uninterrupted(out, runs["full"])
