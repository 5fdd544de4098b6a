"""Ctrl-C during ``firereg evaluate`` while an ANTs baseline runs in its worker process.

A terminal's Ctrl-C sends SIGINT to every process of the foreground group, so the test starts
``python -m firereg evaluate`` in a session of its own and signals the whole group. ANTs runs in a
spawned worker (``ants.threads`` set); the signal lands while that worker is inside
``ants.registration``, a call of about two minutes here (a 160 x 160 image, SyN with a correlation
radius of 24 voxels). Before, the main process printed "interrupted" and then waited at exit for
the worker to finish that call; now it ends the worker itself (SIGTERM, a bounded wait, SIGKILL).
"""

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from reliability_helpers import finish, firereg_process, leftovers

pytest.importorskip("ants")

PROMPT_S = 20.0  # the interrupted command must be gone this soon


@pytest.fixture(scope="module")
def slow_ants_config(tmp_path_factory) -> Path:
    """An experiment whose one ANTs-SyN registration takes minutes, in a worker (threads: 1)."""
    from firereg.data.sources.cardiac_phantom import PhantomConfig, write_acdc_phantom

    root = tmp_path_factory.mktemp("slow_ants")
    write_acdc_phantom(root / "phantom", 5, PhantomConfig(
        size=(160, 160), pixel_spacing_mm=1.25, num_slices=2, slice_spacing_mm=13.0, num_phases=20,
        supersample=1, through_plane_samples=1), seed=1)
    config = {"name": "slow_ants", "kind": "cardiac", "model": "cine-2d", "dims": 2, "split": "test",
              "data_root": str(root / "phantom"), "methods": ["ants_syn"], "device": "cpu",
              "ants": {"threads": 1, "syn": {"reg_iterations": [3000, 3000, 3000], "syn_sampling": 24,
                                             "grad_step": 0.01}}}
    path = root / "slow.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):  # the task ended meanwhile
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _ants_worker(proc: subprocess.Popen, timeout: float) -> int:
    """The pid of ``proc``'s spawned worker once it has loaded ANTs (not the resource tracker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for child in _children(proc.pid):
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
                maps = Path(f"/proc/{child}/maps").read_text()
            except OSError:
                continue
            if b"spawn_main" in cmdline and "/ants" in maps:
                return child
        time.sleep(0.2)
    pytest.fail(f"no ANTs worker within {timeout} s")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ctrl_c_while_ants_runs_ends_evaluate_at_once(tmp_path, slow_ants_config):
    out = tmp_path / "out"
    proc = firereg_process("evaluate", "--config", slow_ants_config, "--out", out, "--no-progress",
                           "--max-images", "1", start_new_session=True)
    try:
        worker = _ants_worker(proc, timeout=240)
        time.sleep(3.0)  # ANTs imported: now inside ants.registration
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
        start = time.monotonic()
        try:
            code, _, err = finish(proc, timeout=PROMPT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {PROMPT_S} s after Ctrl-C")
        seconds = time.monotonic() - start
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert code == 130, err
    assert "Traceback" not in err, err
    assert err.strip().splitlines() == ["firereg evaluate: interrupted"], err
    assert seconds < PROMPT_S
    assert not _alive(worker), "the ANTs worker outlived the command"
    assert not out.exists(), leftovers(out)  # nothing was written
