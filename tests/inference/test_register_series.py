"""register_series on a small SYNTHETIC cine: identity when untrained, and ANTs reads its fields."""

import ants
import numpy as np
import pytest
import torch

from firereg.config import ModelConfig
from firereg.data.image import Image
from firereg.data.io import read_image, write_displacement_field, write_image
from firereg.data.preprocessing import PreprocessConfig
from firereg.data.sources.cardiac_phantom import PhantomConfig, generate_cine
from firereg.inference.register_series import register_series
from firereg.model import FireModel

SMALL = PhantomConfig(size=(72, 72), pixel_spacing_mm=2.7, num_slices=3, slice_spacing_mm=13.0,
                      num_phases=20, supersample=1, through_plane_samples=1)


@pytest.fixture(scope="module")
def cine():
    return generate_cine(SMALL, seed=2).cine


def test_untrained_model_leaves_every_phase_in_place(cine):
    result = register_series(FireModel(ModelConfig(ndim=2, width=4)), cine, 0,
                             preprocess_config=PreprocessConfig(spacing=2.7))
    assert result.warped.data.shape == cine.data.shape
    np.testing.assert_allclose(result.warped.data, cine.data, atol=1e-4)
    assert np.abs(result.displacements).max() < 1e-6
    assert result.report["folding_percent_per_frame"] == [0.0] * SMALL.num_phases


def test_displacements_mean_in_ants_what_firereg_did(tmp_path, cine):
    model = FireModel(ModelConfig(ndim=2, width=4))
    with torch.no_grad():
        bias = torch.tensor([0.97, 0.04, 0.06, -0.03, 1.02, -0.05])
        model.transform_ab.affine.dense[-1].bias.copy_(bias)
    result = register_series(model, cine, 5, preprocess_config=PreprocessConfig(spacing=2.7))
    t = 11
    frame = Image(cine.data[..., t], cine.affine, 3)
    reference = Image(cine.data[..., 5], cine.affine, 3)
    write_image(frame, tmp_path / "frame.nii.gz")
    write_image(reference, tmp_path / "reference.nii.gz")
    write_displacement_field(result.displacements[t], cine.affine, tmp_path / "warp.nii.gz")
    by_ants = ants.apply_transforms(ants.image_read(str(tmp_path / "reference.nii.gz")),
                                    ants.image_read(str(tmp_path / "frame.nii.gz")),
                                    [str(tmp_path / "warp.nii.gz")]).numpy()
    ours = result.warped.data[..., t]
    inner = (slice(4, -4), slice(4, -4), slice(None))
    assert np.corrcoef(ours[inner].ravel(), by_ants[inner].ravel())[0, 1] > 0.99
    # a 2D model moves points within their slice: no component along the (oblique) slice normal
    normal = np.cross(cine.affine[:3, 0], cine.affine[:3, 1]) * np.array([-1.0, -1.0, 1.0])  # LPS
    along_normal = result.displacements @ (normal / np.linalg.norm(normal))
    assert np.abs(result.displacements).max() > 1.0
    assert np.abs(along_normal).max() < 1e-3
    assert read_image(write_image(result.warped, tmp_path / "w.nii.gz"), allow_series=True).num_frames == 20


def test_bad_reference_and_non_series_are_refused(cine):
    model = FireModel(ModelConfig(ndim=2, width=4))
    with pytest.raises(ValueError, match="outside the cine's frames"):
        register_series(model, cine, 20)
    with pytest.raises(ValueError, match="expected a 4D cine"):
        register_series(model, cine.frame(0), 0)
