"""Optimisation of FIRE (§3.9)."""

from firereg.training.optimizers import FireOptimizers, build_optimizers
from firereg.training.pair_curriculum import fit_pair
from firereg.training.step import NonFiniteLossError, training_step

__all__ = ["FireOptimizers", "NonFiniteLossError", "build_optimizers", "fit_pair", "training_step"]
