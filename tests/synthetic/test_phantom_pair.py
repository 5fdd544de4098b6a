"""The synthetic phantom pair: labels, contrasts and the known shift are what they claim."""

import pytest
import torch

from firereg.spatial import warp, warp_labels
from firereg.synthetic import make_phantom_pair, phantom_labels
from firereg.synthetic.phantom_pair import CONTRAST_A, CONTRAST_B


def test_labels_and_intensity_ranges():
    pair = make_phantom_pair(size=32)
    assert set(pair.labels_a.unique().tolist()) == {0, 1, 2}
    for image in (pair.x_a, pair.x_b, pair.x_b_aligned):
        assert image.shape == (1, 1, 32, 32)
        assert image.min() >= -1.0 and image.max() <= 1.0
    # away from edges, each label shows its contrast value
    inner = pair.labels_a == 2
    assert abs(float(pair.x_a[inner].max()) - CONTRAST_A[2]) < 0.05
    assert abs(float(pair.x_b_aligned[inner].min()) - CONTRAST_B[2]) < 0.05


def test_the_expected_translation_aligns_a_onto_b():
    pair = make_phantom_pair(size=48, shift=(0.25, 0.0))  # 0.25 * 47 / 2 = 5.875 voxels
    theta = torch.eye(2, 3)[None].clone()
    theta[0, :, 2] = pair.expected_translation
    moved = warp_labels(pair.labels_a, theta)
    agreement = float((moved == pair.labels_b).float().mean())
    assert agreement > 0.98
    assert float((pair.labels_a == pair.labels_b).float().mean()) < 0.9
    # and the aligned-B image moved the same way is close to B
    moved_b = warp(pair.x_b_aligned, theta, padding_mode="border")
    assert float((moved_b - pair.x_b).abs().mean()) < 0.05


def test_too_small_is_refused():
    with pytest.raises(ValueError, match="phantom_labels"):
        phantom_labels(8)
