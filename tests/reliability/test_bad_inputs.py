"""Bad input files through the real commands (in-process ``firereg.cli.main.main``).

Every bad file gets one line on stderr naming it, exit status 2, no traceback, and nothing written:
``register`` and ``register-series`` create no output folder, ``apply`` no output file (nor a
temporary one beside it).
"""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from reliability_helpers import (
    AFFINE,
    OUTPUTS,
    SHAPE,
    assert_one_line_error,
    huge_header,
    leftovers,
    run_cli,
    save,
    smooth_volume,
    truncated,
    with_spacing,
    wrong_magic,
)


def _make(kind: str, folder: Path, good: Path) -> tuple[Path, tuple[str, ...]]:
    """A bad file of ``kind`` and the fragments its error line must hold."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "truncated .nii.gz":
        return truncated(folder / "trunc.nii.gz", good), ("trunc.nii.gz", "truncated")
    if kind == "wrong magic bytes":
        return wrong_magic(folder / "magic.nii.gz", good), ("magic.nii.gz", "not a readable nifti")
    if kind == "wrong magic, uncompressed":
        path = save(folder / "magic.nii", smooth_volume(0))
        body = bytearray(path.read_bytes())
        body[344:348] = b"ABCD"
        path.write_bytes(bytes(body))
        return path, ("magic.nii", "not a readable nifti")
    if kind == "empty file":
        (folder / "empty.nii.gz").write_bytes(b"")
        return folder / "empty.nii.gz", ("empty.nii.gz", "not a readable nifti")
    if kind == "text file":
        (folder / "notes.nii").write_text("not an image at all\n")
        return folder / "notes.nii", ("notes.nii", "not a readable nifti")
    if kind == "missing file":
        return folder / "missing.nii.gz", ("missing.nii.gz", "no such file")
    if kind == "a folder":
        (folder / "dir.nii.gz").mkdir()
        return folder / "dir.nii.gz", ("dir.nii.gz", "is a folder")
    if kind in ("zero spacing", "negative spacing", "NaN spacing", "infinite spacing"):
        value = {"zero": 0.0, "negative": -2.0, "NaN": np.nan, "infinite": np.inf}[kind.split()[0]]
        return with_spacing(folder / "spacing.nii", value), ("spacing.nii", "invalid voxel spacing")
    if kind == "1x1x1 image":
        return save(folder / "one.nii", np.ones((1, 1, 1), np.float32)), ("one.nii", "too small",
                                                                          "(1, 1, 1)")
    if kind == "5D image":
        return save(folder / "five.nii", np.ones((6, 6, 6, 2, 2), np.float32)), ("five.nii",
                                                                               "5 dimensions")
    if kind == "complex64":
        return save(folder / "cplx.nii", smooth_volume(0).astype(np.complex64)), ("cplx.nii",
                                                                                "complex")
    if kind == "complex128":
        return save(folder / "cplx.nii.gz", smooth_volume(0).astype(np.complex128)), ("cplx.nii.gz",
                                                                                   "complex")
    if kind == "all NaN":
        return save(folder / "nan.nii", np.full((8, 8, 8), np.nan, np.float32)), ("nan.nii",
                                                                                "no finite value")
    if kind == "singular affine":
        affine = AFFINE.copy()
        affine[:3, 2] = affine[:3, 1]  # two axes along the same direction
        return save(folder / "singular.nii", smooth_volume(0), affine), ("singular.nii", "singular")
    if kind == "NIfTI-2 header of 100000^3 voxels":
        return huge_header(folder / "huge.nii", (100000,) * 3, nifti2=True), (
            "huge.nii", "1,000,000,000,000,000 voxels", "crop or downsample")
    if kind == "NIfTI-1 .nii.gz header of 30000^3 voxels":
        return huge_header(folder / "huge.nii.gz", (30000,) * 3), (
            "huge.nii.gz", "27,000,000,000,000 voxels", "crop or downsample")
    if kind == "header of 300^3 voxels, 100 bytes of data":
        return huge_header(folder / "short.nii", (300,) * 3), ("short.nii", "truncated")
    raise AssertionError(kind)


BAD_FILES = ["truncated .nii.gz", "wrong magic bytes", "wrong magic, uncompressed", "empty file",
             "text file", "missing file", "a folder", "zero spacing", "negative spacing", "NaN spacing",
             "infinite spacing", "1x1x1 image", "5D image", "complex64", "complex128", "all NaN",
             "singular affine", "NIfTI-2 header of 100000^3 voxels",
             "NIfTI-1 .nii.gz header of 30000^3 voxels", "header of 300^3 voxels, 100 bytes of data"]
ROLES = ["register --moving", "register --fixed", "apply --input", "register-series --cine"]


@pytest.fixture(scope="module")
def transforms(tmp_path_factory, models, pair) -> Path:
    """A real ``firereg register`` output folder, for ``apply``."""
    from firereg.cli.main import main

    out = tmp_path_factory.mktemp("transforms") / "reg"
    assert main(["register", "--moving", str(pair["moving"]), "--fixed", str(pair["fixed"]),
                 "--model", str(models["3d"]), "--out", str(out), "--device", "cpu",
                 "--spacing", "2.0"]) == 0
    return out


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("kind", BAD_FILES)
def test_a_bad_file_gets_one_line_and_exit_2_and_writes_nothing(tmp_path, capsys, models, pair,
                                                                transforms, kind, role):
    bad, fragments = _make(kind, tmp_path / "in", pair["moving"])
    out = tmp_path / "out"
    command = role.split()[0]
    if role == "register --moving":
        argv = ["register", "--moving", bad, "--fixed", pair["fixed"], "--model", models["3d"]]
    elif role == "register --fixed":
        argv = ["register", "--moving", pair["moving"], "--fixed", bad, "--model", models["3d"]]
    elif role == "apply --input":
        out = tmp_path / "out" / "applied.nii.gz"
        out.parent.mkdir()
        argv = ["apply", "--transforms", transforms, "--input", bad, "--reference", pair["fixed"]]
    else:
        argv = ["register-series", "--cine", bad, "--model", models["2d"]]
    code, _, err = run_cli(capsys, *argv, "--out", out,
                           *(["--device", "cpu"] if command != "apply" else []))
    assert_one_line_error(code, err, command, *fragments)
    assert not out.exists()
    assert leftovers(tmp_path / "out") == []  # no temporary file either


def test_huge_headers_are_refused_before_allocating(tmp_path, capsys, models, pair):
    """100000^3 float32 voxels would be 4 PB: refused from the header, memory use unchanged."""
    import resource

    bad = huge_header(tmp_path / "huge.nii", (100000,) * 3, nifti2=True)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    code, _, err = run_cli(capsys, "register", "--moving", bad, "--fixed", pair["fixed"], "--model",
                           models["3d"], "--out", tmp_path / "out", "--device", "cpu")
    assert_one_line_error(code, err, "register", "more than the 536,870,912 this tool loads")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000


def test_a_model_grid_too_large_for_memory_is_refused(tmp_path, capsys, models, pair):
    """--spacing 0.001 mm would make a 40000 x 44000 x 36000 model grid: refused, not allocated."""
    code, _, err = run_cli(capsys, "register", "--moving", pair["moving"], "--fixed", pair["fixed"],
                           "--model", models["3d"], "--out", tmp_path / "out", "--device", "cpu",
                           "--spacing", "0.001")
    assert_one_line_error(code, err, "register", "model grid", "use a larger spacing")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("labels, fragments", [
    (np.full(SHAPE, 0.5, np.float32), ("labels.nii", "non-integer values")),
    (np.where(np.arange(np.prod(SHAPE)).reshape(SHAPE) % 7, 1.0, np.nan).astype(np.float32),
     ("labels.nii", "nan or infinite")),
    (np.ones((20, 22, 17), np.uint8), ("labels.nii", "grid does not match")),
], ids=["non-integer values", "NaN values", "on another grid"])
def test_a_bad_label_map_is_refused(tmp_path, capsys, models, pair, labels, fragments):
    save(tmp_path / "labels.nii", labels)
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "register", "--moving", pair["moving"], "--fixed", pair["fixed"],
                           "--moving-labels", tmp_path / "labels.nii", "--model", models["3d"],
                           "--out", out, "--device", "cpu", "--spacing", "2.0")
    assert_one_line_error(code, err, "register", *fragments)
    assert not out.exists()  # the grid check comes late, inside the lock: the folder is removed


def test_apply_refuses_a_non_integer_label_map(tmp_path, capsys, pair, transforms):
    save(tmp_path / "labels.nii.gz", np.full(SHAPE, 0.5, np.float32))
    code, _, err = run_cli(capsys, "apply", "--transforms", transforms, "--input",
                           tmp_path / "labels.nii.gz", "--reference", pair["fixed"], "--out",
                           tmp_path / "l.nii.gz", "--labels")
    assert_one_line_error(code, err, "apply", "non-integer values")
    assert leftovers(tmp_path) == ["labels.nii.gz"]


@pytest.mark.parametrize("name, content", [("affine.mat", b"garbage"), ("affine.mat", b""),
                                           ("warp.nii.gz", b"garbage"), ("warp.nii.gz", "half")],
                         ids=["garbage affine.mat", "empty affine.mat", "garbage warp.nii.gz",
                              "truncated warp.nii.gz"])
def test_apply_refuses_corrupt_transform_files(tmp_path, capsys, pair, transforms, name, content):
    import shutil

    folder = tmp_path / "reg"
    shutil.copytree(transforms, folder)
    if content == "half":
        truncated(folder / name, transforms / name)
    else:
        (folder / name).write_bytes(content)
    code, _, err = run_cli(capsys, "apply", "--transforms", folder, "--input", pair["moving"],
                           "--reference", pair["fixed"], "--out", tmp_path / "a.nii.gz")
    assert_one_line_error(code, err, "apply", name)
    assert not (tmp_path / "a.nii.gz").exists()


def _register_2d(tmp_path, capsys, model, moving, fixed, name):
    code, _, err = run_cli(capsys, "register", "--moving", moving, "--fixed", fixed, "--model", model,
                           "--out", tmp_path / name, "--device", "cpu", "--spacing", "2.0")
    assert code == 0, err
    assert {p.name for p in (tmp_path / name).iterdir()} == OUTPUTS
    return nib.load(tmp_path / name / "warped.nii.gz").get_fdata()


@pytest.fixture(scope="module")
def slices(tmp_path_factory) -> dict:
    """2D images with whole-number intensities in [0, 100] (every dtype below holds them)."""
    root = tmp_path_factory.mktemp("slices")
    values = np.round(smooth_volume(5, (24, 26)))
    return {"root": root, "values": values,
            "fixed": save(root / "fixed.nii.gz", smooth_volume(6, (26, 22)))}


@pytest.mark.parametrize("dtype", [np.int8, np.float64, np.int16], ids=lambda d: np.dtype(d).name)
def test_integer_and_double_images_register_like_float32(tmp_path, capsys, models, slices, dtype):
    """int8 and float64 (and int16) inputs work, and give exactly the float32 result."""
    warped = {}
    for name, data in (("float32", slices["values"].astype(np.float32)),
                       ("other", slices["values"].astype(dtype))):
        moving = save(tmp_path / f"{name}.nii.gz", data)
        assert nib.load(moving).get_data_dtype() == data.dtype
        warped[name] = _register_2d(tmp_path, capsys, models["2d"], moving, slices["fixed"], name)
    np.testing.assert_array_equal(warped["other"], warped["float32"])


def test_a_2d_fixed_image_for_a_3d_moving_one_is_refused(tmp_path, capsys, models, pair):
    flat = save(tmp_path / "flat.nii.gz", smooth_volume(3, (20, 22)))
    code, _, err = run_cli(capsys, "register", "--moving", pair["moving"], "--fixed", flat, "--model",
                           models["3d"], "--out", tmp_path / "out", "--device", "cpu")
    assert_one_line_error(code, err, "register", "flat.nii.gz: is a 2D image (shape (20, 22)), expected 3D")
    assert not (tmp_path / "out").exists()


def test_unusable_flag_values_get_one_line(tmp_path, capsys, models, pair):
    common = ["--moving", pair["moving"], "--fixed", pair["fixed"], "--out", tmp_path / "out",
              "--device", "cpu"]
    for extra, fragment in ((["--model", models["3d"], "--spacing", "-1"], "spacing"),
                            (["--model", models["3d"], "--spacing", "nan"], "spacing"),
                            (["--model", models["2d"]], "is 2D; the input images are 3D"),
                            (["--model", tmp_path / "no-such-model"], "no such checkpoint")):
        code, _, err = run_cli(capsys, "register", *common, *extra)
        assert_one_line_error(code, err, "register", fragment)
    assert not (tmp_path / "out").exists()
