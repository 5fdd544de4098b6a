"""A closed stdout (``firereg ... | head -0``): every command exits quietly with status 141
(128 + SIGPIPE, as a shell reports a program killed by a closed pipe), no traceback, and the files
it writes are complete. Before, a BrokenPipeError traceback came after the outputs were written.

Real pipes, real processes: the reading end is closed before the command prints."""

import os
import subprocess
import sys

import pytest
from reliability_helpers import OUTPUTS, leftovers, subprocess_env

EXIT_CLOSED_STDOUT = 141


def _closed_stdout_run(*argv) -> tuple[int, str]:
    """``python -m firereg ARGV`` with its stdout a pipe nobody reads: (exit status, stderr)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `| head -0` does, before anything is printed
    try:
        proc = subprocess.run([sys.executable, "-m", "firereg", *map(str, argv)], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, env=subprocess_env(), timeout=240)
    finally:
        os.close(write_end)
    return proc.returncode, proc.stderr


def test_register_into_a_closed_pipe_writes_its_outputs_and_exits_quietly(tmp_path, pair, models):
    out = tmp_path / "out"
    code, err = _closed_stdout_run("register", "--moving", pair["moving"], "--fixed", pair["fixed"],
                                   "--model", models["3d"], "--out", out, "--device", "cpu",
                                   "--spacing", "4")
    assert code == EXIT_CLOSED_STDOUT, err
    assert err == ""
    assert set(leftovers(out)) == OUTPUTS  # complete, no lock or staging folder left


@pytest.mark.parametrize("argv", [("models",), ("models", "--json"), ("info", "--width", "4"),
                                  ("--help",)], ids=" ".join)
def test_other_commands_into_a_closed_pipe_exit_quietly(argv):
    code, err = _closed_stdout_run(*argv)
    assert code in (0, EXIT_CLOSED_STDOUT), err  # --help may fit the pipe's buffer before it closes
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert err == ""
