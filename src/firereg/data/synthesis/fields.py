"""Random smooth fields: anatomy deformations and intensity bias, batched, on any device.

The random numbers are drawn from a CPU ``torch.Generator`` (so a draw is the same on every
device), then moved to the target device, where the dense field is built.

Frames: displacements ``(N, d, *S)`` in normalized units ``[-1, 1]`` (``align_corners=True``),
components in ``grid_sample`` order (component 0 along the LAST array axis), as everywhere in
firereg; a displacement ``u`` is read as the sampling map ``p -> p + u(p)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from firereg.data.synthesis.config import AnatomyConfig
from firereg.spatial import compose, identity_affine, resize_image
from firereg.spatial.smoothing import gaussian_blur

__all__ = ["smooth_random_field", "random_anatomy"]

# Control nodes are refined this many times and blurred before the field is resized to the
# image, so that the field is smooth (not piecewise linear) between the nodes.
_REFINE = 4


def smooth_random_field(n: int, channels: int, size: Sequence[int], control_points: int,
                        generator: torch.Generator, *, device: torch.device | str | None = None,
                        dtype: torch.dtype = torch.float32) -> Tensor:
    """``(n, channels, *size)`` smooth random values in [-1, 1]: uniform values on a control grid
    of ``control_points`` per axis, refined, blurred (sigma one control spacing / 2) and resized."""
    d = len(size)
    control = torch.rand((n, channels, *[control_points] * d), generator=generator) * 2 - 1
    fine = [(control_points - 1) * _REFINE + 1] * d
    field = resize_image(control.to(device=device, dtype=dtype), fine)
    field = gaussian_blur(field, 0.5 * _REFINE)
    field = field / field.flatten(1).abs().amax(dim=1).clamp_min(1e-6).view(n, *[1] * (d + 1))
    return resize_image(field, [int(s) for s in size])


def random_anatomy(n: int, size: Sequence[int], config: AnatomyConfig, generator: torch.Generator,
                   *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                   strength: Tensor | None = None) -> Tensor:
    """``n`` random anatomy deformations as displacements ``(n, d, *size)`` (normalized units).

    Each is ``S o (id + u)``: a per-axis scaling ``S`` about the centre (head size, log-uniform in
    ``[1/(1+scaling), 1+scaling]``) after a smooth displacement ``u`` whose largest component is
    uniform in ``[0, max_displacement]`` of the field of view (2 normalized units). An item is the
    identity with probability ``1 - p``. ``strength`` ``(n,)`` in [0, 1] scales each item (None: 1).
    All draws are made, in this order, whatever ``p`` says, so the stream stays aligned.
    """
    d = len(size)
    on = (torch.rand(n, generator=generator) < config.p).to(torch.float64)
    amplitude = torch.rand(n, generator=generator, dtype=torch.float64) * config.max_displacement * 2.0
    log_scale = torch.rand((n, d), generator=generator, dtype=torch.float64) * 2 - 1
    log_scale = log_scale * math.log1p(config.scaling)
    k = on if strength is None else on * strength.to(torch.float64)
    u = smooth_random_field(n, d, size, config.control_points, generator, device=device, dtype=dtype)
    u = u * (amplitude * k).to(device=device, dtype=dtype).view(n, *[1] * (d + 1))
    theta = identity_affine(n, d, dtype=torch.float64)
    theta[:, :, :d] = torch.diag_embed(torch.exp(log_scale * k.view(n, 1)))
    return compose(theta.to(device=device, dtype=dtype), u)
