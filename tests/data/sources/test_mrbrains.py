"""MRBrainS13 / MRBrainS18 adapters on small mock trees of the challenges' exact layouts."""

import logging
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from firereg.data.records import Case
from firereg.data.sources.mrbrains import (
    BRAIN_LABELS,
    PAPER_STRUCTURES,
    MRBrainSError,
    brain_pairs,
    brain_slices,
    mrbrains13_cases,
    mrbrains18_cases,
    mrbrains_cases,
    paper_split,
    unify_labels,
)

SHAPE = (8, 8, 4)
IDS18 = ("1", "4", "5", "7", "14", "070", "148")
IDS13 = ("1", "2", "3", "4", "5")


def _save(path: Path, data: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.diag([0.958, 0.958, 3.0, 1.0])), str(path))
    return path


def _labels(values=(1, 3, 7, 8), slices=(1, 2)) -> np.ndarray:
    """A label map with brain only in the given axial slices."""
    data = np.zeros(SHAPE, np.uint8)
    for i, z in enumerate(slices):
        data[2:6, 2:6, z] = values[i % len(values)]
        data[2, 2, z] = values[-1]
    return data


def make18(base: Path, subject: str, *, suffix=".nii.gz", skip=(), labels=None, orig=True) -> Path:
    """``base/<subject>/{pre/{T1,IR,FLAIR}, segm}`` as MRBrainS18 ships it, with ``orig/`` too."""
    folder = base / subject
    image = np.ones(SHAPE, np.float32)
    for stem in ("pre/T1", "pre/IR", "pre/FLAIR"):
        if stem not in skip:
            _save(folder / f"{stem}{suffix}", image)
    if orig:
        _save(folder / f"orig/T1{suffix}", np.ones((10, 10, 6), np.float32))
    if "segm" not in skip:
        _save(folder / f"segm{suffix}", _labels() if labels is None else labels)
    return folder


def make13(base: Path, subject: str, *, suffix=".nii", skip=(), shapes=None) -> Path:
    """``base/<subject>/{T1, T1_IR, T2_FLAIR, LabelsForTraining}.nii`` as MRBrainS13 ships it."""
    folder = base / subject
    shapes = shapes or {}
    for stem in ("T1", "T1_IR", "T2_FLAIR"):
        if stem not in skip:
            _save(folder / f"{stem}{suffix}", np.ones(shapes.get(stem, SHAPE), np.float32))
    if "LabelsForTraining" not in skip:
        _save(folder / f"LabelsForTraining{suffix}", _labels(slices=(0, 1, 2)))
    return folder


def test_mrbrains18_layout(tmp_path):
    for subject in ("148", "1", "070"):
        make18(tmp_path, subject)
    cases = mrbrains18_cases(tmp_path)
    assert [c.name for c in cases] == ["mrbrains18_1", "mrbrains18_070", "mrbrains18_148"]
    case = cases[1]
    assert isinstance(case, Case)
    assert case.images == {m: tmp_path / "070" / "pre" / f"{m}.nii.gz" for m in ("T1", "IR", "FLAIR")}
    assert case.labels == tmp_path / "070" / "segm.nii.gz"
    assert case.label_names == BRAIN_LABELS
    assert case.meta["release"] == "MRBrainS18" and case.meta["subject"] == "070"
    assert case.meta["shape"] == SHAPE and case.split is None


@pytest.mark.parametrize("parent", ["", "TrainingData"])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_mrbrains13_layout_with_or_without_trainingdata(tmp_path, parent, suffix):
    for subject in ("2", "1"):
        make13(tmp_path / parent, subject, suffix=suffix)
    for cases in (mrbrains13_cases(tmp_path), mrbrains_cases(tmp_path)):
        assert [c.name for c in cases] == ["mrbrains13_1", "mrbrains13_2"]
        folder = tmp_path / parent / "1"
        assert cases[0].images == {"T1": folder / f"T1{suffix}", "IR": folder / f"T1_IR{suffix}",
                                   "FLAIR": folder / f"T2_FLAIR{suffix}"}
        assert cases[0].labels == folder / f"LabelsForTraining{suffix}"
        assert cases[0].meta["release"] == "MRBrainS13"


