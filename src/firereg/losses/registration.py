"""Registration loss terms, Eqs. (7)-(9) of §3.6."""

from __future__ import annotations

from torch import Tensor

from firereg.losses.rms import rms

__all__ = ["l_reg_acc", "l_reg_ic", "l_reg"]


def l_reg_acc(synth_b_image_warped: Tensor, x_b: Tensor,
              synth_a_image_warped: Tensor, x_a: Tensor) -> Tensor:
    """Registration accuracy, Eq. (7), read as the text of §3.6 and §3.9 intend:
    ``RMS(F_AB(G(x^A o phi_AB)), x^B) + RMS(F_BA(G(x^B o phi_BA)), x^A)``.

    As printed, Eq. (7) warps the features and so repeats Eq. (2); §3.6 ("the synthesized image
    obtained from a transformed x^A") and §3.9 ("computing L_reg requires to input the transformed
    images into G") say the *image* is warped first, as in Eq. (12). Images ``(N, C, *S)``.
    """
    return rms(synth_b_image_warped, x_b) + rms(synth_a_image_warped, x_a)


def l_reg_ic(x_a: Tensor, image_a_cycle: Tensor, x_b: Tensor, image_b_cycle: Tensor) -> Tensor:
    """Inverse consistency, Eq. (8):
    ``RMS(x^A, x^A o phi_AB o phi_BA) + RMS(x^B, x^B o phi_BA o phi_AB)``.

    ``image_a_cycle`` is ``x^A`` resampled once by the composed transform
    ``compose(phi_AB, phi_BA)``. Images ``(N, C, *S)``.
    """
    return rms(x_a, image_a_cycle) + rms(x_b, image_b_cycle)


def l_reg(acc: Tensor, ic: Tensor) -> Tensor:
    """Registration loss, Eq. (9): ``L_reg,acc + L_reg,ic``."""
    return acc + ic
