"""Outputs that cannot be written: a read-only folder, a disk that fills up mid-write.

Every case: one line on stderr, exit status 2, no partial or temporary file left, and the outputs
of an earlier run in the same folder untouched (a registration's files are written into a hidden
staging folder and moved into place only once all of them are complete).
"""

import builtins
import errno
import os
from pathlib import Path

import numpy as np
import pytest
from reliability_helpers import OUTPUTS, assert_one_line_error, leftovers, run_cli, save, snapshot

# ---------------------------------------------------------------------------------------------
# a read-only folder


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A folder nothing can be created in.

    As a normal user it is chmod 0o555. As root (this suite's CI container) chmod restricts
    nothing, so the test simulates the folder instead: ``os.mkdir`` and ``os.open`` (which
    ``Path.mkdir``, ``tempfile`` and the output lock use for every file and folder firereg
    creates) raise ``PermissionError(EACCES)`` for any path inside it, as the kernel would.
    """
    folder = tmp_path / "read-only"
    folder.mkdir()
    save(folder / "earlier.nii.gz", np.ones((4, 4, 4), np.float32))  # something to keep intact
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    real_mkdir, real_open = os.mkdir, os.open
    root = str(folder.resolve())

    def inside(path) -> bool:
        if isinstance(path, int):
            return False
        return os.path.abspath(os.fsdecode(path)).startswith(root)

    def denied(path):
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))

    def mkdir(path, *args, **kwargs):
        if inside(path):
            raise denied(path)
        return real_mkdir(path, *args, **kwargs)

    def open_(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            raise denied(path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    yield folder


@pytest.mark.parametrize("target", ["new folder inside", "the folder itself"])
def test_register_into_a_read_only_folder(capsys, models, pair, read_only, target):
    before = snapshot(read_only)
    out = read_only / "out" if target == "new folder inside" else read_only
    code, _, err = run_cli(capsys, "register", "--moving", pair["moving"], "--fixed", pair["fixed"],
                           "--model", models["3d"], "--out", out, "--device", "cpu", "--spacing", "2")
    assert_one_line_error(code, err, "register", str(out), "permission denied")
    assert snapshot(read_only) == before and leftovers(read_only) == ["earlier.nii.gz"]


@pytest.mark.parametrize("where, fragment", [
    ("a-file/out", "cannot create the output folder (not a directory)"),
    ("a-file", "exists and is not a folder"),
], ids=["under a regular file", "a regular file"])
def test_register_into_a_path_that_cannot_be_a_folder(tmp_path, capsys, models, pair, where, fragment):
    """Real (not simulated) refusals by the file system, root or not."""
    (tmp_path / "a-file").write_text("keep me")
    code, _, err = run_cli(capsys, "register", "--moving", pair["moving"], "--fixed", pair["fixed"],
                           "--model", models["3d"], "--out", tmp_path / where, "--device", "cpu")
    assert_one_line_error(code, err, "register", fragment)
    assert leftovers(tmp_path) == ["a-file"] and (tmp_path / "a-file").read_text() == "keep me"


def test_register_series_into_a_read_only_folder(capsys, models, cine, read_only):
    code, _, err = run_cli(capsys, "register-series", "--cine", cine, "--model", models["2d"],
                           "--out", read_only / "series", "--device", "cpu", "--spacing", "2")
    assert_one_line_error(code, err, "register-series", "permission denied")
    assert leftovers(read_only) == ["earlier.nii.gz"]


def test_apply_into_a_read_only_folder(tmp_path, capsys, models, pair, read_only):
    from firereg.cli.main import main

    assert main(["register", "--moving", str(pair["moving"]), "--fixed", str(pair["fixed"]), "--model",
                 str(models["3d"]), "--out", str(tmp_path / "reg"), "--device", "cpu",
                 "--spacing", "2"]) == 0
    capsys.readouterr()
    code, _, err = run_cli(capsys, "apply", "--transforms", tmp_path / "reg", "--input", pair["moving"],
                           "--reference", pair["fixed"], "--out", read_only / "applied.nii.gz")
    assert_one_line_error(code, err, "apply", "applied.nii.gz", "permission denied")
    assert leftovers(read_only) == ["earlier.nii.gz"]


def test_train_into_a_read_only_folder(tmp_path, capsys, read_only, phantom_config):
    code, _, err = run_cli(capsys, "train", "--config", phantom_config, "--out", read_only / "run",
                           "--device", "cpu", "--no-progress")
    assert_one_line_error(code, err, "train", "permission denied")
    assert leftovers(read_only) == ["earlier.nii.gz"]


# ---------------------------------------------------------------------------------------------
# a disk that fills up


class FullDisk:
    """Files opened for writing under ``folder`` accept ``budget`` bytes in all, then the write
    that does not fit is cut short and raises ``OSError(ENOSPC)``, as write(2) on a full disk.

    It wraps ``builtins.open``: the lowest Python-level write of every firereg output
    (``firereg.atomic.atomic_write_bytes``, gzip under nibabel's ``.nii.gz`` writer, scipy's
    ``savemat`` for ``.mat``) goes through a file object it returns.
    """

    def __init__(self, folder: Path, budget: int) -> None:
        self.root, self.left, self.failures = str(folder.resolve()), budget, 0
        self.real_open = builtins.open

    def open(self, file, mode="r", *args, **kwargs):
        f = self.real_open(file, mode, *args, **kwargs)
        if (isinstance(file, str | bytes | os.PathLike) and any(c in mode for c in "wax+")
                and os.path.abspath(os.fsdecode(file)).startswith(self.root)):
            return _Limited(f, self)
        return f


class _Limited:
    def __init__(self, f, disk: FullDisk) -> None:
        self._f, self._disk = f, disk

    def write(self, data):
        raw = data.encode() if isinstance(data, str) else bytes(memoryview(data).cast("B"))
        if len(raw) > self._disk.left:
            if self._disk.left:
                self._f.write(raw[: self._disk.left])
                self._f.flush()
            self._disk.left = 0
            self._disk.failures += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._disk.left -= len(raw)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def _register_argv(models, pair, out):
    return ["register", "--moving", pair["moving"], "--fixed", pair["fixed"], "--model",
            models["3d_perturbed"], "--out", out, "--device", "cpu", "--spacing", "2"]


@pytest.fixture(scope="module")
def output_bytes(tmp_path_factory, models, pair) -> int:
    """How many bytes a registration writes (the sum of its files' sizes)."""
    from firereg.cli.main import main

    out = tmp_path_factory.mktemp("sizes") / "out"
    assert main([str(a) for a in _register_argv(models, pair, out)]) == 0
    return sum(p.stat().st_size for p in out.iterdir())


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.7, 0.99])
@pytest.mark.parametrize("earlier", [False, True], ids=["empty folder", "earlier outputs"])
def test_register_on_a_disk_that_fills_up(tmp_path, capsys, monkeypatch, models, pair, output_bytes,
                                          fraction, earlier):
    out = tmp_path / "out"
    if earlier:  # an earlier run's outputs (another moving image): these must survive
        other = {**pair, "moving": save(tmp_path / "other.nii.gz", np.random.default_rng(4).random(
            (20, 22, 18)).astype(np.float32))}
        assert run_cli(capsys, *_register_argv(models, other, out))[0] == 0
        assert {p.name for p in out.iterdir()} == OUTPUTS
    before = snapshot(out) if earlier else None
    disk = FullDisk(tmp_path, int(fraction * output_bytes))
    monkeypatch.setattr(builtins, "open", disk.open)
    code, _, err = run_cli(capsys, *_register_argv(models, pair, out))
    monkeypatch.undo()
    assert disk.failures >= 1  # (gzip retries on close: a second failed write)
    assert_one_line_error(code, err, "register", str(out), "no space left on device")
    if earlier:
        assert snapshot(out) == before  # byte for byte; and no lock, staging or temporary file
        assert leftovers(out) == sorted(OUTPUTS)
    else:
        assert not out.exists()


