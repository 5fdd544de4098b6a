"""ACDC adapter on small mock trees of the challenge's exact layout."""

import shutil
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from firereg.data.records import CineCase
from firereg.data.sources.acdc import (
    ACDC_GROUPS,
    ACDCError,
    acdc_cases,
    acdc_test_pair,
    acdc_training_pairs,
    paper_split,
    read_info_cfg,
)
from firereg.data.sources.splits import apply_split

SHAPE = (8, 8, 4)
FRAMES = 5


def _template(tmp_path: Path, shape, suffix: str) -> Path:
    """One NIfTI file per (shape, suffix), copied wherever a file of that kind is needed."""
    folder = tmp_path / "_templates"
    folder.mkdir(exist_ok=True)
    path = folder / ("x".join(map(str, shape)) + suffix)
    if not path.exists():
        nib.save(nib.Nifti1Image(np.zeros(shape, np.uint8), np.diag([1.5, 1.5, 8.0, 1.0])), str(path))
    return path


def make_patient(base: Path, number: int, *, ed=1, es=3, frames=FRAMES, group="DCM", suffix=".nii.gz",
                 cfg: str | None = None, gt=True, skip=(), frame_shape=SHAPE) -> Path:
    """``base/patientNNN`` as ACDC ships it: Info.cfg, the 4D cine, ED/ES frames and their labels."""
    name = f"patient{number:03d}"
    folder = base / name
    folder.mkdir(parents=True)
    if cfg is None:
        cfg = f"ED: {ed}\nES: {es}\nGroup: {group}\nHeight: 184.0\nNbFrame: {frames}\nWeight: 95.0\n"
    (folder / "Info.cfg").write_text(cfg)
    tmp = next(p for p in (base, *base.parents) if p.name == "root").parent  # tests build under tmp/root
    files = {f"{name}_4d": _template(tmp, (*SHAPE, frames), suffix)}
    for t in (ed, es):
        files[f"{name}_frame{t:02d}"] = _template(tmp, frame_shape, suffix)
        if gt:
            files[f"{name}_frame{t:02d}_gt"] = _template(tmp, frame_shape, suffix)
    for stem, source in files.items():
        if stem not in skip:
            shutil.copyfile(source, folder / f"{stem}{suffix}")
    return folder


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "root"
    path.mkdir()
    return path


def test_training_layout_gives_zero_based_ed_and_es(root):
    make_patient(root / "training", 1, ed=1, es=3)
    make_patient(root / "training", 2, ed=2, es=5, group="HCM")
    cases = acdc_cases(root)
    assert [c.name for c in cases] == ["patient001", "patient002"]
    first, second = cases
    assert isinstance(first, CineCase)
    assert (first.ed, first.es) == (0, 2) and (second.ed, second.es) == (1, 4)
    folder = root / "training" / "patient001"
    assert first.cine == folder / "patient001_4d.nii.gz"
    assert first.frames == {0: folder / "patient001_frame01.nii.gz", 2: folder / "patient001_frame03.nii.gz"}
    assert first.frame_labels == {0: folder / "patient001_frame01_gt.nii.gz",
                                  2: folder / "patient001_frame03_gt.nii.gz"}
    assert first.meta["group"] == "DCM" and second.meta["group"] == "HCM"
    assert first.meta["height"] == 184.0 and first.meta["weight"] == 95.0
    assert first.meta["num_frames"] == FRAMES and first.meta["shape"] == SHAPE
    assert first.meta["spacing"] == pytest.approx((1.5, 1.5, 8.0))
    assert first.meta["subset"] == "training" and first.split is None


@pytest.mark.parametrize("where, point_at", [
    ("training", "."), ("testing", "."), ("database/training", "."), ("database/testing", "."),
    ("direct", "direct"), ("training", "training"), ("single", "single/patient101"),
])
def test_layout_variants_are_found(root, where, point_at):
    make_patient(root / where, 101)
    cases = acdc_cases(root / point_at)
    assert [c.name for c in cases] == ["patient101"]
    assert cases[0].meta["subset"] == ("testing" if where in ("testing", "database/testing", "direct",
                                                               "single") else "training")


