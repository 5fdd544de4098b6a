"""The known-transform term: a departure from the paper (§3.9), for training on synthesized pairs.

Training pairs are co-registered before they are misaligned, so the synthesizer knows, for the
moving image ``x^A``, its partner ``x^A_B`` in modality B under the same geometry. Registered by
the true ``phi_AB``, that partner is the fixed image's clean counterpart ``x^B_clean`` (exactly,
when both images come from one subject and one anatomy; as an intra-modal similarity otherwise).
So

    L_known = RMS(x^A_B o phi_AB, x^B_clean) + RMS(x^B_A o phi_BA, x^A_clean)

is a *same-modality* image term that teaches T_AB and T_BA from the first step, before the
decoders have learned to synthesize anything, and is weighted and annealed to zero so that
Eq. (1) takes over (docs/training.md). It never enters at test time.
"""

from __future__ import annotations

from torch import Tensor

from firereg.losses.rms import rms
from firereg.spatial import warp

__all__ = ["l_known"]

PADDING = "border"  # as the model warps its images


def l_known(phi_ab: Tensor, phi_ba: Tensor, partner_b: Tensor, clean_b: Tensor, partner_a: Tensor,
            clean_a: Tensor) -> Tensor:
    """``RMS(partner_b o phi_ab, clean_b) + RMS(partner_a o phi_ba, clean_a)``, a scalar.

    Args:
        phi_ab, phi_ba: the model's full transforms ``(N, d, *S)`` (normalized units), A onto B
            and B onto A.
        partner_b: ``(N, 1, *S)`` the moving image's co-registered partner in modality B;
            ``clean_b`` the fixed image without appearance changes. ``partner_a``, ``clean_a``:
            the same for the other direction.
    """
    return (rms(warp(partner_b, phi_ab, padding_mode=PADDING), clean_b)
            + rms(warp(partner_a, phi_ba, padding_mode=PADDING), clean_a))