def test_mrbrains_cases_detects_each_release(tmp_path):
    make18(tmp_path / "a", "5", suffix=".nii")
    make13(tmp_path / "b", "5")
    assert [c.name for c in mrbrains_cases(tmp_path / "a")] == ["mrbrains18_5"]
    assert [c.name for c in mrbrains_cases(tmp_path / "b")] == ["mrbrains13_5"]
    with pytest.raises(MRBrainSError, match="no MRBrainS18 subject folders"):
        mrbrains18_cases(tmp_path / "b")
    with pytest.raises(MRBrainSError, match="no MRBrainS13 subject folders"):
        mrbrains13_cases(tmp_path / "a")


def test_neither_layout_names_the_folder_and_what_was_expected(tmp_path):
    folder = tmp_path / "brains"
    _save(folder / "1" / "t1_weighted.nii.gz", np.ones(SHAPE, np.float32))
    (folder / "notes").mkdir()
    with pytest.raises(MRBrainSError) as info:
        mrbrains_cases(folder)
    message = str(info.value)
    assert str(folder) in message
    assert "MRBrainS18: <N>/{pre/T1.nii[.gz], pre/IR.nii[.gz], pre/FLAIR.nii[.gz], segm.nii[.gz]}" in message
    assert "MRBrainS13: <N>/{T1.nii[.gz], T1_IR.nii[.gz], T2_FLAIR.nii[.gz], LabelsForTraining" in message
    with pytest.raises(MRBrainSError, match="MRBrainS folder not found"):
        mrbrains_cases(tmp_path / "missing")


@pytest.fixture
def fused(tmp_path):
    """The 12 subjects of §4.1: MRBrainS13/TrainingData/1..5 and MRBrainS18/training/<N>."""
    for subject in IDS13:
        make13(tmp_path / "MRBrainS13" / "TrainingData", subject)
    for subject in IDS18:
        make18(tmp_path / "MRBrainS18" / "training", subject, orig=False)
    return tmp_path


def test_fused_folder_and_paper_split_8_1_3(fused):
    cases = mrbrains_cases(fused)
    assert len(cases) == 12
    assert Counter(c.meta["release"] for c in cases) == {"MRBrainS13": 5, "MRBrainS18": 7}
    assert {frozenset(c.images) for c in cases} == {frozenset({"T1", "IR", "FLAIR"})}
    split = paper_split(cases)
    assert [c.name for c in split] == [c.name for c in cases]
    assert Counter(c.split for c in split) == {"train": 8, "val": 1, "test": 3}
    assert Counter((c.meta["release"], c.split) for c in split) == {
        ("MRBrainS13", "train"): 4, ("MRBrainS13", "test"): 1,
        ("MRBrainS18", "train"): 4, ("MRBrainS18", "val"): 1, ("MRBrainS18", "test"): 2}
    again = mrbrains_cases(fused, split="paper")
    assert {c.name: c.split for c in again} == {c.name: c.split for c in split}
    shuffled = paper_split([cases[i] for i in (5, 0, 11, 3, 7, 1, 9, 2, 10, 4, 8, 6)])
    assert {c.name: c.split for c in shuffled} == {c.name: c.split for c in split}


def test_same_subject_twice_is_an_error(tmp_path):
    make18(tmp_path / "copy1", "4")
    make18(tmp_path / "copy2", "4")
    with pytest.raises(MRBrainSError, match="mrbrains18_4 found twice"):
        mrbrains_cases(tmp_path)


def test_missing_modality_names_the_subject_and_file(tmp_path):
    make18(tmp_path, "7", skip=("pre/IR",))
    with pytest.raises(MRBrainSError, match=r"7: MRBrainS18 subject without pre/IR\.nii\.gz .*IR image"):
        mrbrains_cases(tmp_path)
    make13(tmp_path / "13", "2", skip=("T2_FLAIR",))
    with pytest.raises(MRBrainSError, match=r"without T2_FLAIR\.nii\.gz \(or \.nii\), its FLAIR image"):
        mrbrains13_cases(tmp_path / "13")


