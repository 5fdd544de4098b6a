"""The affine subnetwork T_af (§3.3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from firereg.nn import ConvBlock, check_ndim

__all__ = ["AffineNet"]


class AffineNet(nn.Module):
    """T_af: features of the moving and fixed images -> affine matrix ``(N, d, d+1)``.

    Input: ``G(x_moving)`` and ``G(x_fixed)``, each ``(N, 4w, *S/4)``, concatenated on channels.
    Three stride-2 conv blocks (kernels 7, 5, 2 as printed in §3.3; LeakyReLU), instance norm in
    the first two, global average pooling, then two dense layers. The last dense layer starts at
    zero weights and the identity as bias, so the network starts at the identity transform.

    The third block has no instance norm: instance norm makes every channel's spatial mean equal
    to its learned shift, so global average pooling right after it would output a constant and
    the affine parameters could not depend on the input. See docs/design.md for the full reading
    of §3.3's layer sizes.
    """

    def __init__(self, ndim: int, feature_channels: int, channels: tuple[int, int, int],
                 kernels: tuple[int, int, int], hidden: int) -> None:
        super().__init__()
        check_ndim(ndim, "AffineNet")
        self.ndim = ndim
        c1, c2, c3 = channels
        k1, k2, k3 = kernels
        self.features = nn.Sequential(
            ConvBlock(ndim, 2 * feature_channels, c1, k1, stride=2, act="leaky"),
            ConvBlock(ndim, c1, c2, k2, stride=2, act="leaky"),
            ConvBlock(ndim, c2, c3, k3, stride=2, norm=False, act="leaky"),
        )
        self.dense = nn.Sequential(
            nn.Linear(c3, hidden),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(hidden, ndim * (ndim + 1)),
        )
        last = self.dense[-1]
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.copy_(torch.eye(ndim, ndim + 1).flatten())

    def forward(self, moving_features: Tensor, fixed_features: Tensor) -> Tensor:
        x = self.features(torch.cat([moving_features, fixed_features], dim=1))
        pooled = x.flatten(2).mean(dim=2)
        return self.dense(pooled).view(-1, self.ndim, self.ndim + 1)
