"""Stationary velocity fields and their exponential by scaling and squaring.

A velocity ``v`` ``(N, d, *S)`` lives in the same normalized units as a displacement. Its
exponential ``exp(v)`` is the displacement ``u`` of the flow of ``v`` at time 1: with
``u_0 = v / 2^K`` and ``u_{k+1} = u_k + u_k o (id + u_k)`` (the map composed with itself),
``u_K`` approximates it. The result is diffeomorphic up to the interpolation error when each
scaled step is small (``|v| / 2^K`` below a voxel), which is why K defaults to 7.
"""

from __future__ import annotations

from torch import Tensor

from firereg.spatial.transform import displacement_to_grid, sample_field

__all__ = ["integrate_velocity", "DEFAULT_SQUARINGS"]

DEFAULT_SQUARINGS = 7


def integrate_velocity(velocity: Tensor, squarings: int = DEFAULT_SQUARINGS) -> Tensor:
    """``exp(v)`` as a displacement ``(N, d, *S)`` on ``v``'s grid (normalized units).

    Args:
        velocity: ``(N, d, *S)``, components in ``grid_sample`` order.
        squarings: K; ``0`` returns ``v`` itself (the small-deformation approximation).
    """
    if velocity.dim() not in (4, 5) or velocity.shape[1] != velocity.dim() - 2:
        raise ValueError(f"integrate_velocity: expected (N, d, *S) with d = 2 or 3, got "
                         f"{tuple(velocity.shape)}")
    if not isinstance(squarings, int) or squarings < 0:
        raise ValueError(f"integrate_velocity: squarings must be an int >= 0, got {squarings!r}")
    u = velocity / (2 ** squarings)
    for _ in range(squarings):
        u = u + sample_field(u, displacement_to_grid(u))
    return u
