"""Eq. (1) as assembled from a real forward pass."""

import pytest
import torch

from firereg.config import ModelConfig
from firereg.losses import TERM_NAMES, fire_objective, smoothness_weight
from firereg.model import FireModel
from firereg.spatial import compose, warp


@pytest.fixture
def pair_and_model():
    model = FireModel(ModelConfig(ndim=2, width=4))
    with torch.no_grad():  # a non-trivial transform in both directions
        model.transform_ab.affine.dense[-1].bias.copy_(torch.tensor([0.9, 0.1, 0.05, -0.1, 1.1, 0]))
        model.transform_ba.affine.dense[-1].bias.copy_(torch.tensor([1.0, 0, -0.05, 0, 1.0, 0.1]))
        torch.nn.init.normal_(model.transform_ab.nonrigid.head.weight, std=0.01)
    x_a, x_b = torch.rand(2, 1, 32, 36) * 2 - 1, torch.rand(2, 1, 32, 36) * 2 - 1
    return model, x_a, x_b


def test_objective_returns_every_term_by_name_and_sums_them(pair_and_model):
    model, x_a, x_b = pair_and_model
    t = fire_objective(model(x_a, x_b), x_a, x_b)
    assert tuple(t) == TERM_NAMES
    assert all(v.dim() == 0 and torch.isfinite(v) for v in t.values())
    close = lambda a, b: torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)  # noqa: E731
    close(t["l_syn"], t["l_syn_acc"] + t["l_syn_fea"] + t["l_syn_cyc"] + t["l_syn_align"])
    close(t["l_reg"], t["l_reg_acc"] + t["l_reg_ic"])
    lam = smoothness_weight(2, 32 * 36)
    close(t["lambda_r_smooth"], lam * t["r_smooth"])
    close(t["r"], t["r_syn"] + t["r_reg"] + lam * t["r_smooth"])
    close(t["total"], t["l_syn"] + t["l_reg"] + t["r"])
    assert t["r_smooth"] > 0 and t["l_reg_ic"] > 0.01


def test_forward_wires_each_quantity_as_the_paper_defines_it(pair_and_model):
    model, x_a, x_b = pair_and_model
    model.eval()  # instance norm has no running stats: eval and train agree
    out = model(x_a, x_b)
    g, f_ab, f_ba = model.encoder, model.decoder_ab, model.decoder_ba
    size = x_a.shape[2:]
    phi_ab = compose(out.affine_ab, out.nonrigid_ab, size)
    phi_ba = compose(out.affine_ba, out.nonrigid_ba, size)
    close = lambda a, b: torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # noqa: E731
    with torch.no_grad():
        close(out.feat_a, g(x_a))
        close(out.synth_b, f_ab(g(x_a)))
        close(out.cycle_a, f_ba(g(f_ab(g(x_a)))))  # Eq. (4)
        close(out.feat_synth_b, g(out.synth_b))  # Eq. (5)
        phi_ab_feat = compose(out.affine_ab, out.nonrigid_ab)
        close(out.feat_a_warped, warp(g(x_a), phi_ab_feat, padding_mode="border"))  # Eq. (3)
        close(out.synth_b_warped, f_ab(out.feat_a_warped))  # Eq. (2)
        warped_a = warp(x_a, phi_ab, padding_mode="border")
        close(out.image_a_warped, warped_a)
        close(out.synth_b_image_warped, f_ab(g(warped_a)))  # Eq. (7): image warped first
        affine_a = warp(x_a, out.affine_ab, padding_mode="border")
        close(out.synth_b_image_affine, f_ab(g(affine_a)))  # Eq. (12)
        feat_a_aff = warp(g(x_a), out.affine_ab, padding_mode="border")
        close(out.synth_b_feat_affine, f_ab(feat_a_aff))  # Eq. (11)
        close(out.image_a_cycle, warp(x_a, compose(phi_ab, phi_ba), padding_mode="border"))
        close(out.synth_a_image_warped, f_ba(g(warp(x_b, phi_ba, padding_mode="border"))))


def test_gradient_of_the_total_reaches_every_group(pair_and_model):
    model, x_a, x_b = pair_and_model
    fire_objective(model(x_a, x_b), x_a, x_b)["total"].backward()
    for name, params in model.parameter_groups().items():
        norm = sum(float(p.grad.norm()) for p in params if p.grad is not None)
        assert norm > 0, name
