"""Per-pair refinement: frozen network, lower objective, a known shift recovered."""

import pytest
import torch

from firereg.config import ModelConfig
from firereg.inference.refine import RefineConfig, refine_pair
from firereg.model import FireModel
from firereg.spatial import jacobian_determinant, warp


def _blobs(size=(48, 48)) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size[0]), torch.linspace(-1, 1, size[1]), indexing="ij")
    def blob(cx: float, cy: float, width: float) -> torch.Tensor:
        return torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / width)

    img = blob(0.2, -0.1, 0.08) - 0.8 * blob(-0.3, 0.25, 0.04) + 0.5 * blob(-0.1, -0.4, 0.02)
    return img[None, None]


def _identity_init(model: FireModel, size) -> tuple[torch.Tensor, ...]:
    feat = tuple(s // 4 for s in size)
    eye = torch.eye(2, 3)[None]
    return eye, torch.zeros(1, 2, *feat), eye.clone(), torch.zeros(1, 2, *feat)


@pytest.fixture(scope="module")
def model() -> FireModel:
    torch.manual_seed(0)
    return FireModel(ModelConfig(ndim=2, width=8, padding_mode="zeros")).eval()


def test_affine_refinement_recovers_a_known_translation_and_leaves_the_network_alone(model) -> None:
    fixed = _blobs()
    shift = torch.tensor([[[1.0, 0.0, 0.12], [0.0, 1.0, -0.08]]])
    moving = warp(fixed, torch.linalg.inv(torch.cat([shift, torch.tensor([[[0, 0, 1.0]]])], 1))[:, :2])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = refine_pair(model, moving, fixed, "ab", _identity_init(model, (48, 48)),
                         RefineConfig(max_steps=200, lr_affine=5e-3, patience=30), affine_only=True)
    # fixed point p is read from moving at theta(p) = p + shift
    assert result.affine_fwd[0, :, 2].tolist() == pytest.approx([0.12, -0.08], abs=0.03)
    assert result.affine_bwd[0, :, 2].tolist() == pytest.approx([-0.12, 0.08], abs=0.03)
    assert result.report["objective_after"]["total"] < 0.7 * result.report["objective_before"]["total"]
    assert torch.count_nonzero(result.nonrigid_fwd) == 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.requires_grad for p in model.parameters())


def test_zero_steps_returns_the_network_transforms(model) -> None:
    init = _identity_init(model, (48, 48))
    init = (init[0] + 0.01, 0.01 * torch.randn_like(init[1]), init[2], init[3])
    result = refine_pair(model, _blobs(), _blobs(), "ab", init, RefineConfig(max_steps=0))
    torch.testing.assert_close(result.affine_fwd, init[0])
    torch.testing.assert_close(result.nonrigid_fwd, init[1])
    assert result.report["steps"] == 0


def test_diffeomorphic_refinement_does_not_fold(model) -> None:
    fixed = _blobs()
    moving = _blobs().roll(3, dims=-1)
    init = _identity_init(model, (48, 48))
    result = refine_pair(model, moving, fixed, "ab", init,
                         RefineConfig(max_steps=60, lr_field=2e-2, smooth_weight=0.0, ic_weight=0.0,
                                      diffeomorphic=True))
    assert result.report["steps"] > 0
    assert result.report["objective_after"]["total"] < result.report["objective_before"]["total"]
    assert result.nonrigid_fwd.abs().max() > 0
    assert (jacobian_determinant(result.nonrigid_fwd) > 0).all()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="steps"):
        RefineConfig(max_steps=-1)
    with pytest.raises(ValueError, match="lr_field"):
        RefineConfig(lr_field=0.0)


def test_the_cli_default_step_count_is_the_library_default() -> None:
    from firereg.cli import main
    from firereg.inference import refine

    assert main.DEFAULT_REFINE_STEPS == refine.DEFAULT_REFINE_STEPS
    assert main.DEFAULT_SYNTHESIS_WEIGHT == refine.DEFAULT_SYNTHESIS_WEIGHT


