"""Label overlap."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

__all__ = ["dice", "mean_dice"]


def dice(a: Tensor, b: Tensor, labels: Iterable[int]) -> dict[int, float]:
    """Dice ``2|A and B| / (|A| + |B|)`` of each label value between two label maps of one shape.

    A label absent from both maps scores 1 (nothing to disagree on).
    """
    if a.shape != b.shape:
        raise ValueError(f"dice: label maps differ in shape, {tuple(a.shape)} and {tuple(b.shape)}")
    scores = {}
    for k in labels:
        in_a, in_b = a == k, b == k
        total = int(in_a.sum()) + int(in_b.sum())
        scores[int(k)] = 1.0 if total == 0 else 2.0 * int((in_a & in_b).sum()) / total
    return scores


def mean_dice(a: Tensor, b: Tensor, labels: Iterable[int]) -> float:
    """Mean of :func:`dice` over ``labels``."""
    scores = dice(a, b, labels)
    if not scores:
        raise ValueError("mean_dice: no labels given")
    return float(torch.tensor(list(scores.values())).mean())
