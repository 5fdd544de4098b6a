"""The ICBM 2009a builder on a tiny fake nilearn wheel (same member paths, gzipped NIfTI)."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from firereg.data.io import read_image, read_labels
from firereg.data.sources import icbm
from firereg.data.sources.cache import DownloadError

AFFINE = np.array([[1.0, 0, 0, -98], [0, 1.0, 0, -134], [0, 0, 1.0, -72], [0, 0, 0, 1]])
SHAPE = (9, 10, 11)


def _maps():
    gm = np.zeros(SHAPE, np.uint8)
    wm = np.zeros(SHAPE, np.uint8)
    gm[1:8, 1:9, 1:10] = 230
    wm[3:6, 3:7, 3:8], gm[3:6, 3:7, 3:8] = 200, 40
    gm[0, 0, 0], wm[0, 0, 0] = 60, 60  # sums to 0.47 < 0.5: background
    t1 = (np.arange(np.prod(SHAPE)) % 251).reshape(SHAPE).astype(np.uint8)
    return t1, gm, wm


def _wheel(path: Path, skip: str | None = None) -> Path:
    t1, gm, wm = _maps()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("nilearn/__init__.py", "")
        for key, data in (("t1", t1), ("grey", gm), ("white", wm)):
            if key != skip:
                img = nib.Nifti1Image(data, AFFINE)
                img.set_sform(AFFINE, code=2)
                zf.writestr(icbm.ICBM_MEMBERS[key], gzip.compress(img.to_bytes()))
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("icbm")
    return icbm.build_icbm_dataset(tmp / "cache", wheel=_wheel(tmp / "nilearn.whl"), progress=False)


def test_files_grid_and_labels(built):
    t1, gm, wm = _maps()
    image = read_image(built / "t1.nii.gz")
    assert image.spatial_shape == SHAPE
    np.testing.assert_allclose(image.affine, AFFINE)
    np.testing.assert_array_equal(image.data, t1)
    grey = read_image(built / "grey.nii.gz").data
    np.testing.assert_allclose(grey, gm / 255.0, atol=1e-6)
    assert grey.max() <= 1.0
    labels = read_labels(built / "labels.nii.gz")
    np.testing.assert_allclose(labels.affine, AFFINE)
    expected = np.zeros(SHAPE, np.int32)
    expected[1:8, 1:9, 1:10] = 1
    expected[3:6, 3:7, 3:8] = 3
    np.testing.assert_array_equal(labels.data, expected)
    info = json.loads((built / "labels.json").read_text())
    assert info["labels"] == {"1": "cortical grey matter", "3": "white matter"}
    assert info["voxels"] == {"1": int((expected == 1).sum()), "3": int((expected == 3).sum())}
    assert "no CSF" in (built / "README.txt").read_text()


def test_icbm_cases(built):
    (case,) = icbm.icbm_cases(built)
    assert case.images == {"T1": built / "t1.nii.gz"} and case.labels == built / "labels.nii.gz"
    assert case.label_names == {1: "cortical grey matter", 3: "white matter"}
    assert case.split == "test"
    with pytest.raises(ValueError, match="not built"):
        icbm.icbm_cases(built.parent / "none")


def test_idempotent_and_clear_errors(built, tmp_path):
    before = {p: p.stat().st_mtime_ns for p in built.rglob("*")}
    messages: list[str] = []
    icbm.build_icbm_dataset(built.parent.parent, wheel="/no/such.whl", progress=messages.append)
    assert {p: p.stat().st_mtime_ns for p in built.rglob("*")} == before
    assert "nothing to do" in messages[-1]
    with pytest.raises(DownloadError, match="does not hold .*mni_icbm152_gm"):
        icbm.build_icbm_dataset(tmp_path / "c", wheel=_wheel(tmp_path / "w.whl", skip="grey"),
                                progress=False)
    bad = tmp_path / "bad.whl"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DownloadError, match="not a valid wheel"):
        icbm.build_icbm_dataset(tmp_path / "c", wheel=bad, progress=False)
    assert not (tmp_path / "c" / "datasets" / "icbm152_2009a").exists()
