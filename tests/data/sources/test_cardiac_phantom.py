"""The synthetic cardiac cine phantom: anatomy, motion, image formation and the ACDC layout it writes."""

import dataclasses
import math

import nibabel as nib
import numpy as np
import pytest

from firereg.data.io import read_image, read_labels
from firereg.data.records import CARDIAC_LABELS, CineCase
from firereg.data.sources.cardiac_phantom import (
    PhantomConfig,
    contraction_curve,
    es_fraction_for_heart_rate,
    generate_cine,
    subject_seed,
    write_acdc_phantom,
)

# Small but anatomically complete: 72 x 72 at 2.7 mm (194 mm FOV), 6 slices 13 mm apart, 20 phases.
SMALL = PhantomConfig(size=(72, 72), pixel_spacing_mm=2.7, num_slices=6, slice_spacing_mm=13.0,
                      num_phases=20, supersample=2, through_plane_samples=2)
LV, MYO, RV = 3, 2, 1


@pytest.fixture(scope="module")
def phantom():
    return generate_cine(SMALL, seed=0)


@pytest.fixture(scope="module")
def clean():
    """The same subject without noise (the noise has its own random stream)."""
    return generate_cine(dataclasses.replace(SMALL, noise=0.0), seed=0)


def _mid_slices(labels, es):
    """Slices with LV at ED and ES, away from the base and the apex."""
    present = [k for k in range(labels.shape[2])
               if (labels[:, :, k, 0] == LV).sum() > 40 and (labels[:, :, k, es] == LV).sum() > 20]
    assert len(present) >= 3, present
    return present[1:-1]


def _four_neighbours(mask):
    """For each voxel of a 2D mask, the 4-neighbour values stacked on axis 0 (edges padded)."""
    p = np.pad(mask, 1, mode="edge")
    return np.stack([p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]])


def test_shapes_types_and_labels_are_acdcs(phantom):
    cine, labels, ed, es, meta = phantom
    X, Y = SMALL.size
    assert cine.data.shape == (X, Y, SMALL.num_slices, SMALL.num_phases)
    assert cine.data.dtype == np.float32 and cine.ndim == 3 and cine.is_series
    assert labels.shape == cine.data.shape and np.issubdtype(labels.dtype, np.integer)
    assert set(np.unique(labels).tolist()) == {0, 1, 2, 3}
    assert meta["label_names"] == CARDIAC_LABELS
    assert meta["synthetic"] is True
    assert ed == 0
    # every frame is labelled, with all three structures somewhere in the stack
    for t in range(SMALL.num_phases):
        assert {1, 2, 3} <= set(np.unique(labels[..., t]).tolist()), t
    np.testing.assert_allclose(cine.spacing, (2.7, 2.7, 13.0), rtol=1e-9)


def test_volume_curve_peaks_at_ed_and_bottoms_at_the_marked_es(phantom):
    _, labels, ed, es, meta = phantom
    T = SMALL.num_phases
    lv = (labels == LV).sum(axis=(0, 1, 2))
    assert int(np.argmax(lv)) == ed == 0
    assert int(np.argmin(lv)) == es
    assert lv[es] < lv[es - 1] and lv[es] < lv[es + 1]
    assert 0.25 <= es / T <= 0.45
    # ejection fraction of a normal heart, and the reported volumes are the label volumes
    ef = 1 - lv[es] / lv[0]
    assert 0.5 <= ef <= 0.75
    voxel_ml = 2.7 * 2.7 * 13.0 / 1000
    np.testing.assert_allclose(meta["lv_volume_ml"], lv * voxel_ml)
    assert meta["lv_ef"] == pytest.approx(ef)
    # systole is monotone; diastole refills: rapid filling, then an atrial kick at the end
    assert np.all(np.diff(lv[: es + 1]) <= 0)
    stroke = lv[0] - lv[es]
    assert lv[min(es + 6, T - 1)] - lv[es] > 0.5 * stroke  # most filling is early
    assert lv[T - 1] - lv[round(0.8 * T)] > 0.05 * stroke  # the atrial kick
    # the RV contracts too
    rv = (labels == RV).sum(axis=(0, 1, 2))
    assert rv[es] < 0.75 * rv[0]


