"""Evaluation metrics, ANTs baselines to compare with, and the experiments of ``firereg evaluate``.

The ANTs modules (:mod:`firereg.evaluation.ants_io`, :mod:`firereg.evaluation.ants_baselines`)
need the optional ``antspyx`` package and are not imported here. An experiment (docs/evaluation.md)
is :mod:`~firereg.evaluation.experiment_config` (the YAML config), :mod:`~firereg.evaluation.cases`
(the test pairs), :mod:`~firereg.evaluation.runner` (every method on every pair, scored),
:mod:`~firereg.evaluation.tables` (the paper's table layouts), :mod:`~firereg.evaluation.report`
(report.html), :mod:`~firereg.evaluation.outputs` (the files) and
:mod:`~firereg.evaluation.evaluate` (all of it, from config to files).
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
