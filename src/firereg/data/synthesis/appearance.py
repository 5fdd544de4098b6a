"""Per-image appearance randomisation, sampled first and then applied deterministically.

:func:`sample_appearance` draws an :class:`AppearanceParams` (plain tensors, one row per image)
from a CPU generator; :func:`apply_appearance` applies it with no randomness left except the
noise and bias fields, which are drawn from a generator seeded by the params' own ``seed``. So a
batch is replayable from its parameters (DESIGN.md convention 8). The effects and their ranges
are documented on :class:`~firereg.data.synthesis.config.AppearanceConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from firereg.data.synthesis.config import AppearanceConfig
from firereg.data.synthesis.fields import smooth_random_field
from firereg.spatial.smoothing import gaussian_blur

__all__ = ["AppearanceParams", "sample_appearance", "apply_appearance", "normalize_percentiles",
           "PERCENTILES"]

PERCENTILES = (0.5, 99.5)  # as firereg.data.preprocessing.PreprocessConfig
_MAX_QUANTILE_ELEMENTS = 1 << 20


@dataclass(frozen=True)
class AppearanceParams:
    """One row per image; a strength of 0 means the effect is off for that image."""

    bias: Tensor  # (N,) amplitude of the log bias field
    gamma: Tensor  # (N,) log of the gamma exponent
    contrast: Tensor  # (N,)
    blur: Tensor  # (N,) sigma in voxels
    resolution: Tensor  # (N,) downsampling factor (1 = none)
    resolution_axis: Tensor  # (N,) int64 spatial axis
    sharpen: Tensor  # (N,)
    noise: Tensor  # (N,) standard deviation, on the [0, 1] scale
    seed: Tensor  # (N,) int64, seeds the bias and noise fields


def sample_appearance(n: int, ndim: int, config: AppearanceConfig,
                      generator: torch.Generator) -> AppearanceParams:
    """Draw the parameters of ``n`` images (a fixed number of draws, whatever the config)."""
    def effect(p: float, hi: float, lo: float = 0.0, signed: bool = False) -> Tensor:
        on = torch.rand(n, generator=generator) < p
        u = torch.rand(n, generator=generator)
        value = (u * 2 - 1) * hi if signed else lo + u * (hi - lo)
        return torch.where(on, value, torch.full_like(value, lo if not signed else 0.0))

    c = config
    return AppearanceParams(
        bias=effect(c.p_bias, c.bias), gamma=effect(c.p_gamma, c.gamma, signed=True),
        contrast=effect(c.p_contrast, c.contrast, signed=True), blur=effect(c.p_blur, c.blur),
        resolution=effect(c.p_resolution, c.resolution, lo=1.0),
        resolution_axis=torch.randint(ndim, (n,), generator=generator),
        sharpen=effect(c.p_sharpen, c.sharpen), noise=effect(c.p_noise, c.noise),
        seed=torch.randint(0, 2**62, (n,), generator=generator))


def _quantiles(x: Tensor, q: tuple[float, float]) -> tuple[Tensor, Tensor]:
    """Per-item quantiles ``(N,)`` of ``(N, ...)`` (a strided subsample of very large items)."""
    flat = x.flatten(1).float()
    if flat.shape[1] > _MAX_QUANTILE_ELEMENTS:
        flat = flat[:, :: flat.shape[1] // _MAX_QUANTILE_ELEMENTS + 1]
    qs = torch.tensor([q[0] / 100, q[1] / 100], device=x.device, dtype=flat.dtype)
    lo, hi = torch.quantile(flat, qs, dim=1)
    return lo, hi


def normalize_percentiles(x: Tensor, percentiles: tuple[float, float] = PERCENTILES) -> Tensor:
    """Map each item of ``(N, C, *S)`` so that its percentiles go to -1 and +1, clipped, as the
    preprocessing does for a real image (a constant item becomes -1)."""
    lo, hi = _quantiles(x, percentiles)
    shape = (-1,) + (1,) * (x.dim() - 1)
    scale = (hi - lo).clamp_min(1e-8).view(shape)
    return ((x - lo.view(shape)) / scale * 2 - 1).clamp(-1, 1).to(x.dtype)


def _downsample_axis(x: Tensor, axis: int, factor: float) -> Tensor:
    """Average ``(1, C, *S)`` down by ``factor`` along spatial ``axis`` and back up (linear)."""
    size = list(x.shape[2:])
    low = list(size)
    low[axis] = max(2, round(size[axis] / factor))
    mode = "bilinear" if len(size) == 2 else "trilinear"
    down = F.interpolate(x, size=low, mode="area")
    return F.interpolate(down, size=size, mode=mode, align_corners=False)


def apply_appearance(images: Tensor, params: AppearanceParams) -> Tensor:
    """Apply ``params`` to ``images`` ``(N, 1, *S)`` in [-1, 1]; returns ``(N, 1, *S)`` in [-1, 1]."""
    n, d = images.shape[0], images.dim() - 2
    dev, dtype = images.device, images.dtype
    shape = (n,) + (1,) * (d + 1)

    def col(t: Tensor) -> Tensor:
        return t.to(device=dev, dtype=dtype).view(shape)

    x = (images + 1) * 0.5
    x = x + col(params.contrast) * x * (1 - x)
    x = x.clamp(0, 1) ** torch.exp(col(params.gamma))
    out = []
    for i in range(n):
        xi = x[i:i + 1]
        gen = torch.Generator().manual_seed(int(params.seed[i]))
        if float(params.bias[i]) > 0:
            field = smooth_random_field(1, 1, xi.shape[2:], 4, gen, device=dev, dtype=dtype)
            xi = xi * torch.exp(float(params.bias[i]) * field)
        if float(params.blur[i]) > 0:
            xi = gaussian_blur(xi, float(params.blur[i]))
        if float(params.resolution[i]) > 1:
            xi = _downsample_axis(xi, int(params.resolution_axis[i]), float(params.resolution[i]))
        if float(params.sharpen[i]) > 0:
            xi = xi + float(params.sharpen[i]) * (xi - gaussian_blur(xi, 1.0))
        if float(params.noise[i]) > 0:
            sd = float(params.noise[i])
            n1 = torch.randn(xi.shape, generator=gen).to(device=dev, dtype=dtype) * sd
            n2 = torch.randn(xi.shape, generator=gen).to(device=dev, dtype=dtype) * sd
            xi = torch.sqrt((xi + n1) ** 2 + n2**2)
        out.append(xi)
    return normalize_percentiles(torch.cat(out))