def test_plain_nii_files_are_read(root):
    make_patient(root, 7, suffix=".nii", ed=2, es=4)
    (case,) = acdc_cases(root)
    assert case.cine.name == "patient007_4d.nii" and case.frames[1].name == "patient007_frame02.nii"
    assert case.frame_labels[3].name == "patient007_frame04_gt.nii"


def test_info_cfg_tolerates_whitespace_line_ends_and_missing_optional_keys(root):
    cfg = "\ufeff  ED :   2 \r\n\r\n# comment\nES=4\r\nsomething without a separator\n"
    make_patient(root, 3, ed=2, es=4, cfg=cfg)
    (case,) = acdc_cases(root)
    assert (case.ed, case.es) == (1, 3)
    assert case.meta["group"] is None and case.meta["height"] is None and case.meta["nb_frame"] is None
    assert read_info_cfg(root / "patient003" / "Info.cfg") == {"ED": "2", "ES": "4"}


def test_missing_info_cfg_key_is_named_with_the_file(root):
    make_patient(root, 1, cfg="ED: 1\nGroup: NOR\nNbFrame: 5\n")
    with pytest.raises(ACDCError, match=r"patient001/Info\.cfg: missing key 'ES'"):
        acdc_cases(root)


def test_missing_info_cfg_is_an_error(root):
    (make_patient(root, 1) / "Info.cfg").unlink()
    with pytest.raises(ACDCError, match=r"patient001: no Info\.cfg"):
        acdc_cases(root)


def test_ed_out_of_range_of_nbframe(root):
    make_patient(root, 1, cfg="ED: 31\nES: 3\nNbFrame: 30\n")
    with pytest.raises(ACDCError, match=r"Info\.cfg: ED = 31 is outside 1\.\.NbFrame = 30"):
        acdc_cases(root)


def test_es_beyond_the_frames_of_the_cine(root):
    make_patient(root, 1, cfg="ED: 1\nES: 9\n")
    with pytest.raises(ACDCError, match=r"ES = 9 is outside 1\.\.5, the frames of patient001_4d"):
        acdc_cases(root)


def test_frame_zero_is_refused_as_acdc_counts_from_one(root):
    make_patient(root, 1, cfg="ED: 0\nES: 3\nNbFrame: 5\n")
    with pytest.raises(ACDCError, match="ED = 0 is outside"):
        acdc_cases(root)


def test_missing_4d_file(root):
    make_patient(root, 1, skip=("patient001_4d",))
    with pytest.raises(ACDCError, match=r"patient001: no 4D cine file patient001_4d\.nii\.gz"):
        acdc_cases(root)


def test_missing_frame_file(root):
    make_patient(root, 1, ed=1, es=3, skip=("patient001_frame03",))
    with pytest.raises(ACDCError, match=r"no frame file patient001_frame03\.nii\.gz .*ES: 3"):
        acdc_cases(root)


def test_frame_file_of_another_shape(root):
    make_patient(root, 1, frame_shape=(8, 8, 3))
    with pytest.raises(ACDCError, match=r"frame01\.nii\.gz: shape \(8, 8, 3\) differs"):
        acdc_cases(root)


def test_folder_without_patients(root):
    (root / "training" / "notes").mkdir(parents=True)
    with pytest.raises(ACDCError, match="no ACDC patient folders found; expected patientNNN"):
        acdc_cases(root)


def test_non_strict_skips_a_broken_patient(root):
    make_patient(root, 1)
    make_patient(root, 2, skip=("patient002_4d",))
    assert [c.name for c in acdc_cases(root, strict=False)] == ["patient001"]


def test_subset_keeps_training_or_testing(root):
    make_patient(root / "training", 1)
    make_patient(root / "testing", 101)
    assert [c.name for c in acdc_cases(root)] == ["patient001", "patient101"]
    assert [c.name for c in acdc_cases(root, subset="training")] == ["patient001"]
    assert [c.name for c in acdc_cases(root, subset="testing")] == ["patient101"]


