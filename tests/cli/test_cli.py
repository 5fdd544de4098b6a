"""The ``firereg`` command: help, info, demo, and one-line errors for user mistakes."""

import json
import subprocess
import sys

import pytest

from firereg.cli.main import main


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "info" in out and "demo" in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_info_reports_the_paper_architecture(capsys):
    assert main(["info", "--ndim", "2", "--width", "64", "--size", "96", "112"]) == 0
    out = capsys.readouterr().out
    assert "feature grid (24, 28) (256 channels)" in out
    assert "T_af channels (8, 16, 20), kernels (7, 5, 2)" in out
    assert "N = 10,752" in out and f"{16 / (10 * 10752):.3e}" in out


def test_user_errors_are_one_line_and_exit_2(capsys):
    assert main(["info", "--size", "30", "30"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("firereg info: error:") and "multiple of 4" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert main(["demo", "--size", "10", "--out", "unused"]) == 2


def test_demo_runs_end_to_end_and_writes_its_outputs(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--synthesis-steps", "3", "--registration-steps", "3",
                 "--no-progress", "--size", "24"])
    assert code == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    assert (out / "demo.png").stat().st_size > 1000
    result = json.loads((out / "demo.json").read_text())
    assert result["true_translation"] == pytest.approx([-0.2, 0.15])
    assert 0.0 <= result["dice_fire"] <= 1.0 and "l_reg_acc" in result["final_terms"]


def test_python_dash_m_runs_the_console():
    proc = subprocess.run([sys.executable, "-m", "firereg", "--version"], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.startswith("firereg ")