def test_cavity_shrinks_and_the_wall_thickens_in_mid_slices(phantom):
    _, labels, ed, es, _ = phantom
    for k in _mid_slices(labels, es):
        a_lv = [(labels[:, :, k, t] == LV).sum() for t in (ed, es)]
        a_myo = [(labels[:, :, k, t] == MYO).sum() for t in (ed, es)]
        shrink = 1 - a_lv[1] / a_lv[0]
        # radius -30..40 % -> area -51..64 %, a little less in a fixed slice (the base descends)
        assert 0.45 <= shrink <= 0.68, (k, shrink)
        # myocardial area roughly conserved (x L_ED / L_ES for the longitudinal shortening)
        assert 0.95 <= a_myo[1] / a_myo[0] <= 1.45, (k, a_myo)
        # thickness = area / mean circumference, with circle-equivalent radii
        thick = []
        for lv_area, myo_area in zip(a_lv, a_myo, strict=True):
            r_endo = math.sqrt(lv_area / math.pi)
            r_epi = math.sqrt((lv_area + myo_area) / math.pi)
            thick.append(myo_area / (math.pi * (r_endo + r_epi)))
        assert thick[1] > 1.3 * thick[0], (k, thick)


def test_lv_shrinks_toward_the_apex_and_the_rv_ends_before_it():
    # a stack long enough to pass the apex: 12 slices 8 mm apart
    config = dataclasses.replace(SMALL, num_slices=12, slice_spacing_mm=8.0, supersample=1,
                                 through_plane_samples=1, noise=0.0)
    labels = generate_cine(config, seed=0).labels
    for t in (0, 7):
        lv_area = [int((labels[:, :, k, t] == LV).sum()) for k in range(12)]
        with_lv = [k for k in range(12) if lv_area[k] > 0]
        # base (slice 0) to apex: the cavity shrinks slice by slice, then ends
        assert all(lv_area[k] > lv_area[k + 1] for k in with_lv[1:-1]), lv_area
        heart = [k for k in range(12) if (labels[:, :, k, t] >= MYO).any()]
        with_rv = [k for k in range(12) if (labels[:, :, k, t] == RV).any()]
        assert max(heart) < 11  # the apex is inside the stack ...
        assert with_rv[0] == with_lv[0] and max(with_rv) < max(with_lv) <= max(heart)  # the RV ends first


def test_myocardium_surrounds_the_lv_and_the_rv_touches_the_myocardium(phantom):
    _, labels, _, _, _ = phantom
    touches = 0
    for t in range(SMALL.num_phases):
        for k in range(SMALL.num_slices):
            lab = labels[:, :, k, t]
            nb = _four_neighbours(lab)
            lv = lab == LV
            assert np.isin(nb[:, lv], (LV, MYO)).all(), (k, t)
            rv = lab == RV
            assert not (nb[:, rv] == LV).any(), (k, t)  # the septum separates the ventricles
            if rv.any():
                assert (nb[:, rv] == MYO).any(), (k, t)
                touches += 1
    assert touches > 0


def test_blood_is_bright_and_myocardium_dark(phantom, clean):
    for result in (phantom, clean):
        cine, labels, _, es, _ = result
        for t in (0, es):
            img, lab = cine.data[..., t], labels[..., t]
            lv, myo, rv = (img[lab == v].mean() for v in (LV, MYO, RV))
            assert lv > 2.0 * myo and rv > 2.0 * myo
            assert lv > np.median(img)  # the blood is among the brightest things in the image


def test_noise_is_rician_and_the_bias_field_is_smooth_and_multiplicative(phantom, clean):
    noisy = phantom.cine.data
    air = clean.cine.data == 0.0  # outside the body: no signal before noise and bias
    assert air.sum() > 500
    sigma = SMALL.noise
    # Rician at zero signal = Rayleigh: mean sigma * sqrt(pi / 2), std sigma * sqrt(2 - pi / 2); > 0
    assert noisy[air].std() > 0
    assert noisy[air].mean() == pytest.approx(sigma * math.sqrt(math.pi / 2), rel=0.1)
    assert noisy[air].std() == pytest.approx(sigma * math.sqrt(2 - math.pi / 2), rel=0.1)
    assert noisy.min() >= 0.0  # a magnitude image
    # the same heart with and without noise
    np.testing.assert_array_equal(phantom.labels, clean.labels)

    flat = generate_cine(dataclasses.replace(SMALL, noise=0.0, bias_strength=0.0), seed=0)
    bias = clean.meta["bias_field"]
    assert bias.shape == noisy.shape[:3]
    signal = flat.cine.data > 0.05
    np.testing.assert_allclose(clean.cine.data[signal], (flat.cine.data * bias[..., None])[signal],
                               rtol=1e-5)
    assert bias.max() / bias.min() > 1.2  # it varies ...
    # ... smoothly: < 2 % between neighbouring voxels, with second differences far below the first
    for axis in (0, 1):
        first = np.abs(np.diff(bias, axis=axis)).max()
        assert first < 0.02 * bias.mean()
        assert np.abs(np.diff(bias, n=2, axis=axis)).max() < 0.1 * first
    np.testing.assert_allclose(flat.meta["bias_field"], 1.0)


