"""Image-space affine refinement, coarse to fine: the first stage of ``register --refine``.

The network's affine ``theta_AB`` is a good start on a brain like its training brains and a poor
one on a brain it has never seen (docs/results.md, "Held-out brains": its endpoint error was 3-6x
ANTs-affine's). The feature-space refinement (:mod:`firereg.inference.refine`) cannot repair that:
its similarity is the network's own, learned on the same training brains. This stage therefore
optimises the affine matrix on the *images*, as ANTs' affine stage does, starting from the
network's estimate:

    theta = theta_net o (I + delta),  delta maximising  S(x^B, x^A o theta)

with ``S`` the Parzen mutual information across modalities or the correlation coefficient within
one (:mod:`firereg.losses.similarity`), on a pyramid of grids (each level the images smoothed and
resampled by ``1/factor``), Adam on the ``d (d+1)`` entries of ``delta``. ``delta`` acts in the
fixed image's normalized frame, so its linear part turns and scales about the fixed grid's centre.

The finest level is the model grid, or a coarser grid of at most ``max_voxels`` voxels for a large
3D grid (the other levels are coarser still). Safeguard: the result is kept only if it scores
better than the network's matrix on the finest level; otherwise the network's matrix is returned
unchanged (``report["kept"]`` says which).

Frames: every matrix is ``(1, d, d+1)`` in normalized coordinates, fixed -> moving, as the
network's (:mod:`firereg.spatial.affine`); images ``(1, 1, *S)`` on the model grid in [-1, 1].
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from firereg.losses.similarity import correlation, mutual_information
from firereg.spatial.affine import compose_affine, identity_affine
from firereg.spatial.smoothing import gaussian_blur
from firereg.spatial.warp import warp

__all__ = ["ImageAffineConfig", "METRICS", "refine_affine_image", "metric_for", "base_scale"]

METRICS = ("mi", "ncc")
"""``mi``: mutual information (different modalities); ``ncc``: correlation coefficient (one)."""


def metric_for(moving_modality: str | None, fixed_modality: str | None) -> str:
    """The stage's metric for a modality pair: ``ncc`` when both are named and equal, else ``mi``."""
    same = (moving_modality is not None and fixed_modality is not None
            and moving_modality.casefold() == fixed_modality.casefold())
    return "ncc" if same else "mi"


@dataclass(frozen=True)
class ImageAffineConfig:
    """Settings of :func:`refine_affine_image`.

    Attributes:
        metric: one of :data:`METRICS`.
        factors: the pyramid's downsampling factors, coarse to fine (1: the model grid).
        steps: Adam steps per level (one per factor).
        lr: Adam's first step size on ``delta`` at each level (normalized units: 0.01 is 1% scale
            or 0.5% of the field of view); it falls linearly to ``lr / 10`` over the level.
        max_voxels: the finest level has at most this many voxels (a 2 mm 3D brain, 92x112x92,
            is scored at about half its resolution): an affine matrix needs no finer detail, and
            each step costs in proportion to the voxels.
        bins: histogram bins of the mutual information. The Parzen window is one bin wide, so
            fewer bins smooth the histogram more, and that biases the optimum: on the synthetic
            test head 32 bins left a 0.35% scale error where 64 left 0.04%.
    """

    metric: str = "mi"
    factors: tuple[int, ...] = (4, 2, 1)
    steps: tuple[int, ...] = (80, 40, 20)
    lr: float = 0.01
    bins: int = 64
    max_voxels: int = 2**17

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"image affine: metric must be one of {list(METRICS)}, got {self.metric!r}")
        factors, steps = tuple(self.factors), tuple(self.steps)
        if not factors or len(factors) != len(steps):
            raise ValueError(f"image affine: factors {factors} and steps {steps} must be non-empty "
                             "and of one length")
        if any(not isinstance(f, int) or f < 1 for f in factors):
            raise ValueError(f"image affine: factors must be ints >= 1, got {factors}")
        if any(not isinstance(s, int) or s < 0 for s in steps):
            raise ValueError(f"image affine: steps must be ints >= 0, got {steps}")
        if not self.lr > 0:
            raise ValueError(f"image affine: lr must be > 0, got {self.lr!r}")
        if not isinstance(self.max_voxels, int) or self.max_voxels < 512:
            raise ValueError(f"image affine: max_voxels must be an int >= 512, got {self.max_voxels!r}")
        if not isinstance(self.bins, int) or self.bins < 4:
            raise ValueError(f"image affine: bins must be an int >= 4, got {self.bins!r}")
        object.__setattr__(self, "factors", factors)
        object.__setattr__(self, "steps", steps)


