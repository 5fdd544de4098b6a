"""NIfTI headers whose geometry nibabel and ITK read differently: qform and sform that disagree, no
qform or sform at all (both codes 0), an sform whose voxel sizes are not pixdim's. firereg used to
take nibabel's reading while ANTs, re-applying the written ``affine.mat`` + ``warp.nii.gz``, took
ITK's, and got another image (a mean difference of 0.2-0.3, against 0.0003 for an ordinary file).
Now firereg reads the geometry as ITK does (``itk::NiftiImageIO``, ITK 5.4), says so in one warning,
and refuses a sheared sform, which ITK reads in one of three ways depending on how it was built.
"""

import logging

import ants
import nibabel as nib
import numpy as np
import pytest
from reliability_helpers import assert_one_line_error, leftovers, rotation, run_cli

from firereg.data.io import read_image

SHAPE = (20, 22, 18)


def _affine(rotation, spacing, origin) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = rotation @ np.diag(spacing)
    m[:3, 3] = origin
    return m


QFORM = _affine(rotation(2, 8.0), (2.0, 2.0, 2.0), (-19.0, -22.0, -17.0))
OTHER = _affine(rotation(0, -12.0) @ rotation(2, 5.0), (2.0, 2.0, 2.0), (-9.0, -30.0, -12.0))
SCALED = _affine(rotation(2, 8.0), (2.3, 2.0, 1.8), (-19.0, -22.0, -17.0))
SHEARED = OTHER.copy()
SHEARED[0, 1] += 0.6

# name: (qform, qform_code, sform, sform_code), pixdim always 2 mm
HEADERS = {
    "ordinary (qform = sform)": (QFORM, 1, QFORM, 1),
    "qform and sform disagree, sform code 2": (QFORM, 1, OTHER, 2),
    "qform and sform disagree, sform code 4 (MNI)": (QFORM, 2, OTHER, 4),
    "qform and sform disagree, sform code 1": (QFORM, 1, OTHER, 1),
    "qform_code and sform_code 0": (QFORM, 0, OTHER, 0),
    "sform voxel sizes not pixdim's": (None, 0, SCALED, 1),
}
DISAGREE = {name for name in HEADERS if name not in ("ordinary (qform = sform)",
                                                     "qform and sform disagree, sform code 1")}


def _phantom(affine) -> np.ndarray:
    """Two smooth ellipsoids around the grid's centre, zero near its faces."""
    idx = np.stack(np.meshgrid(*(np.arange(s) for s in SHAPE), indexing="ij"), -1).astype(float)
    local = (idx - (np.array(SHAPE) - 1) / 2) * 2.0  # mm from the centre, along the voxel axes
    r = np.sqrt(((local / [11.0, 12.0, 9.0]) ** 2).sum(-1))
    inner = np.sqrt((((local - [3.0, -2.0, 2.0]) / [4.0, 4.0, 3.5]) ** 2).sum(-1))
    return (100 / (1 + np.exp((r - 1) * 12)) + 60 / (1 + np.exp((inner - 1) * 8))).astype(np.float32)


def _write(path, name, data=None):
    qform, qcode, sform, scode = HEADERS[name] if isinstance(name, str) else name
    img = nib.Nifti1Image(_phantom(QFORM) if data is None else data, None)
    img.header.set_zooms((2.0, 2.0, 2.0))
    img.set_qform(qform, code=qcode) if qform is not None else img.set_qform(None, code=0)
    img.set_sform(sform, code=scode)
    nib.save(img, str(path))
    return path


def _ants_affine(path) -> np.ndarray:
    """The voxel -> world (RAS) affine ANTs reads (ITK's origin, spacing and direction, in LPS)."""
    image = ants.image_read(str(path))
    m = np.eye(4)
    m[:3, :3] = np.asarray(image.direction) @ np.diag(image.spacing)
    m[:3, 3] = image.origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ m


@pytest.mark.parametrize("name", list(HEADERS))
def test_firereg_reads_the_geometry_itk_reads(tmp_path, caplog, name):
    path = _write(tmp_path / "image.nii.gz", name)
    with caplog.at_level(logging.WARNING, logger="firereg.data.io"):
        ours = read_image(path).affine
    itk = _ants_affine(path)
    np.testing.assert_allclose(ours, itk, atol=1e-4)
    disagrees = not np.allclose(nib.load(path).affine, itk, atol=1e-3)
    assert disagrees == (name in DISAGREE)  # the cases where nibabel alone would be wrong
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if disagrees:
        assert len(warnings) == 1 and str(path) in warnings[0] and "as ITK and ANTs read it" in warnings[0]
    else:
        assert warnings == []


@pytest.mark.parametrize("which", ["moving", "fixed"])
@pytest.mark.parametrize("name", list(HEADERS))
def test_ants_reapplies_the_written_transforms_to_the_same_result(tmp_path, capsys, models, name,
                                                                  which):
    """``firereg register`` (a perturbed 3D model, so that the transforms are not the identity)
    with the header on the moving or the fixed image; ANTs applies the written transforms to the
    original files and gets firereg's ``warped.nii.gz`` (as for an ordinary header)."""
    other = _affine(rotation(1, 6.0), (2.1, 1.9, 2.2), (-14.0, -25.0, -20.0))
    images = {which: _write(tmp_path / f"{which}.nii.gz", name),
              ({"moving", "fixed"} - {which}).pop(): _write(tmp_path / "other.nii.gz",
                                                            (other, 1, other, 1))}
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "register", "--moving", images["moving"], "--fixed", images["fixed"],
                           "--model", models["3d_perturbed"], "--out", out, "--device", "cpu",
                           "--spacing", "2.0")
    assert code == 0, err
    warped = nib.load(out / "warped.nii.gz")
    np.testing.assert_allclose(warped.affine, _ants_affine(images["fixed"]), atol=1e-4)
    ours = warped.get_fdata()
    by_ants = ants.apply_transforms(ants.image_read(str(images["fixed"])),
                                    ants.image_read(str(images["moving"])),
                                    [str(out / "warp.nii.gz"), str(out / "affine.mat")],
                                    interpolator="linear").numpy()
    assert ours.std() > 10
    assert np.abs(ours - by_ants).mean() < 1e-3  # of values up to 160 (nibabel's reading: 3 to 12)


@pytest.mark.parametrize("which", ["moving", "fixed"])
@pytest.mark.parametrize("qcode", [1, 0])
def test_a_sheared_sform_is_refused_in_one_line(tmp_path, capsys, models, which, qcode):
    """ITK (ITK 5.4) reads the qform instead of a sheared sform, or orthogonalizes it (when built or
    run with ``ITK_NIFTI_SFORM_PERMISSIVE``), or refuses the file when there is no qform; nibabel
    reads the shear. No reading agrees with ANTs for sure: refused, nothing written."""
    header = (QFORM if qcode else None, qcode, SHEARED, 2)
    images = {"moving": tmp_path / "moving.nii.gz", "fixed": tmp_path / "fixed.nii.gz"}
    _write(images[which], header)
    _write(images[({"moving", "fixed"} - {which}).pop()], (QFORM, 1, QFORM, 1))
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "register", "--moving", images["moving"], "--fixed", images["fixed"],
                           "--model", models["3d"], "--out", out, "--device", "cpu", "--spacing", "2.0")
    assert_one_line_error(code, err, "register", f"{images[which]}: its sform (code 2) is sheared",
                          "ITK and ANTs read such a header differently")
    assert leftovers(out) == []
