"""Evaluation metrics, and ANTs baselines to compare with.

The ANTs modules (:mod:`firereg.evaluation.ants_io`, :mod:`firereg.evaluation.ants_baselines`)
need the optional ``antspyx`` package and are not imported here.
"""

from firereg.evaluation.deformation import (
    folding_percent,
    inverse_consistency_mm,
    jacobian_determinant_mm,
    log_jacobian_std,
)
from firereg.evaluation.overlap import dice, mean_dice
from firereg.evaluation.surface import hausdorff95_mm, hausdorff95_per_label

__all__ = [
    "dice", "folding_percent", "hausdorff95_mm", "hausdorff95_per_label", "inverse_consistency_mm",
    "jacobian_determinant_mm", "log_jacobian_std", "mean_dice",
]
