"""Regularisation terms, Eqs. (10)-(13) of §3.7."""

from __future__ import annotations

from torch import Tensor

from firereg.losses.rms import rms
from firereg.spatial import laplacian

__all__ = ["bending_energy", "r_smooth", "r_syn", "r_reg", "smoothness_weight", "r_total"]


def bending_energy(displacement: Tensor) -> Tensor:
    """``||Laplacian(phi_nr)||^2`` of a displacement ``(N, d, *S)``: per sample, the sum over
    interior voxels and components of the squared discrete Laplacian (grid-index units, values in
    normalized units), averaged over the batch. Zero for any affine field.
    """
    lap = laplacian(displacement)
    return lap.pow(2).flatten(1).sum(dim=1).mean()


def r_smooth(nonrigid_ab: Tensor, nonrigid_ba: Tensor) -> Tensor:
    """Smoothness, Eq. (10): ``||Lap phi_nr^{A->B}||^2 + ||Lap phi_nr^{B->A}||^2``.

    Evaluated on the fields T_nr outputs, ``(N, d, *S/4)`` on the feature grid.
    """
    return bending_energy(nonrigid_ab) + bending_energy(nonrigid_ba)


def r_syn(x_b: Tensor, synth_b_feat_affine: Tensor, x_a: Tensor, synth_a_feat_affine: Tensor) -> Tensor:
    """Synthesis regularisation, Eq. (11):
    ``RMS(x^B, F_AB(G(x^A) o phi_af^{A->B})) + RMS(x^A, F_BA(G(x^B) o phi_af^{B->A}))``.
    """
    return rms(x_b, synth_b_feat_affine) + rms(x_a, synth_a_feat_affine)


def r_reg(x_b: Tensor, synth_b_image_affine: Tensor, x_a: Tensor, synth_a_image_affine: Tensor) -> Tensor:
    """Registration regularisation, Eq. (12):
    ``RMS(x^B, F_AB(G(x^A o phi_af^{A->B}))) + RMS(x^A, F_BA(G(x^B o phi_af^{B->A})))``.
    """
    return rms(x_b, synth_b_image_affine) + rms(x_a, synth_a_image_affine)


def smoothness_weight(ndim: int, num_points: int) -> float:
    """lambda of Eq. (13): ``2^(2n) / (10 N)``, ``n`` the dimensionality and ``N`` the number of
    points of the input image.

    Because ``phi_nr`` lives on a grid 4 times coarser per axis (``N / 4^n`` points), lambda times
    the *summed* bending energy is one tenth of its mean over the feature grid.
    """
    if ndim not in (2, 3) or num_points < 1:
        raise ValueError(f"smoothness_weight: need ndim in (2, 3) and num_points >= 1, got "
                         f"{ndim}, {num_points}")
    return 2.0 ** (2 * ndim) / (10.0 * num_points)


def r_total(syn: Tensor, reg: Tensor, smooth: Tensor, lam: float) -> Tensor:
    """Regularisation, Eq. (13): ``R_syn + R_reg + lambda R_smooth``; ``lam`` is lambda, see
    :func:`smoothness_weight`."""
    return syn + reg + lam * smooth
