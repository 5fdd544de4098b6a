"""Evaluation metrics."""

from firereg.evaluation.overlap import dice, mean_dice

__all__ = ["dice", "mean_dice"]
