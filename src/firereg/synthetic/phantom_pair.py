"""A synthetic two-contrast 2D phantom pair with a known translation between the two images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from firereg.spatial import identity_grid

__all__ = ["PhantomPair", "phantom_labels", "render", "make_phantom_pair", "CONTRAST_A",
           "CONTRAST_B"]

# Intensity of (background, outer ellipse, inner ellipse) in the two synthetic "modalities":
# B inverts the inner/outer order of A, as T1 and T2 do for white matter and CSF.
CONTRAST_A = (-1.0, 0.2, 0.9)
CONTRAST_B = (-1.0, 0.8, -0.4)


def phantom_labels(size: int, centre: Sequence[float] = (0.0, 0.0)) -> Tensor:
    """Label map ``(size, size)``: 0 background, 1 an outer ellipse, 2 an off-centre inner one.

    ``centre`` is the phantom's centre in normalized coordinates, ``grid_sample`` order (x, y).
    """
    if size < 12:
        raise ValueError(f"phantom_labels: size must be at least 12, got {size}")
    grid = identity_grid((size, size))[0]
    x, y = grid[..., 0] - centre[0], grid[..., 1] - centre[1]
    labels = torch.zeros(size, size, dtype=torch.long)
    labels[(x / 0.55) ** 2 + (y / 0.7) ** 2 < 1] = 1
    labels[((x - 0.1) / 0.2) ** 2 + ((y + 0.1) / 0.3) ** 2 < 1] = 2
    return labels


def render(labels: Tensor, contrast: Sequence[float], blur_sigma: float = 1.2) -> Tensor:
    """Image ``(1, 1, H, W)`` in [-1, 1]: each label painted with its ``contrast`` value, then a
    Gaussian blur of ``blur_sigma`` voxels (smooth edges give the registration useful gradients)."""
    image = torch.tensor(contrast, dtype=torch.float32)[labels][None, None]
    radius = max(1, int(3 * blur_sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(offsets**2) / (2 * blur_sigma**2))
    kernel = kernel / kernel.sum()
    k = kernel.numel()
    image = F.conv2d(F.pad(image, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, k))
    return F.conv2d(F.pad(image, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, k, 1))


@dataclass
class PhantomPair:
    """A synthetic pair: ``x_a`` (contrast A, centred) and ``x_b`` (contrast B, shifted).

    Attributes:
        x_a, x_b: ``(1, 1, S, S)`` images in [-1, 1].
        x_b_aligned: contrast B on A's geometry, ``(1, 1, S, S)``.
        labels_a, labels_b: ``(1, 1, S, S)`` integer label maps.
        shift: B's centre minus A's, normalized units, ``grid_sample`` order (x, y).
    """

    x_a: Tensor
    x_b: Tensor
    x_b_aligned: Tensor
    labels_a: Tensor
    labels_b: Tensor
    shift: tuple[float, float]

    @property
    def expected_translation(self) -> Tensor:
        """The translation of ``phi_AB`` that aligns A onto B: it reads A at ``p - shift``."""
        return -torch.tensor(self.shift)


def make_phantom_pair(size: int = 32, shift: Sequence[float] = (0.2, -0.15)) -> PhantomPair:
    """Build a :class:`PhantomPair` of ``size x size`` voxels with B's centre moved by ``shift``."""
    labels_a = phantom_labels(size)
    labels_b = phantom_labels(size, shift)
    return PhantomPair(
        x_a=render(labels_a, CONTRAST_A),
        x_b=render(labels_b, CONTRAST_B),
        x_b_aligned=render(labels_a, CONTRAST_B),
        labels_a=labels_a[None, None],
        labels_b=labels_b[None, None],
        shift=(float(shift[0]), float(shift[1])),
    )