def test_subjects_and_seeds_differ_and_repeat(phantom):
    again = generate_cine(SMALL, seed=0)
    np.testing.assert_array_equal(again.cine.data, phantom.cine.data)
    np.testing.assert_array_equal(again.labels, phantom.labels)
    np.testing.assert_array_equal(again.cine.affine, phantom.cine.affine)
    other = generate_cine(SMALL, seed=1)
    assert not np.array_equal(other.labels, phantom.labels)
    assert not np.allclose(other.cine.affine, phantom.cine.affine)
    assert other.meta["anatomy"] != phantom.meta["anatomy"]


def test_contraction_curve_and_es_timing():
    T, es = 30, 11
    c = contraction_curve(T, es, rr_s=0.85)
    assert c[0] == 0.0 and c[es] == pytest.approx(1.0) and np.all((c >= 0) & (c <= 1))
    assert int(np.argmax(c)) == es and np.all(c[1:] > 0)
    assert np.all(np.diff(c[: es + 1]) > 0) and np.all(np.diff(c[es:]) < 0)
    assert es_fraction_for_heart_rate(60) == pytest.approx(0.361, abs=0.002)
    assert es_fraction_for_heart_rate(60) < es_fraction_for_heart_rate(75) < 0.45
    fixed = generate_cine(dataclasses.replace(SMALL, es_fraction=0.3, noise=0.0, supersample=1,
                                              through_plane_samples=1), seed=2)
    assert fixed.es == 6
    assert int(np.argmin((fixed.labels == LV).sum(axis=(0, 1, 2)))) == 6


@pytest.mark.parametrize(("change", "field"), [
    ({"num_phases": 10}, "num_phases"),
    ({"num_phases": 50}, "num_phases"),
    ({"noise": -0.01}, "noise"),
    ({"bias_strength": 2.0}, "bias_strength"),
    ({"lv_radius_mm": (30.0, 20.0)}, "lv_radius_mm"),
    ({"radial_shortening": (0.3,)}, "radial_shortening"),
    ({"size": (40, 40)}, "size"),
    ({"slice_spacing_mm": 0.0}, "slice_spacing_mm"),
    ({"es_fraction": 0.9}, "es_fraction"),
])
def test_bad_config_names_the_field(change, field):
    with pytest.raises(ValueError, match=rf"PhantomConfig\.{field}"):
        PhantomConfig(**change)


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="n_subjects"):
        write_acdc_phantom(tmp_path, 0, SMALL)
    with pytest.raises(ValueError, match="seed"):
        generate_cine(SMALL, seed=-1)
    with pytest.raises(ValueError, match="PhantomConfig"):
        generate_cine({"num_phases": 30})


def _info(path):
    pairs = [line.split(": ", 1) for line in path.read_text().splitlines()]
    return {k: v for k, v in pairs}, [k for k, _ in pairs]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("acdc")
    return root, write_acdc_phantom(root, 2, SMALL, seed=7)


def test_written_layout_is_acdcs(tree):
    root, cases = tree
    assert sorted(p.name for p in root.iterdir()) == ["README.txt", "training"]
    readme = (root / "README.txt").read_text()
    assert "SYNTHETIC" in readme and "Seed: 7" in readme and "1-based" in readme
    assert sorted(p.name for p in (root / "training").iterdir()) == ["patient001", "patient002"]
    for index, case in enumerate(cases, start=1):
        name = f"patient{index:03d}"
        folder = root / "training" / name
        assert isinstance(case, CineCase) and case.name == name
        info, keys = _info(folder / "Info.cfg")
        assert keys == ["ED", "ES", "Group", "Height", "NbFrame", "Weight"]
        assert info["ED"] == "1" and info["Group"] == "SYNTHETIC" and info["NbFrame"] == "20"
        assert 140 < float(info["Height"]) < 200 and 40 < float(info["Weight"]) < 130
        es_file = int(info["ES"])
        # records are 0-based, files 1-based
        assert case.ed == 0 and case.es == es_file - 1
        frames = {f"{name}_frame01.nii.gz", f"{name}_frame{es_file:02d}.nii.gz"}
        expected = {"Info.cfg", f"{name}_4d.nii.gz"} | frames | {f.replace(".nii", "_gt.nii") for f in frames}
        assert sorted(p.name for p in folder.iterdir()) == sorted(expected)
        assert case.cine == folder / f"{name}_4d.nii.gz"
        assert case.frames == {0: folder / f"{name}_frame01.nii.gz",
                               case.es: folder / f"{name}_frame{es_file:02d}.nii.gz"}
        assert case.frame_labels == {t: p.with_name(p.name.replace(".nii", "_gt.nii"))
                                     for t, p in case.frames.items()}
        assert case.meta["synthetic"] is True and case.meta["seed"] == subject_seed(7, index)


