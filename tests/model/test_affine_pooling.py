"""T_af's pooling: the paper's global mean, and the coordinate moments that also see position."""

import pytest
import torch

from firereg.config import ConfigError, ModelConfig
from firereg.model import FireModel
from firereg.model.affine_net import AffineNet


def _net(pooling: str, ndim: int = 2) -> AffineNet:
    return AffineNet(ndim, feature_channels=2, channels=(4, 4, 4), kernels=(3, 3, 2), hidden=8,
                     pooling=pooling)


def test_moments_of_a_shifted_blob_change_sign_while_the_mean_does_not() -> None:
    net = _net("moments")
    x = torch.zeros(2, 3, 8, 8)
    x[0, :, 2, 1] = 1.0  # left / top
    x[1, :, 5, 6] = 1.0  # mirrored position
    pooled = net._pool(x)
    assert pooled.shape == (2, 3 * 3)
    torch.testing.assert_close(pooled[0, :3], pooled[1, :3])  # same mean
    # coordinate moments: axis 0 at -1 + 2*2/7 vs -1 + 2*5/7, which are negatives of each other
    torch.testing.assert_close(pooled[0, 3:].view(3, 2), -pooled[1, 3:].view(3, 2))
    assert pooled[0, 3].item() == pytest.approx((-1 + 4 / 7) / 64)


def test_mean_pooling_is_position_blind() -> None:
    net = _net("mean")
    x = torch.zeros(2, 3, 8, 8)
    x[0, :, 2, 1] = 1.0
    x[1, :, 5, 6] = 1.0
    pooled = net._pool(x)
    assert pooled.shape == (2, 3)
    torch.testing.assert_close(pooled[0], pooled[1])


@pytest.mark.parametrize("ndim", [2, 3])
def test_moments_model_starts_at_the_identity(ndim: int) -> None:
    config = ModelConfig(ndim=ndim, width=4, affine_pooling="moments", affine_channels=(4, 8, 8))
    model = FireModel(config)
    size = (20,) * ndim
    a, b = torch.randn(1, 1, *size), torch.randn(1, 1, *size)
    theta = model.transform_ab.affine(model.encoder(a), model.encoder(b))
    torch.testing.assert_close(theta[0], torch.eye(ndim, ndim + 1))
    assert model.transform_ab.affine.dense[0].in_features == 8 * (1 + ndim)


def test_unknown_pooling_is_refused() -> None:
    with pytest.raises(ConfigError, match="affine_pooling"):
        ModelConfig(affine_pooling="max")
