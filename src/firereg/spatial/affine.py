"""Affine transforms in normalized coordinates, as batched ``(N, ndim, ndim+1)`` matrices.

A matrix ``theta = [A | b]`` maps an output (fixed-image) point ``p`` to the point ``A p + b`` at
which the moving image is sampled, both in normalized coordinates, components in ``grid_sample``
order (see :mod:`firereg.spatial.frames`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from firereg.spatial.frames import identity_grid

__all__ = [
    "is_affine",
    "check_affine",
    "identity_affine",
    "to_homogeneous",
    "invert_affine",
    "compose_affine",
    "apply_affine",
    "affine_grid",
]


def is_affine(t: Tensor) -> bool:
    """True when ``t`` has the shape of a batch of affine matrices ``(N, d, d+1)``, d in {2, 3}."""
    return t.dim() == 3 and t.shape[-2] in (2, 3) and t.shape[-1] == t.shape[-2] + 1


def check_affine(theta: Tensor, caller: str) -> None:
    """Raise a ``ValueError`` naming ``caller`` unless ``theta`` is ``(N, d, d+1)``."""
    if not isinstance(theta, Tensor) or not is_affine(theta):
        shape = tuple(theta.shape) if isinstance(theta, Tensor) else type(theta).__name__
        raise ValueError(f"{caller}: expected affine matrices of shape (N, d, d+1), got {shape}")


def identity_affine(
    n: int, ndim: int, *, dtype: torch.dtype = torch.float32, device=None
) -> Tensor:
    """``(n, ndim, ndim+1)`` identity matrices."""
    eye = torch.eye(ndim, ndim + 1, dtype=dtype, device=device)
    return eye.unsqueeze(0).repeat(n, 1, 1)


def to_homogeneous(theta: Tensor) -> Tensor:
    """``(N, d, d+1)`` -> ``(N, d+1, d+1)`` with a last row ``[0 ... 0 1]``."""
    check_affine(theta, "to_homogeneous")
    n, d = theta.shape[0], theta.shape[1]
    last = torch.zeros(n, 1, d + 1, dtype=theta.dtype, device=theta.device)
    last[:, 0, d] = 1.0
    return torch.cat([theta, last], dim=1)


def invert_affine(theta: Tensor) -> Tensor:
    """Exact inverse ``(N, d, d+1)`` of affine matrices ``(N, d, d+1)``."""
    check_affine(theta, "invert_affine")
    a, b = theta[..., :-1], theta[..., -1:]
    a_inv = torch.linalg.inv(a)
    return torch.cat([a_inv, -a_inv @ b], dim=-1)


def compose_affine(outer: Tensor, inner: Tensor) -> Tensor:
    """``outer o inner`` as ``(N, d, d+1)``: the point ``p`` goes to ``outer(inner(p))``."""
    check_affine(outer, "compose_affine")
    check_affine(inner, "compose_affine")
    a_o, b_o = outer[..., :-1], outer[..., -1:]
    a_i, b_i = inner[..., :-1], inner[..., -1:]
    return torch.cat([a_o @ a_i, a_o @ b_i + b_o], dim=-1)


def apply_affine(theta: Tensor, points: Tensor) -> Tensor:
    """Map points ``(N, ..., d)`` (normalized, grid order) through ``theta`` ``(N, d, d+1)``."""
    check_affine(theta, "apply_affine")
    n, d = theta.shape[0], theta.shape[1]
    if points.shape[-1] != d or points.shape[0] not in (1, n):
        raise ValueError(
            f"apply_affine: points {tuple(points.shape)} do not fit affine {tuple(theta.shape)}"
        )
    flat = points.reshape(points.shape[0], -1, d)
    out = flat @ theta[..., :-1].transpose(1, 2) + theta[..., -1].unsqueeze(1)
    return out.reshape(n, *points.shape[1:])


def affine_grid(theta: Tensor, size: Sequence[int]) -> Tensor:
    """Sampling grid ``(N, *size, d)`` of the affine ``theta`` ``(N, d, d+1)`` on a grid ``size``."""
    check_affine(theta, "affine_grid")
    if len(size) != theta.shape[1]:
        raise ValueError(
            f"affine_grid: a {theta.shape[1]}D affine needs a {theta.shape[1]}D size, got {size}"
        )
    grid = identity_grid(size, dtype=theta.dtype, device=theta.device)
    return apply_affine(theta, grid)
