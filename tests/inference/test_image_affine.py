"""The image-space affine stage of refinement (firereg.inference.image_affine)."""

import math

import pytest
import torch

from firereg.inference.image_affine import ImageAffineConfig, metric_for, refine_affine_image
from firereg.spatial.affine import identity_affine
from firereg.spatial.smoothing import gaussian_blur
from firereg.spatial.warp import warp


def _head(size: int = 64) -> torch.Tensor:
    """A synthetic 'head' (1, 1, size, size) in [-1, 1]: an off-centre ellipse with smooth texture."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    ellipse = (((xs - 0.1) / 0.6) ** 2 + ((ys + 0.05) / 0.75) ** 2 < 1).float()
    texture = gaussian_blur(torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(0)), 2.0)
    x = gaussian_blur(ellipse[None, None] * (0.5 + texture), 1.0)
    return 2 * (x - x.min()) / (x.max() - x.min()) - 1


def _known() -> torch.Tensor:
    """A known fixed -> moving affine: 6 degrees, 5% scale, a shift of 0.08 and -0.05."""
    a = math.radians(6.0)
    return torch.tensor([[[1.05 * math.cos(a), -math.sin(a), 0.08],
                          [math.sin(a), 0.97 * math.cos(a), -0.05]]])


@pytest.mark.parametrize("metric", ["ncc", "mi"])
def test_a_known_affine_is_recovered_from_the_identity(metric):
    moving = _head()
    truth = _known()
    fixed = warp(moving, truth, padding_mode="border")  # fixed(p) = moving(truth(p))
    if metric == "mi":  # the fixed image in another "modality": a non-monotone remap
        fixed = 1.0 - 2.0 * ((fixed + 1.0) * 0.5) ** 2
    config = ImageAffineConfig(metric=metric, steps=(200, 200, 200), lr=0.01)
    refined, report = refine_affine_image(moving, fixed, identity_affine(1, 2), config)
    assert report["kept"] and report["score_after"] > report["score_before"]
    assert (refined - truth).abs().max().item() < (0.002 if metric == "ncc" else 0.01)
    assert report["metric"] == metric and report["steps"] == [200, 200, 200]


def test_a_good_start_stays_good_and_a_worse_result_is_refused():
    moving = _head()
    truth = _known()
    fixed = warp(moving, truth, padding_mode="border")
    refined, _ = refine_affine_image(moving, fixed, truth, ImageAffineConfig(metric="ncc"))
    assert (refined - truth).abs().max().item() < 0.01
    # zero steps leave delta at 0: the score does not improve, so the start comes back unchanged
    unchanged, report = refine_affine_image(moving, fixed, truth,
                                            ImageAffineConfig(metric="ncc", factors=(1,), steps=(0,)))
    assert not report["kept"] and torch.equal(unchanged, truth)


def test_3d_translation_is_recovered():
    g = torch.Generator().manual_seed(1)
    moving = gaussian_blur(torch.rand(1, 1, 24, 28, 20, generator=g), 2.0)
    moving = 2 * (moving - moving.min()) / (moving.max() - moving.min()) - 1
    truth = identity_affine(1, 3).clone()
    truth[0, :, 3] = torch.tensor([0.06, -0.04, 0.05])
    fixed = warp(moving, truth, padding_mode="border")
    refined, report = refine_affine_image(moving, fixed, identity_affine(1, 3),
                                          ImageAffineConfig(metric="ncc", factors=(2, 1), steps=(150, 150)))
    assert report["kept"]
    assert (refined[0, :, 3] - truth[0, :, 3]).abs().max().item() < 0.005


def test_metric_follows_the_modality_pair():
    assert metric_for("T1", "t1") == "ncc"
    assert metric_for("T1", "T2") == "mi"
    assert metric_for(None, "T1") == "mi"


@pytest.mark.parametrize("kwargs, match", [
    ({"metric": "cc"}, "metric"), ({"factors": (4, 2), "steps": (10,)}, "one length"),
    ({"factors": (0,), "steps": (1,)}, "factors"), ({"lr": 0.0}, "lr"), ({"bins": 3}, "bins"),
])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImageAffineConfig(**kwargs)


def test_images_must_match_the_affine():
    with pytest.raises(ValueError, match="expected"):
        refine_affine_image(torch.zeros(1, 1, 8, 8, 8), torch.zeros(1, 1, 8, 8, 8), identity_affine(1, 2))


def test_a_large_grid_is_scored_on_a_coarser_finest_level():
    from firereg.inference.image_affine import base_scale

    assert base_scale((92, 112), 2**17) == 1.0
    scale = base_scale((92, 112, 92), 2**17)
    assert 1.9 < scale < 2.0 and (92 / scale) * (112 / scale) * (92 / scale) == pytest.approx(2**17)
    g = torch.Generator().manual_seed(2)
    moving = gaussian_blur(torch.rand(1, 1, 24, 24, 24, generator=g), 2.0) * 2 - 1
    truth = identity_affine(1, 3).clone()
    truth[0, 0, 3] = 0.05
    fixed = warp(moving, truth, padding_mode="border")
    config = ImageAffineConfig(metric="ncc", factors=(1,), steps=(150,), max_voxels=4096)
    refined, report = refine_affine_image(moving, fixed, identity_affine(1, 3), config)
    assert report["finest_scale"] == pytest.approx(24 / 16)
    assert report["kept"] and abs(refined[0, 0, 3].item() - 0.05) < 0.01
