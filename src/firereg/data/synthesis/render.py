"""Label-driven rendering: a modality's image drawn from a parcel map (SynthMorph/SynthSeg style).

Unlike SynthSeg's uniform random intensities, each parcel is drawn *around its tissue class's
measured intensity* in the modality being rendered (``synth_bank/intensities.json``, measured on
the SPM templates), so that a rendered T1 looks like a T1 and the decoders can still learn a
T1 -> T2 mapping from it. See :class:`~firereg.data.synthesis.config.RenderConfig`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from firereg.data.synthesis.config import RenderConfig
from firereg.spatial.smoothing import gaussian_blur

__all__ = ["ClassIntensities", "render_parcels"]

ClassIntensities = dict[int, tuple[float, float]]
"""Tissue class -> (mean, sd) of one modality, in the template's stored units."""


def _class_table(stats: ClassIntensities, num_classes: int, where: str) -> tuple[Tensor, Tensor]:
    mean = torch.zeros(num_classes, dtype=torch.float64)
    sd = torch.zeros(num_classes, dtype=torch.float64)
    for c in range(num_classes):
        if c not in stats:
            raise ValueError(f"{where}: no measured intensity for tissue class {c}")
        mean[c], sd[c] = stats[c]
    return mean, sd


def render_parcels(parcels: Tensor, parcel_class: Tensor, stats: ClassIntensities, config: RenderConfig,
                   generator: torch.Generator, *, groups: Tensor | None = None,
                   where: str = "render_parcels") -> Tensor:
    """Render one modality from ``parcels`` ``(N, 1, *S)`` int64 (values ``0..P-1``).

    Args:
        parcel_class: ``(P,)`` int64, the tissue class of every parcel value.
        stats: that modality's class intensities; every class in ``parcel_class`` needs one.
        generator: CPU generator; one normal draw per class and one per parcel for every group,
            then one per voxel of every group are taken (in this order).
        groups: ``(N,)`` int64 group of every item (default: each its own); items of one group
            share their class and parcel intensities and their noise (one subject rendered alike
            twice); they must then have one shape.

    Returns:
        ``(N, 1, *S)`` float32 on the parcels' device, in the template's stored units.
    """
    if parcels.dim() < 4 or parcels.shape[1] != 1 or parcels.is_floating_point():
        raise ValueError(f"{where}: parcels must be an integer (N, 1, *S) map, got {parcels.dtype} "
                         f"{tuple(parcels.shape)}")
    n, p = parcels.shape[0], parcel_class.numel()
    num_classes = int(parcel_class.max()) + 1
    mean, sd = _class_table(stats, num_classes, where)
    groups = torch.arange(n) if groups is None else groups.cpu().long()
    n_groups = int(groups.max()) + 1
    z_class = torch.randn((n_groups, num_classes), generator=generator, dtype=torch.float64)[groups]
    z_parcel = torch.randn((n_groups, p), generator=generator, dtype=torch.float64)[groups]
    noise = torch.randn((n_groups, *parcels.shape[1:]), generator=generator)[groups]
    cls = parcel_class.cpu()
    class_mean = mean.view(1, -1) * (1 + config.class_jitter * z_class)  # (n, classes)
    value = class_mean[:, cls] + config.spread * sd[cls].view(1, -1) * z_parcel  # (n, P)
    value = value.clamp_min(0.0).to(device=parcels.device, dtype=torch.float32)
    voxel_sd = (config.noise * sd[cls]).to(device=parcels.device, dtype=torch.float32)
    flat = parcels.flatten(1)
    image = torch.gather(value, 1, flat).view(parcels.shape)
    image = image + voxel_sd[parcels] * noise.to(parcels.device)
    if config.blur > 0:
        image = gaussian_blur(image, config.blur)
    return image.clamp_min(0.0)
