"""Reading and writing NIfTI images, label maps and displacement fields, with clear errors.

Every error raised here is an :class:`ImageFileError` whose message starts with the file's path.
Writes are atomic: a temporary file in the same folder is renamed over the target, so a crash
never leaves a half-written file under the final name.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from firereg.atomic import atomic_output
from firereg.data.image import Image

__all__ = [
    "ImageFileError",
    "read_image",
    "read_labels",
    "write_image",
    "write_labels",
    "write_displacement_field",
    "read_displacement_field",
    "MAX_VOXELS",
]

log = logging.getLogger(__name__)

# Refuse, before allocating, images with more voxels than this (2 GiB of float32 per frame set).
MAX_VOXELS = 512 * 1024 * 1024
NIFTI_SUFFIXES = (".nii", ".nii.gz")


class ImageFileError(ValueError):
    """A file is missing, not NIfTI, corrupt, or holds data that cannot be used."""


def _fail(path: str | Path, reason: str) -> ImageFileError:
    return ImageFileError(f"{path}: {reason}")


def _why(exc: BaseException) -> str:
    """``Type: message`` on one line (nibabel's messages can span several)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _load(path: str | Path) -> nib.Nifti1Image:
    path = Path(path)
    if not path.exists():
        raise _fail(path, "no such file")
    if path.is_dir():
        raise _fail(path, "is a folder, expected a NIfTI file (.nii or .nii.gz)")
    # nibabel logs (to stderr) how it "fixes" a zero or negative spacing on load; _check_header
    # refuses such a header with one line of its own, so keep nibabel quiet here.
    nib_log = nib.imageglobals.logger
    level = nib_log.level
    nib_log.setLevel(logging.ERROR)
    try:
        img = nib.load(str(path))
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, zlib.error, ValueError) as exc:
        raise _fail(path, f"not a readable NIfTI image ({_why(exc)})") from exc
    finally:
        nib_log.setLevel(level)
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise _fail(path, f"expected NIfTI, got {type(img).__name__}")
    return img