def test_apply_on_a_disk_that_fills_up(tmp_path, capsys, monkeypatch, models, pair):
    reg = tmp_path / "reg"
    assert run_cli(capsys, *_register_argv(models, pair, reg))[0] == 0
    target = tmp_path / "applied" / "moved.nii.gz"
    target.parent.mkdir()
    save(target, np.zeros((3, 3, 3), np.float32))  # an earlier result under the same name
    before = target.read_bytes()
    monkeypatch.setattr(builtins, "open", FullDisk(target.parent, 500).open)
    code, _, err = run_cli(capsys, "apply", "--transforms", reg, "--input", pair["moving"],
                           "--reference", pair["fixed"], "--out", target)
    monkeypatch.undo()
    assert_one_line_error(code, err, "apply", "moved.nii.gz", "no space left on device")
    assert target.read_bytes() == before and leftovers(target.parent) == ["moved.nii.gz"]


def test_register_series_on_a_disk_that_fills_up(tmp_path, capsys, monkeypatch, models, cine):
    argv = ["register-series", "--cine", cine, "--model", models["2d"], "--out", tmp_path / "series",
            "--device", "cpu", "--spacing", "2"]
    assert run_cli(capsys, *argv)[0] == 0
    before = snapshot(tmp_path / "series")
    total = sum(len(b) for b in before.values())
    monkeypatch.setattr(builtins, "open", FullDisk(tmp_path, total // 2).open)
    code, _, err = run_cli(capsys, *argv)
    monkeypatch.undo()
    assert_one_line_error(code, err, "register-series", "no space left on device")
    assert snapshot(tmp_path / "series") == before
    assert leftovers(tmp_path / "series") == sorted([*before, "warps"])
