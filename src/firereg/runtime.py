"""Process-wide numeric settings for speed on CPUs."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["flush_denormals"]


def flush_denormals() -> None:
    """Treat denormal floats as zero in torch's CPU kernels.

    Once activations or Adam's moments get tiny, denormal arithmetic makes CPU convolutions up to
    3x slower (measured on the development machine: 1.0 s -> 3 s per training step); flushing them
    changes nothing that matters at float32 precision. numpy's float limits are computed first, so
    numpy does not warn that the smallest subnormal became zero.
    """
    for dtype in (np.float16, np.float32, np.float64):
        np.finfo(dtype).smallest_subnormal  # noqa: B018 - computes and caches the limits
    torch.set_flush_denormal(True)
