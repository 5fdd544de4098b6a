"""Every loss term of §3.5-3.7, one pure function each, and the total objective of Eq. (1)."""

from firereg.losses.objective import TERM_NAMES, fire_objective
from firereg.losses.registration import l_reg, l_reg_acc, l_reg_ic
from firereg.losses.regularization import (
    bending_energy,
    r_reg,
    r_smooth,
    r_syn,
    r_total,
    smoothness_weight,
)
from firereg.losses.rms import rms
from firereg.losses.supervision import l_known
from firereg.losses.synthesis import l_syn, l_syn_acc, l_syn_align, l_syn_cyc, l_syn_fea

__all__ = ["TERM_NAMES", "bending_energy", "fire_objective", "l_reg", "l_reg_acc", "l_reg_ic",
           "l_known", "l_syn", "l_syn_acc", "l_syn_align", "l_syn_cyc", "l_syn_fea", "r_reg", "r_smooth",
           "r_syn", "r_total", "rms", "smoothness_weight"]