def base_scale(shape: tuple[int, ...], max_voxels: int) -> float:
    """The finest level's downsampling of a model grid ``shape``: 1, or more so that it has at most
    ``max_voxels`` voxels."""
    voxels = math.prod(shape)
    return 1.0 if voxels <= max_voxels else (voxels / max_voxels) ** (1.0 / len(shape))


def _level(image: Tensor, factor: float) -> Tensor:
    """``image`` (1, 1, *S) in [0, 1], smoothed (sigma factor/2 voxels) and resampled by 1/factor."""
    if factor <= 1.0:
        return image
    size = [max(8, round(n / factor)) for n in image.shape[2:]]
    smooth = gaussian_blur(image, 0.5 * factor)
    mode = "bilinear" if image.dim() == 4 else "trilinear"
    return F.interpolate(smooth, size=size, mode=mode, align_corners=True)


def _score(moving: Tensor, fixed: Tensor, theta: Tensor, config: ImageAffineConfig) -> Tensor:
    """``S(fixed, moving o theta)`` over the fixed voxels that ``theta`` maps inside the moving grid.

    The mask is hard (as ANTs drops the points that map outside the moving image): a soft one, the
    warped ones image, would count the edge voxels whose zero-padded values are attenuated, and the
    optimum would shrink the image away from its field of view's edge.
    """
    moved = warp(moving, theta, fixed.shape[2:], padding_mode="zeros")
    with torch.no_grad():
        inside = warp(torch.ones_like(moving), theta, fixed.shape[2:], padding_mode="zeros")
        inside = (inside > 0.999).to(moved.dtype)
    if config.metric == "mi":
        return mutual_information(moved, fixed, inside, bins=config.bins)[0]
    return correlation(moved, fixed, inside)[0]


def refine_affine_image(moving: Tensor, fixed: Tensor, theta: Tensor,
                        config: ImageAffineConfig | None = None) -> tuple[Tensor, dict]:
    """Refine the affine ``theta`` (1, d, d+1) of ``moving`` onto ``fixed`` on the images.

    Args:
        moving, fixed: ``(1, 1, *S)`` preprocessed images on the model grid, intensities in [-1, 1].
        theta: the network's fixed -> moving matrix, normalized coordinates.

    Returns:
        The refined matrix (or ``theta`` itself when it did not score better) and a report: the
        metric, the score before and after on the model grid, steps per level, seconds, kept.
    """
    config = config or ImageAffineConfig()
    start = time.perf_counter()
    if moving.dim() != theta.shape[1] + 2 or moving.shape[:2] != (1, 1) or fixed.shape[:2] != (1, 1):
        raise ValueError(f"refine_affine_image: expected (1, 1, *S) images matching a "
                         f"{theta.shape[1]}D affine, got {tuple(moving.shape)} and {tuple(fixed.shape)}")
    theta0 = theta.detach().to(torch.float32)
    ndim = theta0.shape[1]
    # [-1, 1] -> [0, 1]: outside the field of view (zeros padding) reads as the background
    m01, f01 = ((x.detach().to(torch.float32) + 1.0) * 0.5 for x in (moving, fixed))
    delta = torch.zeros(1, ndim, ndim + 1, requires_grad=True)
    eye = identity_affine(1, ndim)
    done = []
    base = base_scale(tuple(fixed.shape[2:]), config.max_voxels)
    with torch.enable_grad():
        for factor, steps in zip(config.factors, config.steps, strict=True):
            m_level, f_level = _level(m01, factor * base), _level(f01, factor * base)
            optimizer = torch.optim.Adam([delta], lr=config.lr)
            for step in range(steps):
                # the step size falls linearly to a tenth over each level, so Adam settles at the
                # level's optimum instead of jittering about it by ~lr
                optimizer.param_groups[0]["lr"] = config.lr * (1.0 - 0.9 * step / max(steps, 1))
                optimizer.zero_grad(set_to_none=True)
                loss = -_score(m_level, f_level, compose_affine(theta0, eye + delta), config)
                if not torch.isfinite(loss):
                    break
                loss.backward()
                optimizer.step()
            done.append(steps)
    with torch.no_grad():
        refined = compose_affine(theta0, eye + delta.detach())
        m_fine, f_fine = _level(m01, base), _level(f01, base)
        before = float(_score(m_fine, f_fine, theta0, config))
        after = float(_score(m_fine, f_fine, refined, config))
    kept = bool(after > before and torch.isfinite(refined).all())
    report = {"metric": config.metric, "score_before": before, "score_after": after,
              "kept": kept, "factors": list(config.factors), "steps": done, "finest_scale": base,
              "seconds": time.perf_counter() - start}
    return (refined if kept else theta0).to(theta.dtype), report
