"""A write that fails half-way through ``firereg evaluate`` or ``firereg explain``: one line on
stderr, exit status 2, and the output folder exactly as it was (an earlier run's files byte for
byte, nothing new; a folder the run would have made, not made).

Both now write as ``register`` does (``firereg.atomic.staged_files``). Before, ``evaluate`` said
"the folder was left as it was" with 3 of its 4 files already replaced, and ``explain`` ended in a
traceback with the first figures written.

In process, the Nth file write raises ``OSError(ENOSPC)`` after leaving a torn file under the name
it was given; in a fresh process, the kernel refuses writes past ``RLIMIT_FSIZE`` (EFBIG).
"""

import errno
import os
import resource
from pathlib import Path

import pytest
import yaml
from reliability_helpers import (
    assert_one_line_error,
    finish,
    firereg_process,
    leftovers,
    run_cli,
    save,
    smooth_volume,
    snapshot,
)

EVALUATE_FILES = ["cases.json", "report.html", "results.csv", "results.md"]


def _failing_write(real, nth: int):
    """``real(path, data)``, except that call ``nth`` (1-based; -1: the last of ``total``) writes
    half of ``data`` to ``path`` and raises ENOSPC, as a disk that fills up."""
    calls = []

    def write(path, data):
        calls.append(path)
        if len(calls) == nth:
            raw = data.encode("utf-8") if isinstance(data, str) else data
            Path(path).write_bytes(raw[: len(raw) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data)

    write.calls = calls
    return write


# ---------------------------------------------------------------------------------------------
# evaluate


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, phantom_root) -> Path:
    """ES -> ED of the phantom's test subject, unaligned only: no model, no ANTs, under a second."""
    path = tmp_path_factory.mktemp("experiment") / "unaligned.yaml"
    path.write_text(yaml.safe_dump({"name": "unaligned_only", "kind": "cardiac", "model": "cine-2d",
                                    "dims": 2, "split": "test", "data_root": str(phantom_root),
                                    "methods": ["unaligned"], "device": "cpu"}))
    return path


def _evaluate(experiment, out, *extra):
    return ["evaluate", "--config", experiment, "--out", out, "--no-progress", *extra]


@pytest.fixture
def earlier_results(tmp_path, capsys, experiment) -> Path:
    out = tmp_path / "results"
    code, _, err = run_cli(capsys, *_evaluate(experiment, out))
    assert code == 0, err
    assert leftovers(out) == EVALUATE_FILES
    return out


@pytest.mark.parametrize("nth", [1, 2, 3, 4])
def test_evaluate_over_earlier_results_with_a_write_failing(capsys, monkeypatch, experiment,
                                                           earlier_results, nth):
    """--overwrite with the nth of the 4 files failing: the 4 earlier files stay as they were."""
    from firereg.evaluation import outputs

    before = snapshot(earlier_results)
    failing = _failing_write(outputs.atomic_write_text, nth)
    monkeypatch.setattr(outputs, "atomic_write_text", failing)
    code, stdout, err = run_cli(capsys, *_evaluate(experiment, earlier_results, "--overwrite",
                                                   "--max-images", "1"))
    assert len(failing.calls) == nth
    assert_one_line_error(code, err, "evaluate", str(earlier_results), "no space left on device",
                          "the folder was left as it was")
    assert "wrote" not in stdout
    assert snapshot(earlier_results) == before
    assert leftovers(earlier_results) == EVALUATE_FILES  # no lock, staging or temporary file


def test_evaluate_into_a_new_folder_with_a_write_failing(tmp_path, capsys, monkeypatch, experiment):
    from firereg.evaluation import outputs

    monkeypatch.setattr(outputs, "atomic_write_text", _failing_write(outputs.atomic_write_text, 3))
    out = tmp_path / "new"
    code, _, err = run_cli(capsys, *_evaluate(experiment, out))
    assert_one_line_error(code, err, "evaluate", str(out), "no space left on device")
    assert not out.exists(), leftovers(out)


FILE_SIZE_LIMIT = 20_000  # bytes: results.md, results.csv and cases.json fit, report.html does not


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))


def test_evaluate_under_a_real_file_size_limit(experiment, earlier_results):
    """The issue's case, in a fresh process: the kernel refuses report.html (EFBIG) after the three
    smaller files were written; none of them may replace the earlier ones."""
    sizes = {p.name: p.stat().st_size for p in earlier_results.iterdir()}
    smaller = max(sizes[n] for n in EVALUATE_FILES if n != "report.html")
    assert sizes["report.html"] > FILE_SIZE_LIMIT > smaller
    before = snapshot(earlier_results)
    proc = firereg_process(*_evaluate(experiment, earlier_results, "--overwrite", "--max-images", "1"),
                           preexec_fn=_limit_file_size)
    code, _, err = finish(proc)
    assert_one_line_error(code, err, "evaluate", str(earlier_results), "file too large",
                          "the folder was left as it was")
    assert snapshot(earlier_results) == before
    assert leftovers(earlier_results) == EVALUATE_FILES


# ---------------------------------------------------------------------------------------------
# explain


@pytest.fixture(scope="module")
def pair_2d(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("explain_pair")
    return {f"{name}{seed}": save(root / f"{name}{seed}.nii.gz", smooth_volume(seed, (36, 40)))
            for name, seed in (("moving", 1), ("fixed", 2), ("moving", 3))}


def _explain(models, moving, fixed, out, *extra):
    return ["explain", "--moving", moving, "--fixed", fixed, "--model", models["2d"], "--out", out,
            "--device", "cpu", "--spacing", "4", *extra]


@pytest.fixture(scope="module")
def earlier_report(tmp_path_factory, models, pair_2d) -> Path:
    from firereg.cli.main import main

    out = tmp_path_factory.mktemp("explain") / "report"
    assert main([str(a) for a in _explain(models, pair_2d["moving1"], pair_2d["fixed2"], out)]) == 0
    assert {"explain.html", "explain.json"} < set(leftovers(out))
    return out


@pytest.mark.parametrize("nth", [3, "html"])
def test_explain_over_an_earlier_report_with_a_write_failing(capsys, monkeypatch, models, pair_2d,
                                                            earlier_report, nth):
    """--overwrite with the 3rd figure, or the HTML (written last), failing: the earlier report
    stays as it was, no traceback."""
    from firereg.explain import report

    before = snapshot(earlier_report)
    names = leftovers(earlier_report)
    total = len(names)  # every figure, explain.json and explain.html
    failing = _failing_write(report.atomic_write_bytes, total if nth == "html" else nth)
    monkeypatch.setattr(report, "atomic_write_bytes", failing)
    code, stdout, err = run_cli(capsys, *_explain(models, pair_2d["moving3"], pair_2d["fixed2"],
                                                  earlier_report, "--overwrite"))
    assert_one_line_error(code, err, "explain", str(earlier_report), "no space left on device",
                          "the folder was left as it was")
    assert "wrote" not in stdout
    assert snapshot(earlier_report) == before
    assert leftovers(earlier_report) == names


def test_explain_into_a_new_folder_with_a_write_failing(tmp_path, capsys, monkeypatch, models, pair_2d):
    from firereg.explain import report

    monkeypatch.setattr(report, "atomic_write_bytes", _failing_write(report.atomic_write_bytes, 3))
    out = tmp_path / "new"
    code, _, err = run_cli(capsys, *_explain(models, pair_2d["moving1"], pair_2d["fixed2"], out))
    assert_one_line_error(code, err, "explain", str(out), "no space left on device")
    assert not out.exists(), leftovers(out)