def test_written_files_agree_with_each_other_and_with_the_generator(tree):
    _, cases = tree
    for index, case in enumerate(cases, start=1):
        cine = read_image(case.cine, allow_series=True)
        fresh = generate_cine(SMALL, subject_seed(7, index))
        assert fresh.es == case.es
        np.testing.assert_array_equal(cine.data, fresh.cine.data)
        headers = [nib.load(str(p)) for p in (case.cine, *case.frames.values(), *case.frame_labels.values())]
        for img in headers:
            np.testing.assert_array_equal(img.affine, headers[0].affine)
            assert img.header["sform_code"] == 1 and img.header["qform_code"] == 1
        np.testing.assert_allclose(headers[0].affine, fresh.cine.affine, atol=1e-4)
        # an oblique short-axis orientation with anisotropic 2.7 x 2.7 x 13 mm voxels
        rotation = headers[0].affine[:3, :3] / np.linalg.norm(headers[0].affine[:3, :3], axis=0)
        assert np.abs(rotation).max() < 0.95
        np.testing.assert_allclose(headers[0].header.get_zooms()[:3], (2.7, 2.7, 13.0), rtol=1e-5)
        # the 4D file: (X, Y, Z, T) with the frame duration in pixdim[4]
        assert headers[0].shape == (72, 72, 6, 20)
        dt = float(headers[0].header["pixdim"][4])
        assert dt > 0 and dt == pytest.approx(case.meta["frame_duration_s"], rel=1e-5)
        assert 60 / dt / 20 == pytest.approx(case.meta["heart_rate_bpm"], rel=1e-4)
        for t in (case.ed, case.es):
            frame = read_image(case.frames[t])
            np.testing.assert_array_equal(frame.data, cine.data[..., t])
            gt = read_labels(case.frame_labels[t])
            np.testing.assert_array_equal(gt.data, fresh.labels[..., t])
            assert set(np.unique(gt.data).tolist()) == {0, 1, 2, 3}


def test_same_seed_gives_identical_files_another_seed_different(tree, tmp_path):
    root, _ = tree
    write_acdc_phantom(tmp_path / "same", 2, SMALL, seed=7)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "same") for p in (tmp_path / "same").rglob("*")
                           if p.is_file())
    for rel in files:
        assert (root / rel).read_bytes() == (tmp_path / "same" / rel).read_bytes(), rel
    # subjects of one tree differ, and another seed gives another tree
    a = nib.load(str(root / "training/patient001/patient001_4d.nii.gz")).get_fdata()
    b = nib.load(str(root / "training/patient002/patient002_4d.nii.gz")).get_fdata()
    assert not np.array_equal(a, b)
    write_acdc_phantom(tmp_path / "other", 1, SMALL, seed=8)
    c = nib.load(str(tmp_path / "other/training/patient001/patient001_4d.nii.gz")).get_fdata()
    assert not np.array_equal(a, c)


def test_existing_output_is_not_overwritten_silently(tree, tmp_path):
    root, _ = tree
    with pytest.raises(ValueError, match="overwrite"):
        write_acdc_phantom(root, 1, SMALL, seed=7)
    # with overwrite, stale frame files of another ES are removed
    out = tmp_path / "tree"
    write_acdc_phantom(out, 1, SMALL, seed=7)
    stale = out / "training/patient001/patient001_frame15_gt.nii.gz"
    stale.write_bytes(b"old")
    cases = write_acdc_phantom(out, 1, dataclasses.replace(SMALL, es_fraction=0.3), seed=7, overwrite=True)
    names = sorted(p.name for p in (out / "training/patient001").iterdir())
    assert not stale.exists() and cases[0].es == 6
    assert "patient001_frame07_gt.nii.gz" in names and len(names) == 6
