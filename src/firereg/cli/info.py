"""``firereg info``: what a FIRE architecture costs, part by part."""

from __future__ import annotations

import math
from collections.abc import Sequence

from firereg.config import ModelConfig
from firereg.losses import smoothness_weight
from firereg.model import MIN_SIZE, FireModel

__all__ = ["model_summary"]


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def model_summary(ndim: int = 2, width: int = 64, size: Sequence[int] | None = None) -> str:
    """A table of parameter counts per part and optimizer group, with grid sizes and lambda."""
    size = tuple(size) if size else ((96, 112) if ndim == 2 else (96, 112, 96))
    if len(size) != ndim:
        raise ValueError(f"--size needs {ndim} values for a {ndim}D model, got {len(size)}")
    bad = [s for s in size if s % 4 or s < MIN_SIZE]
    if bad:
        raise ValueError(f"--size: every size must be a multiple of 4 and at least {MIN_SIZE}, got "
                         f"{size}")
    config = ModelConfig(ndim=ndim, width=width)
    model = FireModel(config)
    rows = [
        ("G (encoder)", _count(model.encoder)),
        ("F_AB (decoder)", _count(model.decoder_ab)),
        ("F_BA (decoder)", _count(model.decoder_ba)),
        ("T_AB affine (T_af)", _count(model.transform_ab.affine)),
        ("T_AB non-rigid (T_nr)", _count(model.transform_ab.nonrigid)),
        ("T_BA affine (T_af)", _count(model.transform_ba.affine)),
        ("T_BA non-rigid (T_nr)", _count(model.transform_ba.nonrigid)),
    ]
    groups = {name: sum(p.numel() for p in params)
              for name, params in model.parameter_groups().items()}
    inference = _count(model.encoder) + _count(model.transform_ab)
    n = math.prod(size)
    feat = tuple(s // 4 for s in size)
    lines = [f"FIRE {ndim}D, width {width} (paper: 64)", ""]
    lines += [f"  {name:<24}{count:>12,}" for name, count in rows]
    lines += [f"  {'total':<24}{_count(model):>12,}", "",
              "Optimizer groups (§3.9):"]
    lrs = {"affine": "1e-5", "nonrigid": "5e-5", "synthesis": "1e-4"}
    lines += [f"  {name:<24}{count:>12,}   lr {lrs[name]}" for name, count in groups.items()]
    lines += ["",
              f"Inference (G + one T, §3.4): {inference:,} parameters",
              f"Input grid {size} -> feature grid {feat} ({4 * width} channels)",
              f"T_af channels {config.resolved_affine_channels}, kernels {config.affine_kernels}, "
              f"dense {config.resolved_affine_hidden} -> {ndim * (ndim + 1)}",
              f"lambda of Eq. (13) = 2^(2n)/(10 N) = {smoothness_weight(ndim, n):.3e} (N = {n:,})"]
    return "\n".join(lines)
