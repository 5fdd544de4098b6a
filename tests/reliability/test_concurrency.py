"""Concurrency: registrations running at once into different folders do not interfere; a second
registration into a folder in use is refused, and leaves the folder as it was."""

import shutil

import nibabel as nib
import numpy as np
import pytest
import scipy.io
from reliability_helpers import (
    OUTPUTS,
    assert_one_line_error,
    finish,
    firereg_process,
    leftovers,
    run_cli,
    save,
    smooth_volume,
    snapshot,
)

from firereg.cli.main import main
from firereg.cli.register import output_lock

COMPARED = ("warped.nii.gz", "warp.nii.gz", "inverse_warp.nii.gz")


def _argv(model, moving, fixed, out):
    return ["register", "--moving", str(moving), "--fixed", str(fixed), "--model", str(model), "--out",
            str(out), "--device", "cpu", "--spacing", "2"]


@pytest.fixture(scope="module")
def jobs(tmp_path_factory, models, pair) -> dict:
    """Two different registrations (the second with non-ASCII paths), run one after the other in
    this process, and at the same time in two ``python -m firereg`` processes."""
    root = tmp_path_factory.mktemp("concurrency")
    accents = root / "données_脑"
    b_moving = save(accents / "moving ü.nii.gz", smooth_volume(31, (22, 20, 18)))
    b_fixed = shutil.copy(pair["fixed"], accents / "fixé.nii.gz")
    model = models["3d_perturbed"]
    inputs = {"a": (pair["moving"], pair["fixed"]), "b": (b_moving, b_fixed)}
    outs = {"a": root / "parallel-a", "b": accents / "sortie é"}
    procs = {k: firereg_process(*_argv(model, *inputs[k], outs[k])) for k in inputs}
    sequential = {}
    for k in inputs:  # meanwhile, the same registrations one after the other, here
        sequential[k] = root / f"sequential-{k}"
        assert main(_argv(model, *inputs[k], sequential[k])) == 0
    done = {k: finish(proc) for k, proc in procs.items()}
    return {"parallel": outs, "sequential": sequential, "done": done}


@pytest.mark.parametrize("job", ["a", "b"])
def test_parallel_registrations_equal_sequential_ones(jobs, job):
    code, stdout, err = jobs["done"][job]
    assert code == 0, err
    parallel, sequential = jobs["parallel"][job], jobs["sequential"][job]
    assert {p.name for p in parallel.iterdir()} == OUTPUTS  # no lock or staging folder left
    for name in COMPARED:
        np.testing.assert_array_equal(nib.load(parallel / name).get_fdata(),
                                      nib.load(sequential / name).get_fdata(), err_msg=name)
    for name in ("affine.mat", "inverse_affine.mat"):
        np.testing.assert_array_equal(scipy.io.loadmat(parallel / name)["AffineTransform_double_3_3"],
                                      scipy.io.loadmat(sequential / name)["AffineTransform_double_3_3"])
    # the two jobs really differ, so a mix-up would show
    other = jobs["sequential"]["b" if job == "a" else "a"]
    assert not np.array_equal(nib.load(parallel / "warp.nii.gz").get_fdata(),
                              nib.load(other / "warp.nii.gz").get_fdata())


def test_a_folder_in_use_is_refused_and_left_as_it_was(tmp_path, capsys, models, pair):
    """The test holds the folder's lock (as a running registration does) while another starts."""
    out = tmp_path / "out"
    assert main(_argv(models["3d"], pair["moving"], pair["fixed"], out)) == 0  # earlier outputs
    capsys.readouterr()
    before = snapshot(out)
    with output_lock(out):
        assert (out / ".firereg.lock").exists()
        code, _, err = run_cli(capsys, *_argv(models["3d"], pair["moving"], pair["fixed"], out))
        assert_one_line_error(code, err, "register", str(out), "another firereg run is writing here",
                              ".firereg.lock")
        assert snapshot(out) == {**before, ".firereg.lock": (out / ".firereg.lock").read_bytes()}
    assert leftovers(out) == sorted(OUTPUTS)  # the holder released it
    assert run_cli(capsys, *_argv(models["3d"], pair["moving"], pair["fixed"], out))[0] == 0


def test_a_lock_left_by_a_killed_run_is_taken_over_or_reported_with_its_remedy(tmp_path, capsys, models,
                                                                              pair):
    """A run killed mid-write leaves its lock (and maybe a staging folder). Written on this host by
    a process that is gone, the next run takes it over, says so, and clears the staging folder. A
    lock it cannot prove dead (another host, the old pid-only format) is refused with the remedy."""
    import json
    import socket
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    out = tmp_path / "out"
    out.mkdir()
    (out / ".firereg.lock").write_text(json.dumps({"pid": child.pid, "host": socket.gethostname()}))
    (out / ".firereg-staging-dead").mkdir()
    (out / ".firereg-staging-dead" / "warp.nii.gz").write_bytes(b"half a file")
    code, _, err = run_cli(capsys, *_argv(models["3d"], pair["moving"], pair["fixed"], out))
    assert code == 0 and f"removed the lock of a run that died (pid {child.pid} on this host)" in err
    assert leftovers(out) == sorted(OUTPUTS)

    for text in ("999999", json.dumps({"pid": child.pid, "host": "another-host.example"})):
        (out / ".firereg.lock").write_text(text)
        code, _, err = run_cli(capsys, *_argv(models["3d"], pair["moving"], pair["fixed"], out))
        assert_one_line_error(code, err, "register", "remove .firereg.lock if that run is dead")
        assert (out / ".firereg.lock").read_text() == text
    (out / ".firereg.lock").unlink()
    assert run_cli(capsys, *_argv(models["3d"], pair["moving"], pair["fixed"], out))[0] == 0
    assert leftovers(out) == sorted(OUTPUTS)
