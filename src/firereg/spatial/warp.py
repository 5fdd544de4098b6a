"""Warping images and label maps by a transform (see :mod:`firereg.spatial.transform`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from firereg.spatial.affine import is_affine
from firereg.spatial.transform import check_transform, sampling_grid

__all__ = ["warp", "warp_labels"]

_MODES = {"linear": "bilinear", "bilinear": "bilinear", "nearest": "nearest"}


def _output_size(image: Tensor, transform: Tensor, size: Sequence[int] | None) -> tuple[int, ...]:
    if size is not None:
        return tuple(int(s) for s in size)
    if is_affine(transform):
        return tuple(image.shape[2:])
    return tuple(transform.shape[2:])


def _check_pair(image: Tensor, transform: Tensor, caller: str) -> None:
    check_transform(transform, caller)
    d = transform.shape[1]
    if not isinstance(image, Tensor) or image.dim() != d + 2:
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"{caller}: a {d}D transform needs an image (N, C, *S) with {d} spatial "
                         f"dims, got {shape}")
    if image.shape[0] != transform.shape[0] and transform.shape[0] != 1:
        raise ValueError(f"{caller}: batch sizes differ, image {image.shape[0]} and transform "
                         f"{transform.shape[0]}")


def warp(
    image: Tensor,
    transform: Tensor,
    size: Sequence[int] | None = None,
    *,
    mode: str = "linear",
    padding_mode: str = "zeros",
) -> Tensor:
    """``image o phi``: sample ``image`` ``(N, C, *S_in)`` at ``phi(p)`` for each output voxel ``p``.

    Args:
        image: ``(N, C, *S_in)``, floating point.
        transform: affine ``(N, d, d+1)`` or displacement ``(N, d, *S)`` (normalized units).
        size: output grid; defaults to the displacement's grid, or the image's for an affine.
            A displacement on another grid is linearly resized first.
        mode: ``"linear"`` (bi/trilinear) or ``"nearest"``.
        padding_mode: ``grid_sample``'s ``"zeros"``, ``"border"`` or ``"reflection"``.

    Returns:
        ``(N, C, *size)``.
    """
    _check_pair(image, transform, "warp")
    if mode not in _MODES:
        raise ValueError(f"warp: mode must be one of {sorted(_MODES)}, got {mode!r}")
    if not image.is_floating_point():
        raise ValueError(f"warp: expected a floating-point image, got {image.dtype}; "
                         "use warp_labels for label maps")
    grid = sampling_grid(transform.to(image.dtype), _output_size(image, transform, size))
    if grid.shape[0] != image.shape[0]:
        grid = grid.expand(image.shape[0], *grid.shape[1:])
    return F.grid_sample(image, grid, mode=_MODES[mode], padding_mode=padding_mode,
                         align_corners=True)


def warp_labels(
    labels: Tensor,
    transform: Tensor,
    size: Sequence[int] | None = None,
    *,
    method: str = "onehot",
) -> Tensor:
    """Warp an integer label map ``(N, 1, *S_in)`` so that every output voxel holds one label.

    ``method="nearest"`` reads the nearest voxel. ``method="onehot"`` (label-aware) interpolates
    each label's indicator linearly and keeps the label with the largest weight, which gives
    smoother boundaries than nearest neighbour and never invents a label. Outside the field of
    view the result is 0 (background).

    Returns:
        ``(N, 1, *size)`` with the dtype of ``labels``.
    """
    _check_pair(labels, transform, "warp_labels")
    if labels.shape[1] != 1:
        raise ValueError(f"warp_labels: expected one label channel (N, 1, *S), got "
                         f"{tuple(labels.shape)}")
    if labels.is_floating_point() and not torch.equal(labels, labels.round()):
        raise ValueError("warp_labels: label values must be integers")
    dtype = transform.dtype if transform.is_floating_point() else torch.float32
    if method == "nearest":
        out = warp(labels.to(dtype), transform, size, mode="nearest")
        return out.round().to(labels.dtype)
    if method != "onehot":
        raise ValueError(f"warp_labels: method must be 'onehot' or 'nearest', got {method!r}")
    values = [v for v in torch.unique(labels).tolist() if v != 0]
    # Background takes the weight of label 0 plus the share of the neighbourhood that falls
    # outside the field of view (zero padding would otherwise hand it to any foreground label).
    best_weight = 1.0 - warp((labels != 0).to(dtype), transform, size, mode="linear")
    best_label = torch.zeros_like(best_weight)
    for value in values:  # one label at a time keeps memory at a few volumes
        weight = warp((labels == value).to(dtype), transform, size, mode="linear")
        better = weight > best_weight
        best_weight = torch.where(better, weight, best_weight)
        best_label = torch.where(better, torch.full_like(weight, float(value)), best_label)
    return best_label.to(labels.dtype)
