"""Writing and reading transforms in the files ITK and ANTs use.

* ``affine.mat``: ITK's MATLAB v4 transform file, variables ``AffineTransform_double_D_D`` (the
  ``D x D`` matrix row by row, then the translation) and ``fixed`` (the centre, 0 here), the format
  ``antsRegistration`` writes.
* ``warp.nii.gz``: a displacement field in LPS millimetres on the fixed grid, 5D NIfTI with
  intent ``vector`` (see :func:`firereg.data.io.write_displacement_field`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from firereg.atomic import atomic_output

__all__ = ["write_itk_affine", "read_itk_affine"]


def write_itk_affine(matrix: np.ndarray, path: str | Path) -> Path:
    """Write a ``(d+1, d+1)`` physical (LPS) affine, fixed -> moving points, as an ITK .mat file."""
    m = np.asarray(matrix, dtype=np.float64)
    d = m.shape[0] - 1
    if m.shape != (d + 1, d + 1) or d not in (2, 3):
        raise ValueError(f"write_itk_affine: expected a 3x3 or 4x4 matrix, got {m.shape}")
    params = np.concatenate([m[:d, :d].reshape(-1), m[:d, d]]).reshape(-1, 1)
    path = Path(path)
    with atomic_output(path, ".mat") as tmp:
        scipy.io.savemat(str(tmp), {f"AffineTransform_double_{d}_{d}": params,
                                    "fixed": np.zeros((d, 1))}, format="4")
    return path


def read_itk_affine(path: str | Path) -> np.ndarray:
    """Read an ITK/ANTs .mat affine (any centre) as a ``(d+1, d+1)`` physical matrix."""
    try:
        data = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises MatReadError, ValueError, TypeError... on a bad file
        raise ValueError(f"{path}: not a readable ITK affine transform file ({type(exc).__name__}: "
                         f"{exc})") from exc
    keys = [k for k in data if k.startswith("AffineTransform_")]
    if len(keys) != 1:
        raise ValueError(f"{path}: not an ITK affine transform file")
    try:
        d = int(keys[0].rsplit("_", 1)[-1])
        params = np.asarray(data[keys[0]], dtype=np.float64).reshape(-1)
        centre = np.asarray(data.get("fixed", np.zeros(d)), dtype=np.float64).reshape(-1)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not an ITK affine transform file ({exc})") from exc
    if d not in (2, 3) or params.size != d * d + d or centre.size != d or not np.isfinite(params).all():
        raise ValueError(f"{path}: not a {d}D ITK affine transform (wrong size or non-finite values)")
    linear = params[: d * d].reshape(d, d)
    translation = params[d * d:]
    m = np.eye(d + 1)
    m[:d, :d] = linear
    m[:d, d] = translation + centre - linear @ centre
    return m
