"""The root-mean-square error that almost every FIRE loss term is made of (§3.4)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["rms"]

# sqrt has an infinite slope at 0; the floor keeps the gradient finite at perfect agreement.
_EPS = 1e-12


def rms(a: Tensor, b: Tensor) -> Tensor:
    """``sqrt(mean((a - b)^2))`` over every element, a scalar.

    Inputs are expected normalized (images in [-1, 1], as the decoders' Tanh produces), which is
    what lets the paper add RMS terms without weights. At ``a == b`` the value is ``1e-6``.
    """
    if a.shape != b.shape:
        raise ValueError(f"rms: shapes differ, {tuple(a.shape)} and {tuple(b.shape)}")
    return torch.sqrt(torch.mean((a - b) ** 2).clamp_min(_EPS))