def _raw_pixdim(path: str | Path) -> np.ndarray:
    """pixdim[1:4] exactly as stored: nibabel silently replaces zero or negative spacings on load."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            header = nib.Nifti1Header.from_fileobj(f, check=False)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise _fail(path, f"has an unreadable header ({_why(exc)})") from exc
    return np.asarray(header["pixdim"][1:4], dtype=np.float64)


def _check_header(path: str | Path, img: nib.Nifti1Image) -> None:
    shape = img.shape
    if any(s < 1 for s in shape):
        raise _fail(path, f"has an empty dimension, shape {shape}")
    voxels = int(np.prod(shape, dtype=np.int64))
    if voxels > MAX_VOXELS:
        raise _fail(path, f"has {voxels:,} voxels (shape {shape}), more than the {MAX_VOXELS:,} "
                          "this tool loads; crop or downsample it first")
    n = min(3, len(shape))
    zooms = _raw_pixdim(path)[:n] if isinstance(img, nib.Nifti1Image) else np.asarray(
        img.header.get_zooms()[:n], dtype=np.float64)
    if not np.isfinite(zooms).all() or (zooms <= 0).any():
        raise _fail(path, f"has an invalid voxel spacing {tuple(zooms.tolist())} in its header "
                          "(zero, negative or NaN)")
    affine = img.affine
    if not np.isfinite(affine).all():
        raise _fail(path, "has a non-finite voxel-to-world affine")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise _fail(path, "has a singular voxel-to-world affine")
    dtype = img.get_data_dtype()
    if np.issubdtype(dtype, np.complexfloating):
        raise _fail(path, f"holds complex values ({dtype}); take the magnitude first")


def _spatial_layout(path: str | Path, shape: tuple[int, ...], allow_series: bool) -> tuple[int, bool]:
    """(spatial ndim, is_series) of a NIfTI shape, or an error."""
    stored = tuple(shape)
    squeezed_tail = list(shape)
    while len(squeezed_tail) > 3 and squeezed_tail[-1] == 1:
        squeezed_tail.pop()
    shape = tuple(squeezed_tail)
    if len(shape) == 2:
        ndim, series = 2, False
    elif len(shape) == 3:
        ndim, series = (2, False) if shape[2] == 1 else (3, False)
    elif len(shape) == 4:
        ndim, series = (2, True) if shape[2] == 1 else (3, True)
    else:
        raise _fail(path, f"has {len(shape)} dimensions (shape {shape}); expected a 2D or 3D "
                          "image, or a 3D+time series")
    if series and not allow_series:
        raise _fail(path, f"is a series of {shape[3]} frames (shape {shape}); expected one image")
    spatial = shape[:ndim]
    if any(s < 2 for s in spatial):
        raise _fail(path, f"is too small to register: shape {stored}, every spatial axis needs at least "
                          "2 voxels")
    return ndim, series


def _read_array(path: str | Path, img: nib.Nifti1Image, ndim: int, series: bool) -> np.ndarray:
    try:
        data = np.asarray(img.dataobj)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise _fail(path, f"is corrupt or truncated ({_why(exc)})") from exc
    shape = data.shape
    if series:
        frames = int(np.prod(shape[3:])) if len(shape) > 3 else 1
        data = data.reshape(*shape[:3], frames)
        if ndim == 2:
            data = data[:, :, 0, :]
    else:
        data = data.reshape(shape[:ndim]) if ndim == 3 else data.reshape(shape[0], shape[1])
    return data


def _read_raw(path: str | Path, ndim: int | None, allow_series: bool,
              what: str) -> tuple[nib.Nifti1Image, int, np.ndarray]:
    """Load, check the header and layout, and read the voxels: (image, spatial ndim, array)."""
    img = _load(path)
    _check_header(path, img)
    found, series = _spatial_layout(path, img.shape, allow_series)
    if ndim is not None and found != ndim:
        raise _fail(path, f"is a {found}D {what} (shape {img.shape}), expected {ndim}D")
    return img, found, _read_array(path, img, found, series)


def read_image(path: str | Path, *, ndim: int | None = None, allow_series: bool = False) -> Image:
    """Read a 2D, 3D (or, with ``allow_series``, 3D+time / 2D+time) NIfTI image as float32.

    2D images may be stored as ``(X, Y)`` or ``(X, Y, 1)``. Non-finite voxels are replaced by the
    smallest finite value (with a warning); an image with no finite value is refused.

    Args:
        ndim: if given, the spatial dimensionality the caller needs (2 or 3).
    """
    img, found, raw = _read_raw(path, ndim, allow_series, "image")
    if raw.dtype == np.bool_:
        raw = raw.astype(np.uint8)
    data = raw.astype(np.float32, copy=False)
    finite = np.isfinite(data)
    if np.issubdtype(raw.dtype, np.floating) and raw.dtype.itemsize > 4 and not finite.all():
        overflow = np.isfinite(raw) & ~finite  # finite as stored, infinite in float32
        if overflow.any():
            largest = float(np.abs(raw[np.isfinite(raw)]).max())
            raise _fail(path, f"holds {raw.dtype} values beyond float32's range (largest magnitude "
                              f"{largest:.3g}); rescale the image")
    if not finite.any():
        raise _fail(path, "holds no finite value (every voxel NaN or infinite)")
    if not finite.all():
        fill = float(data[finite].min())
        log.warning("%s: %d non-finite voxels set to %g", path, int((~finite).sum()), fill)
        data = np.where(finite, data, fill).astype(np.float32)
    return Image(data=data, affine=img.affine.astype(np.float64), ndim=found, source=str(path))


def read_labels(path: str | Path, *, ndim: int | None = None, allow_series: bool = False) -> Image:
    """Read an integer label map. Values must be whole numbers; the result is int32."""
    img, found, raw = _read_raw(path, ndim, allow_series, "label map")
    if np.issubdtype(raw.dtype, np.floating):
        if not np.isfinite(raw).all():
            raise _fail(path, "label map holds NaN or infinite values")
        if not np.array_equal(raw, np.round(raw)):
            raise _fail(path, "label map holds non-integer values; is it an intensity image?")
    if raw.min() < np.iinfo(np.int32).min or raw.max() > np.iinfo(np.int32).max:
        raise _fail(path, "label values do not fit in 32-bit integers")
    return Image(data=raw.astype(np.int32), affine=img.affine.astype(np.float64), ndim=found,
                 source=str(path))


def _check_target(path: str | Path) -> Path:
    path = Path(path)
    if not str(path).endswith(NIFTI_SUFFIXES):
        raise _fail(path, "output must end in .nii or .nii.gz")
    if not path.parent.exists():
        raise _fail(path, f"output folder {path.parent} does not exist")
    return path


def _atomic_save(img: nib.Nifti1Image, path: Path) -> None:
    suffix = ".nii.gz" if str(path).endswith(".gz") else ".nii"
    try:
        with atomic_output(path, suffix) as tmp:
            nib.save(img, str(tmp))
    except OSError as exc:
        raise _fail(path, f"could not be written in {path.parent} ({exc.strerror or exc})") from exc


def _nifti(data: np.ndarray, affine: np.ndarray, *, intent: str | None = None,
           time_step_s: float | None = None, description: str | None = None) -> nib.Nifti1Image:
    img = nib.Nifti1Image(data, np.asarray(affine, dtype=np.float64))
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    img.header.set_xyzt_units(xyz="mm", t="sec")
    if time_step_s is not None:
        zooms = list(img.header.get_zooms())
        zooms[3] = float(time_step_s)
        img.header.set_zooms(zooms)
    if description is not None:
        img.header["descrip"] = description.encode("ascii", "replace")[:79]
    if intent is not None:
        img.header.set_intent(intent)
    return img


def write_image(image: Image, path: str | Path, *, time_step_s: float | None = None,
                description: str | None = None) -> Path:
    """Write an intensity image as float32 NIfTI with its affine (qform and sform, mm).

    For a series, ``time_step_s`` sets the frame duration (pixdim[4], seconds).
    """
    path = _check_target(path)
    data = np.asarray(image.data, dtype=np.float32)
    if time_step_s is not None and not image.is_series:
        raise _fail(path, "time_step_s applies to a series only")
    _atomic_save(_nifti(data, image.affine, time_step_s=time_step_s, description=description), path)
    return path


def write_labels(labels: Image, path: str | Path) -> Path:
    """Write a label map with the smallest integer type that holds its values."""
    path = _check_target(path)
    data = np.asarray(labels.data)
    if np.issubdtype(data.dtype, np.floating) and not np.array_equal(data, np.round(data)):
        raise _fail(path, "label map holds non-integer values")
    lo, hi = int(data.min()), int(data.max())
    for dtype in (np.uint8, np.int16, np.int32):
        if np.iinfo(dtype).min <= lo and hi <= np.iinfo(dtype).max:
            break
    _atomic_save(_nifti(data.astype(dtype), labels.affine), path)
    return path


def write_displacement_field(field: np.ndarray, affine: np.ndarray, path: str | Path) -> Path:
    """Write a displacement field in the layout ITK and ANTs read.

    Args:
        field: ``(*S, d)`` vectors in millimetres, spatial axes in voxel order, on the grid of
            ``affine``. The components are in the frame the reader expects (ITK: LPS).
        affine: the grid's 4x4 voxel -> world matrix.

    The file is 5D, ``(X, Y, Z, 1, d)`` (``Z = 1`` for 2D), with intent ``vector``.
    """
    path = _check_target(path)
    field = np.asarray(field, dtype=np.float32)
    d = field.shape[-1]
    if d not in (2, 3) or field.ndim != d + 1:
        raise _fail(path, f"expected a field of shape (*S, d) with d = 2 or 3, got {field.shape}")
    data = field[:, :, None, None, :] if d == 2 else field[:, :, :, None, :]
    _atomic_save(_nifti(data, affine, intent="vector"), path)
    return path


def read_displacement_field(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a field written by :func:`write_displacement_field`: ``((*S, d), affine)``."""
    img = _load(path)
    shape = img.shape
    if len(shape) != 5 or shape[3] != 1 or shape[4] not in (2, 3):
        raise _fail(path, f"is not a displacement field of shape (X, Y, Z, 1, d), got {shape}")
    try:
        data = np.asarray(img.dataobj, dtype=np.float32)[:, :, :, 0, :]
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise _fail(path, f"is corrupt or truncated ({_why(exc)})") from exc
    if shape[4] == 2:
        data = data[:, :, 0, :]
    return data, img.affine.astype(np.float64)