@pytest.mark.parametrize("ed, es", [(1, 3), (3, 5)])
def test_training_pairs_cover_every_phase_but_ed(root, ed, es):
    make_patient(root, 1, ed=ed, es=es)
    (case,) = acdc_cases(root)
    pairs = list(acdc_training_pairs(case))
    assert sorted(p.moving for p in pairs) == [t for t in range(FRAMES) if t != ed - 1]
    assert {p.fixed for p in pairs} == {ed - 1}
    assert all(p.cine == case.cine and p.fixed_labels == case.frame_labels[ed - 1] for p in pairs)
    es_pair = next(p for p in pairs if p.moving == es - 1)
    assert es_pair.moving_labels == case.frame_labels[es - 1] and es_pair.moving_file == case.frames[es - 1]
    assert all(p.moving_labels is None for p in pairs if p.moving != es - 1)


def test_test_pair_is_es_onto_ed_with_both_labels(root):
    make_patient(root, 1, ed=1, es=3)
    (case,) = acdc_cases(root)
    pair = acdc_test_pair(case)
    assert (pair.moving, pair.fixed) == (2, 0)
    folder = root / "patient001"
    assert pair.moving_labels == folder / "patient001_frame03_gt.nii.gz"
    assert pair.fixed_labels == folder / "patient001_frame01_gt.nii.gz"
    assert pair.moving_labels.is_file() and pair.fixed_labels.is_file()


def test_test_pair_needs_the_label_files(root):
    make_patient(root, 1, gt=False)
    (case,) = acdc_cases(root)
    assert case.frame_labels == {}
    with pytest.raises(ACDCError, match="no label map for ED"):
        acdc_test_pair(case)


@pytest.fixture
def hundred(tmp_path):
    """The 100 ACDC training patients: 20 per group, in ACDC's order, with plain .nii files."""
    base = tmp_path / "root" / "training"
    for number in range(1, 101):
        make_patient(base, number, group=ACDC_GROUPS[(number - 1) // 20], suffix=".nii", gt=False)
    return tmp_path / "root"


def test_paper_split_is_60_10_30_stratified_deterministic_and_disjoint(hundred):
    cases = acdc_cases(hundred, split="paper")
    assert len(cases) == 100
    sizes = Counter(c.split for c in cases)
    assert sizes == {"train": 60, "val": 10, "test": 30}
    parts = {s: {c.name for c in cases if c.split == s} for s in ("train", "val", "test")}
    assert sum(len(p) for p in parts.values()) == len(set().union(*parts.values()))  # disjoint
    assert set().union(*parts.values()) == {c.name for c in cases}
    per_group = Counter((c.meta["group"], c.split) for c in cases)
    assert all(per_group[(g, "train")] == 12 and per_group[(g, "val")] == 2 and per_group[(g, "test")] == 6
               for g in ACDC_GROUPS)
    again = paper_split(list(reversed(acdc_cases(hundred))))
    assert {c.name: c.split for c in again} == {c.name: c.split for c in cases}
    assert [c.name for c in again] == [c.name for c in reversed(cases)]


def test_split_given_as_a_mapping(root):
    for number in (1, 2, 3):
        make_patient(root, number)
    cases = acdc_cases(root, split={"patient001": "train", "patient003": "test"})
    assert [c.split for c in cases] == ["train", None, "test"]
    cases = acdc_cases(root, split={"train": ["patient002"], "val": ["patient001", "patient003"]})
    assert [c.split for c in cases] == ["val", "train", "val"]
    with pytest.raises(ValueError, match="not among the cases: patient009"):
        apply_split(cases, {"patient009": "train"})
    with pytest.raises(ValueError, match="unknown split name"):
        apply_split(cases, {"patient001": "training"})
    with pytest.raises(ACDCError, match="split must be"):
        acdc_cases(root, split="random")
