"""The non-rigid subnetwork T_nr (§3.3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from firereg.nn import ConvBlock, ResBlock, check_ndim, conv

__all__ = ["NonRigidNet"]


class NonRigidNet(nn.Module):
    """T_nr: ``G(x_moving) o phi_af`` and ``G(x_fixed)`` -> displacement ``(N, d, *S/4)``.

    Two parallel branches (a 3^d conv block each, ``w`` channels, own weights) read the affinely
    warped moving features and the fixed features; their outputs are concatenated and pass a
    residual block with instance norm and LeakyReLU, then a 3^d conv to ``d`` channels and a Tanh.
    The result is a displacement in normalized coordinates (components in ``grid_sample`` order),
    on the feature grid. The last conv starts at zero, so the network starts at zero displacement.
    """

    def __init__(self, ndim: int, feature_channels: int, width: int) -> None:
        super().__init__()
        check_ndim(ndim, "NonRigidNet")
        self.moving_branch = ConvBlock(ndim, feature_channels, width, 3, act="leaky")
        self.fixed_branch = ConvBlock(ndim, feature_channels, width, 3, act="leaky")
        self.merge = ResBlock(ndim, 2 * width, act="leaky")
        self.head = conv(ndim, 2 * width, ndim, 3)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, moving_affine_features: Tensor, fixed_features: Tensor) -> Tensor:
        x = torch.cat([self.moving_branch(moving_affine_features),
                       self.fixed_branch(fixed_features)], dim=1)
        return torch.tanh(self.head(self.merge(x)))
