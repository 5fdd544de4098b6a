"""Conversion between :class:`firereg.data.Image` and ANTs (antspyx) images, in world space.

A firereg image carries a 4x4 NIfTI affine (voxel -> RAS+ mm); an ANTs image carries ITK's
origin, spacing and direction in LPS mm. With ``P = diag(-1, -1, 1)`` (RAS <-> LPS) and the
affine's linear part ``A`` and offset ``t``:

    origin = P t,    spacing_a = ||A[:, a]||,    direction[:, a] = P A[:, a] / spacing_a

and back. Voxel index ``(i, j, k)`` is the same point in both (antspyx's ``numpy()`` keeps NIfTI
voxel order). A 2D firereg image is the plane ``k = 0`` of its affine; it becomes a 2D ANTs image
whose physical space is the first two LPS coordinates (as in :mod:`firereg.inference.world`), so
its in-plane axes must not leave the x-y plane (``affine[2, :2] == 0``). The plane's out-of-plane
row and column (its z position and thickness) have no ANTs counterpart: :func:`from_ants` takes
them from ``reference_affine`` when given, otherwise uses z = 0 and a unit third axis.

Pixel types: antspyx stores ``float32``, ``uint8`` or ``uint32``. ``float64`` and signed-integer
data (label maps) go to ANTs as ``float32`` (exact for integers up to 2^24 in magnitude);
:func:`from_ants` returns ANTs' pixel type unless ``dtype`` is given.

``antspyx`` is an optional dependency (``pip install firereg[ants]``); it is imported on first use.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from firereg.data.image import Image

__all__ = ["import_ants", "to_ants", "from_ants"]

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
_EXACT_FLOAT32_INT = 2**24


def import_ants() -> Any:
    """The ``ants`` module, or an ``ImportError`` that says how to install it."""
    try:
        import ants
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the ANTs baselines need antspyx: pip install 'firereg[ants]' "
                          "(or pip install antspyx)") from err
    return ants


def _ants_data(data: np.ndarray, where: str) -> np.ndarray:
    if data.dtype in (np.float32, np.uint8, np.uint32):
        return data
    if np.issubdtype(data.dtype, np.integer) or data.dtype == np.bool_:
        if data.size and np.abs(data.astype(np.int64)).max() > _EXACT_FLOAT32_INT:
            raise ValueError(f"{where}: integer values beyond 2^24 cannot be stored exactly in ANTs")
        return data.astype(np.float32)
    if np.issubdtype(data.dtype, np.floating):
        return data.astype(np.float32)
    raise ValueError(f"{where}: unsupported voxel type {data.dtype}")


def to_ants(image: Image) -> Any:
    """An ``ants.ANTsImage`` with ``image``'s voxels and world placement (LPS origin, direction).

    Args:
        image: a still 2D or 3D image (no time axis).

    Returns:
        A 2D or 3D ANTs image; see the module docstring for pixel types.
    """
    ants = import_ants()
    where = image.source or "to_ants"
    if image.is_series:
        raise ValueError(f"{where}: ANTs conversion takes a still image, got a series {image.data.shape}")
    d = image.ndim
    affine = np.asarray(image.affine, dtype=np.float64)
    linear, offset = _RAS_TO_LPS @ affine[:3, :3], _RAS_TO_LPS @ affine[:3, 3]
    if d == 2:
        scale = max(np.linalg.norm(linear[:, :2], axis=0).max(), 1e-12)
        if np.abs(affine[2, :2]).max() > 1e-9 * scale:
            raise ValueError(f"{where}: a 2D image whose plane leaves the x-y plane (affine[2, :2] = "
                             f"{affine[2, :2].tolist()}) has no 2D ANTs equivalent")
        linear, offset = linear[:2, :2], offset[:2]
    spacing = np.linalg.norm(linear, axis=0)
    if (spacing <= 0).any() or abs(np.linalg.det(linear)) < 1e-12:
        raise ValueError(f"{where}: the affine's voxel axes are degenerate: {affine.tolist()}")
    direction = linear / spacing
    return ants.from_numpy(_ants_data(np.asarray(image.data), where), origin=tuple(offset.tolist()),
                           spacing=tuple(spacing.tolist()), direction=direction)


def from_ants(
    ants_image: Any,
    *,
    dtype: np.dtype | type | None = None,
    reference_affine: np.ndarray | None = None,
    source: str | None = None,
) -> Image:
    """A firereg :class:`~firereg.data.Image` from an ANTs image (the inverse of :func:`to_ants`).

    Args:
        ants_image: a 2D or 3D scalar ANTs image.
        dtype: cast the voxels to this type (integer types are rounded first); default ANTs' type.
        reference_affine: for a 2D image, the 4x4 affine whose third row and column (the plane's
            z position and thickness) to keep; ignored in 3D.
        source: recorded on the image, for error messages.

    Returns:
        ``Image`` with ``data`` ``(*S)`` in NIfTI voxel order and a RAS 4x4 affine.
    """
    d = int(ants_image.dimension)
    if d not in (2, 3) or ants_image.has_components:
        raise ValueError(f"from_ants: expected a 2D or 3D scalar image, got {d}D with "
                         f"{ants_image.components} components")
    direction = np.asarray(ants_image.direction, dtype=np.float64).reshape(d, d)
    spacing = np.asarray(ants_image.spacing, dtype=np.float64)
    origin = np.asarray(ants_image.origin, dtype=np.float64)
    affine = np.eye(4)
    if d == 2 and reference_affine is not None:
        ref = np.asarray(reference_affine, dtype=np.float64)
        affine[2, :], affine[:, 2] = ref[2, :], ref[:, 2]
    flip = _RAS_TO_LPS[:d, :d]  # its own inverse
    affine[:d, :d] = flip @ (direction * spacing)
    affine[:d, 3] = flip @ origin
    data = ants_image.numpy()
    if dtype is not None:
        dtype = np.dtype(dtype)
        data = (np.rint(data) if np.issubdtype(dtype, np.integer) else data).astype(dtype)
    return Image(data, affine, d, source=source)
