"""Each loss term: zero (or the 1e-6 floor) at perfect agreement, positive otherwise, exact RMS."""

import math

import pytest
import torch

from firereg import losses
from firereg.losses import rms, smoothness_weight
from firereg.spatial import identity_grid

FLOOR = 1e-6  # rms of identical inputs: sqrt of the 1e-12 clamp


def test_rms_matches_its_definition():
    a, b = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
    assert torch.isclose(rms(a, b), torch.sqrt(((a - b) ** 2).mean()))
    assert rms(torch.zeros(3), torch.full((3,), 2.0)) == pytest.approx(2.0)


def test_rms_is_minimal_with_finite_gradient_at_equality():
    a = torch.randn(1, 1, 6, 6, requires_grad=True)
    value = rms(a, a.detach().clone())
    assert value.item() == pytest.approx(FLOOR)
    value.backward()
    assert torch.isfinite(a.grad).all()


def test_rms_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="rms"):
        rms(torch.zeros(2, 3), torch.zeros(3, 2))


FOUR_ARG_TERMS = [
    (losses.l_syn_acc, "Eq. (2)"),
    (losses.l_syn_fea, "Eq. (3)"),
    (losses.l_syn_cyc, "Eq. (4)"),
    (losses.l_syn_align, "Eq. (5)"),
    (losses.l_reg_acc, "Eq. (7)"),
    (losses.l_reg_ic, "Eq. (8)"),
    (losses.r_syn, "Eq. (11)"),
    (losses.r_reg, "Eq. (12)"),
]


@pytest.mark.parametrize("term, eq", FOUR_ARG_TERMS, ids=[t.__name__ for t, _ in FOUR_ARG_TERMS])
def test_pair_terms_vanish_at_agreement_and_grow_with_error(term, eq):
    assert eq in term.__doc__
    x = torch.rand(2, 1, 12, 12) * 2 - 1
    y = torch.rand(2, 1, 12, 12) * 2 - 1
    assert term(x, x, y, y).item() == pytest.approx(2 * FLOOR)
    small = term(x, x + 0.1, y, y).item()
    large = term(x, x + 0.3, y, y - 0.3).item()
    assert small == pytest.approx(0.1 + FLOOR, rel=1e-4)  # RMS of a constant error is its size
    assert large == pytest.approx(0.6, rel=1e-4)


def test_sum_terms_are_unweighted_sums():
    a, b, c, d = (torch.tensor(v) for v in (0.1, 0.2, 0.3, 0.4))
    assert "Eq. (6)" in losses.l_syn.__doc__ and "Eq. (9)" in losses.l_reg.__doc__
    assert losses.l_syn(a, b, c, d).item() == pytest.approx(1.0)
    assert losses.l_reg(a, b).item() == pytest.approx(0.3)
    assert "Eq. (13)" in losses.r_total.__doc__
    assert losses.r_total(a, b, c, 0.5).item() == pytest.approx(0.45)


@pytest.mark.parametrize("ndim, size", [(2, (96, 112)), (3, (48, 56, 48))])
def test_lambda_follows_the_formula(ndim, size):
    n = math.prod(size)
    assert smoothness_weight(ndim, n) == pytest.approx(2 ** (2 * ndim) / (10 * n))
    # on the 1/4-resolution feature grid, lambda * sum equals one tenth of the mean
    feat = tuple(s // 4 for s in size)
    assert smoothness_weight(ndim, n) * math.prod(feat) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        smoothness_weight(4, n)


@pytest.mark.parametrize("ndim", [2, 3])
def test_bending_energy_is_zero_for_affine_and_positive_for_bumpy(ndim):
    size = (10,) * ndim
    grid = identity_grid(size, dtype=torch.float64)  # (1, *S, d)
    matrix = torch.randn(ndim, ndim, dtype=torch.float64)
    shift = torch.randn(ndim, dtype=torch.float64)
    affine_field = (grid @ matrix.T + shift).movedim(-1, 1)  # (1, d, *S), linear in p
    assert "Eq. (10)" in losses.r_smooth.__doc__
    assert losses.bending_energy(affine_field).item() < 1e-20
    bumpy = affine_field + 0.05 * torch.randn_like(affine_field)
    assert losses.bending_energy(bumpy).item() > 1e-3
    assert losses.r_smooth(affine_field, bumpy).item() == pytest.approx(
        losses.bending_energy(bumpy).item())


def test_bending_energy_of_a_quadratic_field_is_analytic():
    # u_0 = c * i^2 in grid-index units has Laplacian 2c at every interior voxel
    c = 0.01
    i = torch.arange(7, dtype=torch.float64)
    field = torch.zeros(1, 2, 7, 7, dtype=torch.float64)
    field[0, 0] = c * i[None, :] ** 2
    expected = (2 * c) ** 2 * 5 * 5  # 5x5 interior voxels
    assert losses.bending_energy(field).item() == pytest.approx(expected)
