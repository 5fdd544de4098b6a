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

    ``pooling="moments"`` (not in the paper) also pools ``f * x_i`` for each normalized
    coordinate ``x_i`` of the last feature grid, so the pooled vector is ``c3 * (1 + d)`` long.
    Plain averaging discards where a feature fired; a rotation or scaling moves features in
    opposite directions on opposite sides of the image, which the mean cannot see.
    """

    def __init__(self, ndim: int, feature_channels: int, channels: tuple[int, int, int],
                 kernels: tuple[int, int, int], hidden: int, pooling: str = "mean") -> None:
        super().__init__()
        check_ndim(ndim, "AffineNet")
        self.ndim = ndim
        if pooling not in ("mean", "moments"):
            raise ValueError(f"pooling must be 'mean' or 'moments', got {pooling!r}")
        self.pooling = pooling
        c1, c2, c3 = channels
        k1, k2, k3 = kernels
        self.features = nn.Sequential(
            ConvBlock(ndim, 2 * feature_channels, c1, k1, stride=2, act="leaky"),
            ConvBlock(ndim, c1, c2, k2, stride=2, act="leaky"),
            ConvBlock(ndim, c2, c3, k3, stride=2, norm=False, act="leaky"),
        )
        self.dense = nn.Sequential(
            nn.Linear(c3 * (1 + ndim) if pooling == "moments" else c3, hidden),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(hidden, ndim * (ndim + 1)),
        )
        last = self.dense[-1]
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.copy_(torch.eye(ndim, ndim + 1).flatten())

    def forward(self, moving_features: Tensor, fixed_features: Tensor) -> Tensor:
        x = self.features(torch.cat([moving_features, fixed_features], dim=1))
        pooled = self._pool(x)
        return self.dense(pooled).view(-1, self.ndim, self.ndim + 1)

    def _pool(self, x: Tensor) -> Tensor:
        """``(N, C, *S)`` -> ``(N, C)`` means, or ``(N, C * (1 + d))`` with coordinate moments."""
        flat = x.flatten(2)
        mean = flat.mean(dim=2)
        if self.pooling == "mean":
            return mean
        axes = [torch.linspace(-1.0, 1.0, s, device=x.device, dtype=x.dtype) for s in x.shape[2:]]
        coords = torch.stack(torch.meshgrid(*axes, indexing="ij")).flatten(1)  # (d, prod(S))
        moments = torch.einsum("ncp,dp->ncd", flat, coords) / flat.shape[2]
        return torch.cat([mean, moments.flatten(1)], dim=1)
