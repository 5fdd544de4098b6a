"""Synthesis loss terms, Eqs. (2)-(6) of §3.5."""

from __future__ import annotations

from torch import Tensor

from firereg.losses.rms import rms

__all__ = ["l_syn_acc", "l_syn_fea", "l_syn_cyc", "l_syn_align", "l_syn"]


def l_syn_acc(synth_b_warped: Tensor, x_b: Tensor, synth_a_warped: Tensor, x_a: Tensor) -> Tensor:
    """Synthesis accuracy, Eq. (2): ``RMS(x_hat_T^B, x^B) + RMS(x_hat_T^A, x^A)``.

    ``x_hat_T^B = F_AB(G(x^A) o phi_AB)``, images ``(N, C, *S)``.
    """
    return rms(synth_b_warped, x_b) + rms(synth_a_warped, x_a)


def l_syn_fea(feat_a: Tensor, feat_b_warped: Tensor, feat_b: Tensor, feat_a_warped: Tensor) -> Tensor:
    """Feature (modality-invariance) loss, Eq. (3):
    ``RMS(G(x^A), G(x^B) o phi_BA) + RMS(G(x^B), G(x^A) o phi_AB)``, features ``(N, 4w, *S/4)``.
    """
    return rms(feat_a, feat_b_warped) + rms(feat_b, feat_a_warped)


def l_syn_cyc(cycle_a: Tensor, x_a: Tensor, cycle_b: Tensor, x_b: Tensor) -> Tensor:
    """Cycle consistency, Eq. (4):
    ``RMS(F_BA(G(x_hat^B)), x^A) + RMS(F_AB(G(x_hat^A)), x^B)``, images ``(N, C, *S)``.
    """
    return rms(cycle_a, x_a) + rms(cycle_b, x_b)


def l_syn_align(feat_a: Tensor, feat_synth_b: Tensor, feat_b: Tensor, feat_synth_a: Tensor) -> Tensor:
    """Synthesis alignment, Eq. (5): ``RMS(G(x^A), G(x_hat^B)) + RMS(G(x^B), G(x_hat^A))``."""
    return rms(feat_a, feat_synth_b) + rms(feat_b, feat_synth_a)


def l_syn(acc: Tensor, fea: Tensor, cyc: Tensor, align: Tensor) -> Tensor:
    """Synthesis loss, Eq. (6): the unweighted sum of Eqs. (2)-(5)."""
    return acc + fea + cyc + align
