"""The ``firereg`` command: help, info, demo, and one-line errors for user mistakes."""

import json
import subprocess
import sys

import pytest

from firereg.cli.main import main


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "info" in out and "demo" in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_info_reports_the_paper_architecture(capsys):
    assert main(["info", "--ndim", "2", "--width", "64", "--size", "96", "112"]) == 0
    out = capsys.readouterr().out
    assert "feature grid (24, 28) (256 channels)" in out
    assert "T_af channels (8, 16, 20), kernels (7, 5, 2)" in out
    assert "N = 10,752" in out and f"{16 / (10 * 10752):.3e}" in out


def test_user_errors_are_one_line_and_exit_2(capsys):
    assert main(["info", "--size", "30", "30"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("firereg info: error:") and "multiple of 4" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert main(["demo", "--synthetic", "--size", "10", "--out", "unused"]) == 2


def test_demo_runs_end_to_end_and_writes_its_outputs(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--synthetic", "--out", str(out), "--synthesis-steps", "3",
                 "--registration-steps", "3", "--no-progress", "--size", "24"])
    assert code == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    assert (out / "demo.png").stat().st_size > 1000
    result = json.loads((out / "demo.json").read_text())
    assert result["true_translation"] == pytest.approx([-0.2, 0.15])
    assert 0.0 <= result["dice_fire"] <= 1.0 and "l_reg_acc" in result["final_terms"]


def test_python_dash_m_runs_the_console():
    proc = subprocess.run([sys.executable, "-m", "firereg", "--version"], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.startswith("firereg ")


def test_register_and_apply_commands_write_consistent_files(tmp_path, capsys):
    import nibabel as nib
    import numpy as np

    from firereg.config import ModelConfig
    from firereg.model import FireModel
    from firereg.training.checkpoint import save_checkpoint

    rng = np.random.default_rng(0)
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    data = rng.random((30, 34, 28)).astype(np.float32)
    for name in ("moving", "fixed"):
        nib.save(nib.Nifti1Image(data, affine), tmp_path / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image((data > 0.5).astype(np.uint8), affine), tmp_path / "labels.nii.gz")
    save_checkpoint(tmp_path / "run", FireModel(ModelConfig(ndim=3, width=4)), step=0)
    out = tmp_path / "out"
    code = main(["register", "--moving", str(tmp_path / "moving.nii.gz"), "--fixed",
                 str(tmp_path / "fixed.nii.gz"), "--moving-labels", str(tmp_path / "labels.nii.gz"),
                 "--model", str(tmp_path / "run"), "--out", str(out), "--device", "cpu",
                 "--spacing", "2.0"])
    assert code == 0, capsys.readouterr().err
    names = {p.name for p in out.iterdir()}
    assert names == {"warped.nii.gz", "warped_labels.nii.gz", "affine.mat", "warp.nii.gz",
                     "inverse_affine.mat", "inverse_warp.nii.gz", "report.json"}
    report = json.loads((out / "report.json").read_text())
    assert report["model"].endswith("step-00000000")
    # an untrained model maps an image onto itself: warped == moving
    warped = nib.load(out / "warped.nii.gz").get_fdata()
    np.testing.assert_allclose(warped, data, atol=1e-4)
    code = main(["apply", "--transforms", str(out), "--input", str(tmp_path / "labels.nii.gz"),
                 "--reference", str(tmp_path / "fixed.nii.gz"), "--out", str(tmp_path / "l.nii.gz"),
                 "--labels"])
    assert code == 0
    np.testing.assert_array_equal(nib.load(tmp_path / "l.nii.gz").get_fdata(),
                                  nib.load(out / "warped_labels.nii.gz").get_fdata())


def test_register_refuses_a_busy_output_folder_and_bad_inputs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FIREREG_PRETRAINED_DIR", str(tmp_path / "no-models"))
    out = tmp_path / "out"
    out.mkdir()
    (out / ".firereg.lock").write_text("123")
    (tmp_path / "x.nii.gz").write_bytes(b"not an image")
    from firereg.config import ModelConfig
    from firereg.model import FireModel
    from firereg.training.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "run", FireModel(ModelConfig(ndim=3, width=4)), step=0)
    assert main(["register", "--moving", str(tmp_path / "x.nii.gz"), "--fixed",
                 str(tmp_path / "x.nii.gz"), "--model", str(tmp_path / "run"),
                 "--out", str(out)]) == 2
    assert "not a readable NIfTI" in capsys.readouterr().err
    assert main(["register", "--moving", "a.nii", "--fixed", "b.nii", "--out", str(out)]) == 2
    assert "no models are shipped with this install; pass --model PATH" in capsys.readouterr().err
    import nibabel as nib
    import numpy as np

    nib.save(nib.Nifti1Image(np.random.rand(24, 24, 24).astype(np.float32), np.eye(4)),
             tmp_path / "ok.nii.gz")
    assert main(["register", "--moving", str(tmp_path / "ok.nii.gz"), "--fixed",
                 str(tmp_path / "ok.nii.gz"), "--model", str(tmp_path / "run"), "--out", str(out),
                 "--device", "cpu"]) == 2
    assert "another firereg run is writing here" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [".firereg.lock"]


def test_data_phantom_writes_an_acdc_tree(tmp_path, capsys):
    from firereg.data.sources.acdc import acdc_cases

    common = ["data", "phantom", "--out", str(tmp_path), "--subjects", "2", "--pixel-spacing", "2.7",
              "--slices", "4", "--phases", "20", "--no-progress"]
    assert main([*common, "--size", "72", "72"]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    cases = acdc_cases(tmp_path)
    assert [c.name for c in cases] == ["patient001", "patient002"]
    assert "SYNTHETIC" in (tmp_path / "README.txt").read_text()
    assert main([*common, "--size", "40", "40"]) == 2
    assert "cannot hold the heart" in capsys.readouterr().err


def test_register_series_command(tmp_path, capsys):
    import nibabel as nib

    from firereg.config import ModelConfig
    from firereg.data.sources.cardiac_phantom import PhantomConfig, write_acdc_phantom
    from firereg.model import FireModel
    from firereg.training.checkpoint import save_checkpoint

    small = PhantomConfig(size=(72, 72), pixel_spacing_mm=2.7, num_slices=2, slice_spacing_mm=13.0,
                          num_phases=20, supersample=1, through_plane_samples=1)
    case = write_acdc_phantom(tmp_path / "ph", 1, small, seed=0)[0]
    save_checkpoint(tmp_path / "run", FireModel(ModelConfig(ndim=2, width=4)), step=0)
    out = tmp_path / "series"
    code = main(["register-series", "--cine", str(case.cine), "--out", str(out), "--model",
                 str(tmp_path / "run"), "--spacing", "2.7", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    assert "ED from" in capsys.readouterr().out  # read from the ACDC Info.cfg beside the cine
    warped = nib.load(out / "warped_4d.nii.gz")
    assert warped.shape == (72, 72, 2, 20) and warped.header.get_zooms()[3] > 0
    assert len(list((out / "warps").glob("warp_t*.nii.gz"))) == 20
    report = json.loads((out / "report.json").read_text())
    assert report["reference"] == case.ed and len(report["folding_percent_per_frame"]) == 20
    assert main(["register-series", "--cine", str(case.cine), "--out", str(tmp_path / "x"),
                 "--model", str(tmp_path / "run"), "--reference", "99", "--device", "cpu"]) == 2
    assert "outside the cine's frames" in capsys.readouterr().err


def test_image_affine_stage_is_on_with_refine_and_its_metric_follows_the_modalities():
    from argparse import Namespace
    from types import SimpleNamespace

    from firereg.cli.register import _image_affine_config

    card = SimpleNamespace(modality_a="T1", modality_b="T2")
    t1_t2 = SimpleNamespace(card=card, direction="ab")

    def args(**kw):
        return Namespace(**{"image_affine": None, "moving_modality": None, "fixed_modality": None, **kw})

    assert _image_affine_config(args(), t1_t2, refine=None, finetune=None) is None
    assert _image_affine_config(args(), t1_t2, refine=object(), finetune=None).metric == "mi"
    assert _image_affine_config(args(image_affine=False), t1_t2, refine=object(), finetune=None) is None
    same = args(image_affine=True, moving_modality="T1", fixed_modality="T1")  # intra-modal, T1 side
    assert _image_affine_config(same, t1_t2, refine=None, finetune=None).metric == "ncc"
    t1_t1 = SimpleNamespace(card=SimpleNamespace(modality_a="T1", modality_b="T1"), direction="ba")
    assert _image_affine_config(args(), t1_t1, refine=object(), finetune=None).metric == "ncc"
    no_card = SimpleNamespace(card=None, direction="ab")
    assert _image_affine_config(args(image_affine=True), no_card, refine=None, finetune=None).metric == "mi"


def test_register_image_affine_reports_the_stage_and_keeps_a_perfect_start(tmp_path, capsys):
    import nibabel as nib
    import numpy as np

    from firereg.config import ModelConfig
    from firereg.model import FireModel
    from firereg.training.checkpoint import save_checkpoint

    data = np.random.default_rng(0).random((30, 34, 28)).astype(np.float32)
    for name in ("moving", "fixed"):
        nib.save(nib.Nifti1Image(data, np.diag([1.5, 1.5, 1.5, 1.0])), tmp_path / f"{name}.nii.gz")
    save_checkpoint(tmp_path / "run", FireModel(ModelConfig(ndim=3, width=4)), step=0)
    out = tmp_path / "out"
    code = main(["register", "--moving", str(tmp_path / "moving.nii.gz"), "--fixed",
                 str(tmp_path / "fixed.nii.gz"), "--model", str(tmp_path / "run"), "--out", str(out),
                 "--device", "cpu", "--spacing", "2.0", "--image-affine"])
    assert code == 0, capsys.readouterr().err
    assert "affine refined on the images (mi" in capsys.readouterr().out
    stage = json.loads((out / "report.json").read_text())["image_affine"]
    assert stage["metric"] == "mi" and stage["score_after"] <= stage["score_before"] + 1e-6
    # identical images: the identity is already the best, so nothing is changed
    assert not stage["kept"]
    np.testing.assert_allclose(nib.load(out / "warped.nii.gz").get_fdata(), data, atol=1e-4)
