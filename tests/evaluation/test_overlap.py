"""Dice against hand-computed values."""

import pytest
import torch

from firereg.evaluation import dice, mean_dice


def test_dice_of_known_overlaps():
    a = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    b = torch.zeros_like(a)
    a[..., 0:2, :] = 1  # 8 voxels
    b[..., 1:3, :] = 1  # 8 voxels, 4 shared
    a[..., 3, 0] = 2
    scores = dice(a, b, (1, 2, 3))
    assert scores[1] == pytest.approx(2 * 4 / 16)
    assert scores[2] == 0.0  # only in a
    assert scores[3] == 1.0  # in neither
    assert mean_dice(a, a, (1, 2)) == 1.0
    assert mean_dice(a, b, (1, 2)) == pytest.approx(0.25)


def test_shape_mismatch_and_empty_label_list_are_refused():
    with pytest.raises(ValueError, match="shape"):
        dice(torch.zeros(2, 2), torch.zeros(2, 3), (1,))
    with pytest.raises(ValueError, match="no labels"):
        mean_dice(torch.zeros(2, 2), torch.zeros(2, 2), ())
