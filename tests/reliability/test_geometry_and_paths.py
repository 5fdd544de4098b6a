"""Inputs that are unusual but valid: images stored in other orientations, and non-ASCII paths.
Both must work, and give the result the plain case gives."""

import json

import nibabel as nib
import numpy as np
import pytest
import scipy.io
from reliability_helpers import OUTPUTS, run_cli, save, smooth_volume

ORIENTATIONS = {
    # [output axis, flip] for each stored axis (nibabel's orientation transform)
    "LPS (x and y flipped)": np.array([[0, -1], [1, -1], [2, 1]]),
    "axes permuted and flipped": np.array([[1, -1], [2, 1], [0, -1]]),
}


def _outputs(out):
    mat = "AffineTransform_double_3_3"
    return {"warped": nib.load(out / "warped.nii.gz"), "warp": nib.load(out / "warp.nii.gz"),
            "inverse_warp": nib.load(out / "inverse_warp.nii.gz"),
            "affine": scipy.io.loadmat(out / "affine.mat")[mat],
            "inverse_affine": scipy.io.loadmat(out / "inverse_affine.mat")[mat]}


def _register(model, moving, fixed, out):
    from firereg.cli.main import main

    assert main(["register", "--moving", str(moving), "--fixed", str(fixed), "--model", str(model),
                 "--out", str(out), "--device", "cpu", "--spacing", "2.0"]) == 0
    return _outputs(out)


@pytest.fixture(scope="module")
def plain(tmp_path_factory, models):
    """A moving and a fixed image (different grids) and their registration, both stored RAS."""
    root = tmp_path_factory.mktemp("plain")
    moving_affine = np.array([[2.0, 0, 0, -21], [0, 2.0, 0, -20], [0, 0, 2.5, -17], [0, 0, 0, 1]])
    moving = save(root / "moving.nii.gz", smooth_volume(11, (20, 21, 16)), moving_affine)
    fixed = save(root / "fixed.nii.gz", smooth_volume(12))
    result = _register(models["3d_perturbed"], moving, fixed, root / "out")
    return {"moving": moving, "fixed": fixed, "result": result}


def _reoriented(path, ornt, target):
    """The same world image, its voxels stored in another order (the affine adjusted to match)."""
    nib.save(nib.load(path).as_reoriented(ornt), target)
    return target


@pytest.mark.parametrize("which", ["fixed", "moving"])
@pytest.mark.parametrize("orientation", list(ORIENTATIONS))
def test_an_image_stored_in_another_orientation_gives_the_same_world_result(
        tmp_path, models, plain, which, orientation):
    ornt = ORIENTATIONS[orientation]
    images = {"moving": plain["moving"], "fixed": plain["fixed"]}
    images[which] = _reoriented(images[which], ornt, tmp_path / f"{which}_reoriented.nii.gz")
    assert not np.allclose(nib.load(images[which]).affine, nib.load(plain[which]).affine)
    got = _register(models["3d_perturbed"], images["moving"], images["fixed"], tmp_path / "out")
    want = plain["result"]
    # the physical transforms do not depend on how either image is stored
    np.testing.assert_allclose(got["affine"], want["affine"], atol=1e-5)
    np.testing.assert_allclose(got["inverse_affine"], want["inverse_affine"], atol=1e-5)
    assert np.abs(want["warp"].get_fdata()).max() > 0.1  # the model does move things
    # files on the reoriented image's grid hold the same values, stored in its voxel order
    same = {"moving": ("inverse_warp",), "fixed": ("warped", "warp")}[which]
    for name in ("warped", "warp", "inverse_warp"):
        expected = want[name].get_fdata()
        if name in same:
            expected = nib.orientations.apply_orientation(expected, ornt)
            np.testing.assert_allclose(got[name].affine, nib.load(images[which]).affine, atol=1e-5)
        scale = 100.0 if name == "warped" else 1.0
        np.testing.assert_allclose(got[name].get_fdata(), expected, atol=1e-4 * scale, err_msg=name)


def test_non_ascii_paths_work_everywhere(tmp_path, capsys, models, pair):
    """Inputs, model, labels and outputs in folders and files named with accents, CJK and spaces."""
    import shutil

    folder = tmp_path / "données_脑"
    folder.mkdir()
    moving = folder / "moving ü.nii.gz"
    fixed = folder / "fixé 固定.nii.gz"
    shutil.copy(pair["moving"], moving)
    shutil.copy(pair["fixed"], fixed)
    labels = save(folder / "étiquettes.nii.gz", (smooth_volume(1) > 50).astype(np.uint8))
    model = shutil.copytree(models["3d"], folder / "modèle")
    out = folder / "sortie résultat"
    code, stdout, err = run_cli(capsys, "register", "--moving", moving, "--fixed", fixed,
                                "--moving-labels", labels, "--model", model, "--out", out,
                                "--device", "cpu", "--spacing", "2.0")
    assert code == 0, err
    assert str(out) in stdout
    assert {p.name for p in out.iterdir()} == OUTPUTS | {"warped_labels.nii.gz"}
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["moving"] == str(moving)
    applied = folder / "appliqué ü.nii.gz"
    code, stdout, err = run_cli(capsys, "apply", "--transforms", out, "--input", labels,
                                "--reference", fixed, "--out", applied, "--labels")
    assert code == 0, err
    np.testing.assert_array_equal(nib.load(applied).get_fdata(),
                                  nib.load(out / "warped_labels.nii.gz").get_fdata())
