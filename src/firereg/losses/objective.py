"""The total FIRE objective, Eq. (1), returning every term by name."""

from __future__ import annotations

import math

from torch import Tensor

from firereg.losses.registration import l_reg, l_reg_acc, l_reg_ic
from firereg.losses.regularization import r_reg, r_smooth, r_syn, r_total, smoothness_weight
from firereg.losses.synthesis import l_syn, l_syn_acc, l_syn_align, l_syn_cyc, l_syn_fea
from firereg.model.fire import FireOutput

__all__ = ["fire_objective", "TERM_NAMES"]

TERM_NAMES = (
    "total", "l_syn", "l_syn_acc", "l_syn_fea", "l_syn_cyc", "l_syn_align",
    "l_reg", "l_reg_acc", "l_reg_ic", "r", "r_syn", "r_reg", "r_smooth", "lambda_r_smooth",
)


def fire_objective(out: FireOutput, x_a: Tensor, x_b: Tensor) -> dict[str, Tensor]:
    """Eq. (1): ``L = L_syn + L_reg + R``, with every term of Eqs. (2)-(13) by name.

    Args:
        out: the model's forward output for the pair.
        x_a, x_b: the inputs ``(N, C, *S)``, normalized to [-1, 1].

    Returns:
        A dict with the keys of :data:`TERM_NAMES`; ``"total"`` is the scalar to minimise and
        ``"lambda_r_smooth"`` is ``lambda * R_smooth`` as it enters ``R``.
    """
    t: dict[str, Tensor] = {}
    t["l_syn_acc"] = l_syn_acc(out.synth_b_warped, x_b, out.synth_a_warped, x_a)
    t["l_syn_fea"] = l_syn_fea(out.feat_a, out.feat_b_warped, out.feat_b, out.feat_a_warped)
    t["l_syn_cyc"] = l_syn_cyc(out.cycle_a, x_a, out.cycle_b, x_b)
    t["l_syn_align"] = l_syn_align(out.feat_a, out.feat_synth_b, out.feat_b, out.feat_synth_a)
    t["l_syn"] = l_syn(t["l_syn_acc"], t["l_syn_fea"], t["l_syn_cyc"], t["l_syn_align"])
    t["l_reg_acc"] = l_reg_acc(out.synth_b_image_warped, x_b, out.synth_a_image_warped, x_a)
    t["l_reg_ic"] = l_reg_ic(x_a, out.image_a_cycle, x_b, out.image_b_cycle)
    t["l_reg"] = l_reg(t["l_reg_acc"], t["l_reg_ic"])
    t["r_syn"] = r_syn(x_b, out.synth_b_feat_affine, x_a, out.synth_a_feat_affine)
    t["r_reg"] = r_reg(x_b, out.synth_b_image_affine, x_a, out.synth_a_image_affine)
    t["r_smooth"] = r_smooth(out.nonrigid_ab, out.nonrigid_ba)
    size = x_a.shape[2:]
    lam = smoothness_weight(len(size), math.prod(size))
    t["lambda_r_smooth"] = lam * t["r_smooth"]
    t["r"] = r_total(t["r_syn"], t["r_reg"], t["r_smooth"], lam)
    t["total"] = t["l_syn"] + t["l_reg"] + t["r"]
    return {name: t[name] for name in TERM_NAMES}
