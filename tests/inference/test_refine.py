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
