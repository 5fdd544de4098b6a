"""Mutual information and the correlation coefficient (firereg.losses.similarity)."""

import pytest
import torch

from firereg.losses.similarity import correlation, mutual_information
from firereg.spatial.smoothing import gaussian_blur


def _image(seed: int, size: int = 48) -> torch.Tensor:
    """A smooth random image (1, 1, size, size) rescaled to [0, 1] (synthetic)."""
    g = torch.Generator().manual_seed(seed)
    x = gaussian_blur(torch.rand(1, 1, size, size, generator=g), 3.0)
    return (x - x.min()) / (x.max() - x.min())


def test_correlation_of_a_linear_map_is_one_and_of_a_negation_minus_one():
    a, w = _image(0), torch.ones(1, 1, 48, 48)
    assert correlation(a, 0.3 * a + 0.2, w).item() == pytest.approx(1.0, abs=1e-5)
    assert correlation(a, 1.0 - a, w).item() == pytest.approx(-1.0, abs=1e-5)


def test_correlation_ignores_voxels_of_zero_weight():
    a, b = _image(0), _image(1)
    w = torch.zeros(1, 1, 48, 48)
    w[..., :24] = 1.0
    b_changed = b.clone()
    b_changed[..., :24] = 0.5 * a[..., :24] + 0.1  # equal to a linear map of a where w = 1
    assert correlation(a, b_changed, w).item() == pytest.approx(1.0, abs=1e-5)


def test_mutual_information_is_largest_for_a_monotone_remap_and_near_zero_for_independent_images():
    a, w = _image(0), torch.ones(1, 1, 48, 48)
    remapped = 1.0 - a**2  # another "modality" of the same anatomy
    shifted = torch.roll(remapped, 6, dims=-1)
    independent = torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(5))
    mi_same, mi_shift, mi_ind = (mutual_information(a, b, w).item()
                                 for b in (remapped, shifted, independent))
    assert mi_same > mi_shift > mi_ind
    assert mi_ind < 0.1 * mi_same
    assert mi_same > 1.0  # nats: a near one-to-one joint histogram


def test_mutual_information_is_symmetric_and_per_batch_element():
    a, b = torch.cat([_image(0), _image(2)]), torch.cat([_image(1), _image(0)])
    w = torch.ones_like(a)
    ab, ba = mutual_information(a, b, w), mutual_information(b, a, w)
    assert ab.shape == (2,)
    assert torch.allclose(ab, ba, atol=1e-4)


def test_mutual_information_has_a_gradient_in_the_image():
    a, b = _image(0), _image(0).requires_grad_(True)
    mutual_information(a, torch.roll(b, 3, dims=-1), torch.ones_like(a)).backward()
    assert b.grad is not None and b.grad.abs().sum() > 0


def test_shapes_and_bins_are_checked():
    a = _image(0)
    with pytest.raises(ValueError, match="one shape"):
        correlation(a, a[..., :10], torch.ones_like(a))
    with pytest.raises(ValueError, match="bins"):
        mutual_information(a, a, torch.ones_like(a), bins=2)
