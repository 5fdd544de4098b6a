"""Optimisation of FIRE (§3.9)."""

from firereg.training.optimizers import FireOptimizers, build_optimizers
from firereg.training.step import NonFiniteLossError, training_step

__all__ = ["FireOptimizers", "NonFiniteLossError", "build_optimizers", "training_step"]
