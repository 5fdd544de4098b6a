"""A transformation network T = T_af then T_nr (§3.3); T_AB and T_BA are two instances."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from firereg.config import ModelConfig
from firereg.model.affine_net import AffineNet
from firereg.model.nonrigid_net import NonRigidNet
from firereg.spatial import compose, integrate_velocity, warp

__all__ = ["TransformationNet", "TransformParts"]


@dataclass
class TransformParts:
    """What T predicts for one direction, all in normalized coordinates.

    Attributes:
        affine: ``phi_af`` as ``(N, d, d+1)``.
        nonrigid: ``phi_nr`` as a displacement ``(N, d, *S/4)`` on the feature grid.
        moving_features_affine: ``G(x_moving) o phi_af``, ``(N, 4w, *S/4)``.
    """

    affine: Tensor
    nonrigid: Tensor
    moving_features_affine: Tensor

    def full(self, size=None) -> Tensor:
        """``phi = phi_af o phi_nr`` as a displacement ``(N, d, *size)`` (feature grid by default).

        The non-rigid field is linearly resampled to ``size`` first (end of §3.6).
        """
        return compose(self.affine, self.nonrigid, size)


class TransformationNet(nn.Module):
    """T: ``(G(x_moving), G(x_fixed))`` -> :class:`TransformParts`.

    The affine subnet sees both feature maps; the non-rigid subnet sees the moving features after
    the affine warp, and the fixed features.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c = config
        self.affine = AffineNet(c.ndim, c.feature_channels, c.resolved_affine_channels,
                                c.affine_kernels, c.resolved_affine_hidden,
                                pooling=c.affine_pooling)
        self.nonrigid = NonRigidNet(c.ndim, c.feature_channels, c.width)
        self.diffeomorphic = c.diffeomorphic

    def forward(self, moving_features: Tensor, fixed_features: Tensor,
                affine: Tensor | None = None) -> TransformParts:
        """``affine``: a given ``phi_af`` ``(N, d, d+1)`` in place of the affine subnet's (the
        non-rigid subnet then predicts the residual of that matrix, e.g. after the image-space
        affine stage of refinement, :mod:`firereg.inference.image_affine`)."""
        theta = self.affine(moving_features, fixed_features) if affine is None else affine
        moved = warp(moving_features, theta, padding_mode="border")
        displacement = self.nonrigid(moved, fixed_features)
        if self.diffeomorphic:  # the head's output is a velocity; phi_nr = exp(v)
            displacement = integrate_velocity(displacement)
        return TransformParts(affine=theta, nonrigid=displacement, moving_features_affine=moved)
