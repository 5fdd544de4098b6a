"""The real console, ``python -m firereg``, in fresh processes: what a user sees on stderr is one
line (no nibabel log line, no traceback), with exit status 2, and nothing partial is left.

The processes start at once (a module fixture) and each test checks one of them. The file-size
case is a real operating-system refusal, not a simulation: ``RLIMIT_FSIZE`` makes every write past
the limit fail with EFBIG, as a full disk fails with ENOSPC.
"""

import resource

import pytest
from reliability_helpers import (
    OUTPUTS,
    assert_one_line_error,
    finish,
    firereg_process,
    leftovers,
    save,
    smooth_volume,
    snapshot,
    truncated,
    with_spacing,
)

FILE_SIZE_LIMIT = 8_000  # bytes: the lock file fits, no image does


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))


@pytest.fixture(scope="module")
def results(tmp_path_factory, models, pair) -> dict:
    root = tmp_path_factory.mktemp("subprocess")
    m, f = pair["moving"], pair["fixed"]
    common = ["--model", models["3d"], "--device", "cpu", "--spacing", "2"]
    earlier = root / "earlier"  # outputs of an earlier run, to survive the failing one
    from firereg.cli.main import main

    other = save(root / "other.nii.gz", smooth_volume(9))
    assert main(["register", "--moving", str(other), "--fixed", str(f), "--out", str(earlier),
                 *map(str, common)]) == 0
    cases = {
        "truncated .nii.gz": (["register", "--moving", truncated(root / "t.nii.gz", m), "--fixed", f,
                               "--out", root / "o1", *common], {}),
        "zero spacing": (["register", "--moving", with_spacing(root / "zero.nii", 0.0), "--fixed", f,
                          "--out", root / "o2", *common], {}),
        "file size limit": (["register", "--moving", m, "--fixed", f, "--out", earlier, *common],
                            {"preexec_fn": _limit_file_size}),
    }
    before = snapshot(earlier)
    procs = {name: firereg_process(*argv, **kwargs) for name, (argv, kwargs) in cases.items()}
    done = {name: finish(proc) for name, proc in procs.items()}
    return {"root": root, "done": done, "earlier": earlier, "earlier_before": before}


def _one_line_error(result, command, *fragments):
    code, _, err = result
    assert_one_line_error(code, err, command, *fragments)


@pytest.mark.parametrize("case, fragments, out", [
    ("truncated .nii.gz", ("t.nii.gz", "truncated"), "o1"),
    # nibabel logs "pixdim[1,2,3] should be non-zero" to stderr on its own: not here
    ("zero spacing", ("zero.nii", "invalid voxel spacing (0.0, 2.0, 2.0)"), "o2"),
])
def test_a_bad_input_is_one_line_in_a_fresh_process(results, case, fragments, out):
    _one_line_error(results["done"][case], "register", *fragments)
    assert not (results["root"] / out).exists()


def test_a_real_write_failure_leaves_earlier_outputs_untouched(results):
    """The kernel refuses writes past RLIMIT_FSIZE (EFBIG): one line, and the earlier outputs in
    the folder are byte for byte as they were, with no lock, staging or temporary file left."""
    _one_line_error(results["done"]["file size limit"], "register", str(results["earlier"]),
                    "file too large", "left as it was")
    assert snapshot(results["earlier"]) == results["earlier_before"]
    assert leftovers(results["earlier"]) == sorted(OUTPUTS)
