"""Transforms as sampling maps, and their composition.

A *transform* is either an affine matrix ``(N, d, d+1)`` or a dense displacement field
``(N, d, *S)``, both in normalized coordinates (components in ``grid_sample`` order). It maps a
point ``p`` of the output (fixed) grid to the point ``phi(p)`` at which the moving image is read;
for a displacement ``u`` that is ``phi(p) = p + u(p)``. ``x o phi`` in the paper is "``x`` sampled
at ``phi``".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

from firereg.spatial.affine import affine_grid, apply_affine, compose_affine, is_affine
from firereg.spatial.frames import identity_grid
from firereg.spatial.resample import resize_field

__all__ = [
    "check_transform",
    "sampling_grid",
    "grid_to_displacement",
    "displacement_to_grid",
    "compose",
    "sample_field",
]


def check_transform(t: Tensor, caller: str) -> None:
    """Raise a ``ValueError`` naming ``caller`` unless ``t`` is an affine or a displacement."""
    ok = isinstance(t, Tensor) and (is_affine(t) or (t.dim() in (4, 5) and t.shape[1] == t.dim() - 2))
    if not ok:
        shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(
            f"{caller}: expected an affine (N, d, d+1) or a displacement field (N, d, *S) with "
            f"d = 2 or 3, got {shape}"
        )


def displacement_to_grid(displacement: Tensor) -> Tensor:
    """``(N, d, *S)`` displacement -> ``(N, *S, d)`` sampling grid ``p + u(p)``."""
    size = displacement.shape[2:]
    ident = identity_grid(size, dtype=displacement.dtype, device=displacement.device)
    return ident + displacement.movedim(1, -1)


def grid_to_displacement(grid: Tensor) -> Tensor:
    """``(N, *S, d)`` sampling grid -> ``(N, d, *S)`` displacement ``phi(p) - p``."""
    size = grid.shape[1:-1]
    ident = identity_grid(size, dtype=grid.dtype, device=grid.device)
    return (grid - ident).movedim(-1, 1)


def sampling_grid(transform: Tensor, size: Sequence[int] | None = None) -> Tensor:
    """The points ``phi(p)`` for every voxel ``p`` of a grid, as ``(N, *size, d)``.

    Args:
        transform: affine ``(N, d, d+1)`` or displacement ``(N, d, *S)``.
        size: output grid. Required for an affine; for a displacement it defaults to ``S`` and
            otherwise the field is linearly resized first (feature -> image resolution).
    """
    check_transform(transform, "sampling_grid")
    if is_affine(transform):
        if size is None:
            raise ValueError("sampling_grid: an affine transform needs an output size")
        return affine_grid(transform, size)
    if size is not None and tuple(size) != tuple(transform.shape[2:]):
        transform = resize_field(transform, size)
    return displacement_to_grid(transform)


def sample_field(field: Tensor, grid: Tensor) -> Tensor:
    """Linearly read ``field`` ``(N, C, *S)`` at normalized points ``grid`` ``(N, *P, d)``.

    Outside the field of view the border value is repeated. Returns ``(N, C, *P)``.
    """
    mode = "bilinear"  # grid_sample's "bilinear" is trilinear for 5-D inputs
    return F.grid_sample(field, grid, mode=mode, padding_mode="border", align_corners=True)


def _broadcast_batch(outer: Tensor, inner: Tensor) -> tuple[Tensor, Tensor]:
    """Expand a batch of 1 to the other transform's batch; refuse other mismatches."""
    n_o, n_i = outer.shape[0], inner.shape[0]
    if n_o == n_i:
        return outer, inner
    if n_o == 1:
        return outer.expand(n_i, *outer.shape[1:]), inner
    if n_i == 1:
        return outer, inner.expand(n_o, *inner.shape[1:])
    raise ValueError(f"compose: batch sizes differ, outer {n_o} and inner {n_i}")


def compose(outer: Tensor, inner: Tensor, size: Sequence[int] | None = None) -> Tensor:
    """The transform ``outer o inner``: ``p -> outer(inner(p))``.

    The paper's ``phi = phi_af o phi_nr`` is ``compose(theta, u)``, and ``x o phi_AB o phi_BA``
    is ``x`` warped by ``compose(phi_AB, phi_BA)``.

    Args:
        outer, inner: affine ``(N, d, d+1)`` or displacement ``(N, d, *S)`` each; a batch of 1
            is broadcast to the other's batch.
        size: grid of the result when it is dense. Defaults to the inner field's grid, else the
            outer field's grid.

    Returns:
        ``(N, d, d+1)`` when both are affine (exact), otherwise a displacement ``(N, d, *size)``.
        An affine outer is applied exactly; a dense outer is interpolated linearly at the inner
        points (border values outside the field of view).
    """
    check_transform(outer, "compose")
    check_transform(inner, "compose")
    if outer.shape[1] != inner.shape[1]:
        raise ValueError(
            f"compose: dimensionality mismatch, outer {tuple(outer.shape)} inner {tuple(inner.shape)}"
        )
    outer, inner = _broadcast_batch(outer, inner)
    if is_affine(outer) and is_affine(inner):
        return compose_affine(outer, inner)
    if size is None:
        size = inner.shape[2:] if not is_affine(inner) else outer.shape[2:]
    points = sampling_grid(inner, size)
    if is_affine(outer):
        mapped = apply_affine(outer, points)
    else:
        mapped = points + sample_field(outer, points).movedim(1, -1)
    return grid_to_displacement(mapped)