def test_images_of_different_shapes_are_refused(tmp_path):
    make13(tmp_path, "3", shapes={"T1_IR": (8, 8, 5)})
    with pytest.raises(MRBrainSError, match=r"T1_IR\.nii: shape \(8, 8, 5\) differs from \(8, 8, 4\)"):
        mrbrains13_cases(tmp_path)


def test_3d_pairs_name_the_modality_files_and_labels(tmp_path):
    for subject in ("1", "14"):
        make18(tmp_path, subject)
    cases = mrbrains18_cases(tmp_path)
    pairs = list(brain_pairs(cases, mode="3d"))
    assert [(p.case, p.moving_modality, p.fixed_modality) for p in pairs] == [
        ("mrbrains18_1", "T1", "FLAIR"), ("mrbrains18_1", "IR", "FLAIR"),
        ("mrbrains18_14", "T1", "FLAIR"), ("mrbrains18_14", "IR", "FLAIR")]
    first = pairs[0]
    assert first.moving == tmp_path / "1" / "pre" / "T1.nii.gz"
    assert first.fixed == tmp_path / "1" / "pre" / "FLAIR.nii.gz"
    assert first.labels == tmp_path / "1" / "segm.nii.gz" and first.z is None


def test_2d_pairs_skip_slices_without_brain(tmp_path):
    make18(tmp_path, "1", labels=_labels(slices=(1, 3)))
    make13(tmp_path / "13", "1")  # brain in slices 0, 1, 2
    cases = mrbrains18_cases(tmp_path) + mrbrains13_cases(tmp_path / "13")
    pairs = list(brain_pairs(cases, pairs=(("T1", "FLAIR"),), mode="2D"))
    assert [(p.case, p.z) for p in pairs] == [("mrbrains18_1", 1), ("mrbrains18_1", 3),
                                             ("mrbrains13_1", 0), ("mrbrains13_1", 1), ("mrbrains13_1", 2)]
    both = list(brain_pairs(cases[:1]))
    assert [(p.moving_modality, p.z) for p in both] == [("T1", 1), ("T1", 3), ("IR", 1), ("IR", 3)]


def test_brain_slices_threshold(tmp_path):
    data = np.zeros(SHAPE, np.uint8)
    data[0, 0, 0] = 5
    data[:4, :4, 2] = 3
    path = _save(tmp_path / "segm.nii.gz", data)
    assert brain_slices(path) == [0, 2]
    assert brain_slices(path, min_voxels=2) == [2]


def test_pair_errors(tmp_path):
    make18(tmp_path, "1")
    cases = mrbrains18_cases(tmp_path)
    with pytest.raises(ValueError, match="mode must be '2d' or '3d'"):
        list(brain_pairs(cases, mode="4d"))
    with pytest.raises(ValueError, match="mrbrains18_1 has no 'T2' image"):
        list(brain_pairs(cases, pairs=(("T2", "FLAIR"),), mode="3d"))


def test_unified_labels(caplog):
    assert {v: BRAIN_LABELS[v] for v in PAPER_STRUCTURES.values()} == {
        8: "brain stem", 7: "cerebellum", 3: "white matter"}
    values13 = np.arange(9).reshape(3, 3)
    np.testing.assert_array_equal(unify_labels(values13, "MRBrainS13"), values13)
    values18 = np.arange(11)
    out = unify_labels(values18, "MRBrainS18")
    np.testing.assert_array_equal(out, values18)
    assert out.dtype == np.int32
    assert BRAIN_LABELS[9] == "infarction" and BRAIN_LABELS[10] == "other"
    with caplog.at_level(logging.WARNING):
        kept = unify_labels(np.array([0, 9, 3]), "MRBrainS13", source="x.nii")
    np.testing.assert_array_equal(kept, [0, 9, 3])
    assert "x.nii: label values [9] are not in the MRBrainS13 table" in caplog.text
    with pytest.raises(ValueError, match="unknown release"):
        unify_labels(values13, "MRBrainS19")
