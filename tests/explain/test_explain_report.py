"""``firereg explain``: the report's sections, figures and numbers, the embedded PNGs, the latent
correlation's meaning, 3D slice choice and the refusal of a used output folder."""

import base64
import io
import json
import re

import matplotlib.image as mpimg
import numpy as np
import pytest
from explain_helpers import run_cli, tiny_checkpoint, write_pair

from firereg.config import ModelConfig
from firereg.data.image import Image
from firereg.explain.analysis import analyse_pair, prepare_pair
from firereg.explain.latent import channel_correlations, latent_correlation
from firereg.model import FireModel

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SECTIONS = ("inputs", "numbers", "alignment", "deformation", "synthesis", "latent", "sensitivity",
            "definitions")


def _images(html: str) -> list[str]:
    return re.findall(r'<img\b[^>]*\bsrc="([^"]*)"', html)


def test_report_has_every_section_figure_and_number(report_2d):
    html = (report_2d / "explain.html").read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}">' in html, section
    names = ("alignment_image", "deformation_image", "synthesis_image", "latent_histogram", "latent_image",
             "sensitivity_image")
    for name in names:
        assert f'id="fig-{name}"' in html, name
        assert (report_2d / f"{name}.png").is_file(), name
    assert len(_images(html)) == len(names)
    for text in ("Model card", "training iterations (checkpoint step)", "folding", "inverse consistency",
                 "mean latent correlation, after FIRE", "mean latent correlation, before warping",
                 "label Dice (unaligned -&gt; FIRE-affine -&gt; FIRE)", "input x gradient", "Grad-CAM on G",
                 "Pearson correlation", "baseline b = -1"):
        assert text in html, text
    # nothing outside the file: no external URL, script or stylesheet
    assert "http://" not in html and "https://" not in html and "<script" not in html
    summary = json.loads((report_2d / "explain.json").read_text())
    assert summary["figures"] == [f"{n}.png" for n in names]
    for key in ("folding_percent", "inverse_consistency_mm", "mean_displacement_mm"):
        assert np.isfinite(summary[key]), key
    corr = summary["latent_correlation"]
    assert -1 <= corr["mean_before"] <= 1 and -1 <= corr["mean_after"] <= 1
    assert len(corr["most_similar_channels"]) == 3 and len(corr["least_similar_channels"]) == 3
    assert set(summary["dice"]) == {"unaligned", "affine", "full"}
    # the perturbed T depends on its inputs: every sensitivity target has a non-zero map
    for target, value in summary["sensitivity"]["targets"].items():
        assert value > 0, target
        for method, share in summary["sensitivity"]["moving_share"][target].items():
            assert 0 < share < 1, (target, method)


def test_every_image_is_an_embedded_png_that_decodes(report_2d):
    html = (report_2d / "explain.html").read_text(encoding="utf-8")
    sources = _images(html)
    assert sources
    prefix = "data:image/png;base64,"
    for src in sources:
        assert src.startswith(prefix), src[:40]
        data = base64.b64decode(src[len(prefix):], validate=True)
        assert data.startswith(PNG_MAGIC)
        pixels = mpimg.imread(io.BytesIO(data), format="png")
        assert pixels.ndim == 3 and pixels.shape[0] > 50 and pixels.shape[1] > 50
        assert pixels[..., :3].std() > 0.01  # not a blank canvas
    on_disk = {p.read_bytes() for p in report_2d.glob("*.png")}
    embedded = {base64.b64decode(src[len(prefix):]) for src in sources}
    assert embedded == on_disk


def test_latent_correlation_of_identical_inputs_is_one():
    """moving == fixed through an untrained model: T outputs the identity, so G(x^A) o phi = G(x^B)."""
    model = FireModel(ModelConfig(ndim=2, width=4))
    data = np.random.default_rng(0).random((32, 28)).astype(np.float32)
    image = Image(data, np.diag([1.5, 1.5, 1.5, 1.0]), 2)
    pair = prepare_pair(image, image, spacing_mm=1.5)
    analysis = analyse_pair(model, pair)
    np.testing.assert_allclose(analysis.theta, np.eye(2, 3), atol=1e-7)
    assert analysis.nonrigid_mm.max() < 1e-6 and analysis.folding_percent == 0.0
    corr = latent_correlation(analysis)
    assert corr.left_out < corr.after.size
    assert corr.mean_after == pytest.approx(1.0, abs=1e-5)
    assert corr.mean_before == pytest.approx(1.0, abs=1e-5)
    assert analysis.inverse_consistency_mm < 1e-4


def test_channel_correlations_ignore_scale_and_leave_out_constant_channels():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 5, 6))
    b = np.stack([2.0 * a[0] + 1.0, -a[1], np.full((5, 6), 3.0)])
    r = channel_correlations(a, b)
    assert r[0] == pytest.approx(1.0) and r[1] == pytest.approx(-1.0) and np.isnan(r[2])


def test_3d_report_slices_through_the_labels_of_interest(tmp_path):
    shape = (20, 20, 20)
    paths = write_pair(tmp_path / "data", shape, shift=0)
    # fixed labels: a large body (1) and a small blob (2) centred at voxel (5, 13, 8)
    labels = np.zeros(shape, dtype=np.int32)
    labels[3:17, 3:17, 3:17] = 1
    labels[4:7, 12:15, 7:10] = 2
    from firereg.data.io import read_labels, write_labels

    affine = read_labels(paths["fixed_labels"]).affine
    write_labels(Image(labels, affine, 3), paths["fixed_labels"])
    run = tiny_checkpoint(tmp_path / "run", 3)
    out = tmp_path / "out"
    code = run_cli(["--model", str(run), "--moving", str(paths["moving"]), "--fixed", str(paths["fixed"]),
                    "--fixed-labels", str(paths["fixed_labels"]), "--labels-of-interest", "2",
                    "--out", str(out), "--device", "cpu", "--spacing", "2"])
    assert code == 0
    summary = json.loads((out / "explain.json").read_text())
    assert summary["model_grid_shape"] == [20, 20, 20]  # 20 voxels of 2 mm: the model grid is the image grid
    assert summary["slices"] == {"axial": 8, "coronal": 13, "sagittal": 5}
    assert summary["slice_choice"].startswith("centroid of label(s) 2")
    html = (out / "explain.html").read_text()
    for kind in ("alignment", "deformation", "synthesis", "latent", "sensitivity"):
        for plane in ("axial", "coronal", "sagittal"):
            assert (out / f"{kind}_{plane}.png").is_file()
            assert f'id="fig-{kind}_{plane}"' in html
    # no moving labels: the alignment figure outlines the moving image's edges instead
    assert "edges of the moving image" in html


def test_refuses_a_used_output_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty; pass --overwrite"):
        run_cli(["--model", str(tmp_path / "does-not-matter"), "--moving", "m.nii.gz", "--fixed", "f.nii.gz",
                 "--out", str(out)])
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        run_cli(["--moving", "m.nii.gz", "--fixed", "f.nii.gz", "--out", str(tmp_path / "file"),
                 "--overwrite"])
