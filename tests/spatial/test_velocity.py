"""Scaling and squaring: exact for translations, inverse by negation, folding-free."""

import math

import pytest
import torch

from firereg.spatial import compose, integrate_velocity, jacobian_determinant


def test_a_constant_velocity_integrates_to_the_same_translation() -> None:
    v = torch.zeros(1, 2, 16, 20)
    v[:, 0], v[:, 1] = 0.1, -0.05
    torch.testing.assert_close(integrate_velocity(v), v)


def test_zero_squarings_returns_the_velocity() -> None:
    v = 0.01 * torch.randn(1, 3, 6, 7, 8)
    torch.testing.assert_close(integrate_velocity(v, squarings=0), v)


def test_exp_of_a_rotation_velocity_is_a_rotation() -> None:
    # v(p) = w * (-y, x): its flow at t = 1 rotates by w radians about the centre
    size = (64, 64)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size[0]), torch.linspace(-1, 1, size[1]), indexing="ij")
    w = 0.2
    v = torch.stack([-w * ys, w * xs])[None]  # components in grid_sample order: (x, y)
    u = integrate_velocity(v, squarings=8)
    c, s = math.cos(w), math.sin(w)
    expected = torch.stack([c * xs - s * ys - xs, s * xs + c * ys - ys])[None]
    inner = (slice(None), slice(None), slice(16, 48), slice(16, 48))  # away from the border
    assert (u - expected)[inner].abs().max() < 2e-3


def test_exp_of_minus_v_inverts_exp_of_v() -> None:
    torch.manual_seed(0)
    v = torch.nn.functional.interpolate(0.1 * torch.randn(1, 2, 5, 5), size=(48, 48), mode="bilinear",
                                        align_corners=True)
    cycle = compose(integrate_velocity(v), integrate_velocity(-v))[..., 8:-8, 8:-8].abs().max()
    naive = compose(v, -v)[..., 8:-8, 8:-8].abs().max()  # u and -u are not inverses
    assert cycle < 0.05 * v.abs().max()
    assert cycle < 0.3 * naive


def test_a_large_velocity_does_not_fold_where_its_small_deformation_does() -> None:
    torch.manual_seed(1)
    v = torch.nn.functional.interpolate(0.8 * torch.randn(1, 2, 4, 4), size=(40, 40), mode="bicubic",
                                        align_corners=True)
    folded_plain = (jacobian_determinant(v) <= 0).float().mean()
    folded_exp = (jacobian_determinant(integrate_velocity(v)) <= 0).float().mean()
    assert folded_plain > 0.01
    assert folded_exp == 0


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="integrate_velocity"):
        integrate_velocity(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="squarings"):
        integrate_velocity(torch.zeros(1, 2, 8, 8), squarings=-1)