def test_the_synthesis_term_alone_recovers_a_known_translation(model, monkeypatch) -> None:
    """With uninformative features (all zero), only the synthesis term can move the transform; with
    'decoders' that render each image as itself it is a same-modality RMS at image resolution."""
    import firereg.inference.refine as refine

    fixed = _blobs()
    shift = torch.tensor([[[1.0, 0.0, 0.10], [0.0, 1.0, 0.06]]])
    moving = warp(fixed, torch.linalg.inv(torch.cat([shift, torch.tensor([[[0, 0, 1.0]]])], 1))[:, :2])
    monkeypatch.setattr(refine, "_synthesis_inputs",
                        lambda model, direction, feats, images, scale: refine._Synthesis(
                            images[0], images[1], images[0], images[1]))
    zeros = (torch.zeros(1, 8, 12, 12), torch.zeros(1, 8, 12, 12))
    settings = dict(max_steps=200, lr_affine=5e-3, patience=30, synthesis_weight=10.0)
    result = refine_pair(model, moving, fixed, "ab", _identity_init(model, (48, 48)),
                         RefineConfig(**settings), affine_only=True, features=zeros)
    assert result.affine_fwd[0, :, 2].tolist() == pytest.approx([0.10, 0.06], abs=0.02)
    before, after = (result.report[k]["synthesis"] for k in ("objective_before", "objective_after"))
    assert after < 0.3 * before
    without = refine_pair(model, moving, fixed, "ab", _identity_init(model, (48, 48)),
                          RefineConfig(**{**settings, "synthesis_weight": 0.0}), affine_only=True,
                          features=zeros)
    assert "synthesis" not in without.report["objective_after"]
    torch.testing.assert_close(without.affine_fwd, torch.eye(2, 3)[None])  # nothing to follow


def test_synthesis_inputs_render_each_image_with_the_right_decoder_and_grid() -> None:
    import firereg.inference.refine as refine

    torch.manual_seed(0)
    model3 = FireModel(ModelConfig(ndim=3, width=4)).eval()
    images = (torch.rand(1, 1, 16, 16, 16), torch.rand(1, 1, 16, 16, 16))
    feats = model3.encode_pair(*images)
    for direction, (fwd, bwd) in {"ab": (model3.decoder_ab, model3.decoder_ba),
                                  "ba": (model3.decoder_ba, model3.decoder_ab)}.items():
        full = refine._synthesis_inputs(model3, direction, feats, images, 1.0)
        with torch.no_grad():
            torch.testing.assert_close(full.moving_as_fixed, fwd(feats[0]))
            torch.testing.assert_close(full.fixed_as_moving, bwd(feats[1]))
        assert torch.equal(full.moving, images[0]) and torch.equal(full.fixed, images[1])
    half = refine._synthesis_inputs(model3, "ab", feats, images, 0.5)
    assert half.size == (8, 8, 8) and half.moving_as_fixed.shape[2:] == (8, 8, 8)
    # full resolution up to 2^17 voxels, then a coarser grid of that many voxels
    assert refine.SYNTHESIS_VOXELS == 2**17
    assert RefineConfig().scale_for((92, 112)) == 1.0 == RefineConfig().scale_for((46, 56, 24))
    assert RefineConfig().scale_for((92, 112, 92)) == pytest.approx((2**17 / (92 * 112 * 92)) ** (1 / 3))
    assert 0.51 < RefineConfig().scale_for((92, 112, 92)) < 0.53
    assert RefineConfig(synthesis_scale=0.25).scale_for((92, 112)) == 0.25
    # the corners keep their values: the normalized frame is unchanged
    assert half.moving[0, 0, 0, 0, 0] == pytest.approx(float(images[0][0, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="synthesis_scale"):
        RefineConfig(synthesis_scale=1.5)
    with pytest.raises(ValueError, match="synthesis_weight"):
        RefineConfig(synthesis_weight=-1.0)


def test_cli_synthesis_weight_reaches_the_refinement_or_is_refused_by_name() -> None:
    from firereg.cli.main import build_parser
    from firereg.cli.register import _refine_configs

    def configs(*flags):
        return _refine_configs(build_parser().parse_args(["register", "--moving", "m", "--fixed", "f",
                                                          "--out", "o", *flags]))

    default, _ = configs("--refine")
    assert default.synthesis_weight == RefineConfig().synthesis_weight > 0
    assert configs("--refine", "--refine-synthesis-weight", "0")[0].synthesis_weight == 0.0
    for flags, message in ((["--refine-synthesis-weight", "0.1"], "--refine-synthesis-weight needs --refine"),
                           (["--refine", "--refine-synthesis-weight", "-1"], "must be >= 0"),
                           (["--refine", "--refine-mode", "network", "--refine-synthesis-weight", "0.1"],
                            "apply to --refine-mode features")):
        with pytest.raises(ValueError, match=message):
            configs(*flags)
