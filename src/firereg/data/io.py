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
from firereg.data.image import Image, normal_axis, one_slice_layout

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


def _check_header(path: str | Path, img: nib.Nifti1Image) -> np.ndarray:
    """Refuse a header that cannot be used; return its voxel -> world affine, read as ITK reads it."""
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
    affine = _itk_geometry(path, img, zooms)
    if not np.isfinite(affine).all():
        raise _fail(path, "has a non-finite voxel-to-world affine")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise _fail(path, "has a singular voxel-to-world affine")
    dtype = img.get_data_dtype()
    if np.issubdtype(dtype, np.complexfloating):
        raise _fail(path, f"holds complex values ({dtype}); take the magnitude first")
    return affine


def _rotation_and_scaling(matrix: np.ndarray) -> bool:
    """Whether a 4x4 is ``R diag(s)`` plus a translation (no shear, last row 0 0 0 1), with the
    tolerance ITK's NIfTI reader uses (its columns, normalized, orthonormal to 1e-4)."""
    if not np.isfinite(matrix).all() or not np.allclose(matrix[3], [0, 0, 0, 1], atol=1e-7):
        return False
    linear = matrix[:3, :3]
    norms = np.linalg.norm(linear, axis=0)
    if (norms < 1e-12).any():
        return False
    unit = linear / norms
    return bool(np.abs(unit @ unit.T - np.eye(3)).max() <= 1e-4)


def _itk_geometry(path: str | Path, img: nib.Nifti1Image, zooms: np.ndarray) -> np.ndarray:
    """The voxel -> world (RAS) affine ITK, and so ANTs, reads from this header.

    nibabel and ITK agree on an ordinary header (an sform, or a qform, or both the same). Where
    they do not, the exported transforms only mean in ANTs what they meant here if firereg reads
    what ITK reads (``itk::NiftiImageIO::SetImageIOOrientationFromNIfTI``, ITK 5.4):

    * qform_code and sform_code both 0: voxel spacing (pixdim) only, origin 0, LPS axes
      (nibabel centres the image and flips x alone);
    * both codes set and the two disagree: the sform if its code is 1 (scanner), else the qform
      (nibabel always takes the sform);
    * the spacing always comes from pixdim, the directions from the chosen matrix (nibabel takes
      the sform's column lengths).

    A sheared sform is refused: ITK reads the qform instead, or orthogonalizes the sform, or
    refuses the file, depending on how it was built and on ``ITK_NIFTI_SFORM_PERMISSIVE``.
    """
    header = img.header
    nib_affine = np.asarray(img.affine, dtype=np.float64)
    qcode, scode = int(header["qform_code"]), int(header["sform_code"])
    n = zooms.size
    if qcode == 0 and scode == 0:
        spacing = np.ones(3)
        spacing[:n] = zooms
        affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
        how = ("has no orientation (qform_code and sform_code 0): read as ITK and ANTs read it, "
               "pixdim spacing, origin 0, LPS axes (nibabel would centre it)")
    else:
        sform = np.asarray(header.get_sform(), dtype=np.float64)
        if scode != 0 and not np.isfinite(sform).all():
            raise _fail(path, "has a non-finite voxel-to-world affine")
        if scode != 0 and abs(np.linalg.det(sform[:3, :3])) < 1e-12:
            raise _fail(path, "has a singular voxel-to-world affine")
        if scode != 0 and not _rotation_and_scaling(sform):
            raise _fail(path, f"its sform (code {scode}) is sheared, not a rotation and scaling: ITK "
                              "and ANTs read such a header differently from nibabel (the qform "
                              "instead, or no image), so exported transforms would not match; "
                              "resample it to an unsheared grid, or set the sform to the qform")
        qform = np.asarray(header.get_qform(), dtype=np.float64)
        use_sform = scode != 0 and (qcode == 0 or scode == 1
                                    or np.allclose(sform, qform, rtol=0, atol=1e-4))
        chosen = sform if use_sform else qform
        affine = chosen.copy()
        affine[:3, :n] = chosen[:3, :n] / np.linalg.norm(chosen[:3, :n], axis=0) * zooms
        if use_sform:
            lengths = np.linalg.norm(sform[:3, :n], axis=0)
            how = (f"has an sform whose voxel sizes {_rounded(lengths)} differ from pixdim "
                   f"{_rounded(zooms)}: read with pixdim's, as ITK and ANTs read it")
        else:
            how = (f"has a qform (code {qcode}) and an sform (code {scode}) that disagree: read with "
                   "the qform, as ITK and ANTs read it (nibabel would take the sform)")
    if np.allclose(affine, nib_affine, rtol=0, atol=1e-4):
        return nib_affine  # an ordinary header: exactly what nibabel reads
    log.warning("%s: %s", path, how)
    return affine


def _rounded(values: np.ndarray) -> tuple[float, ...]:
    return tuple(round(float(v), 4) for v in values)


def _spatial_layout(path: str | Path, shape: tuple[int, ...],
                    allow_series: bool) -> tuple[int, bool, int | None]:
    """(spatial ndim, is_series, slice axis) of a NIfTI shape, or an error.

    A 3D shape with one axis of size 1 is a 2D image, in any plane: ``(X, Y, 1)``, ``(X, 1, Z)``
    or ``(1, Y, Z)``, its slice axis that one (None for a shape ``(X, Y)``).
    """
    stored = tuple(shape)
    squeezed_tail = list(shape)
    while len(squeezed_tail) > 3 and squeezed_tail[-1] == 1:
        squeezed_tail.pop()
    shape = tuple(squeezed_tail)
    if len(shape) not in (2, 3, 4):
        raise _fail(path, f"has {len(shape)} dimensions (shape {shape}); expected a 2D or 3D "
                          "image, or a 3D+time series")
    series = len(shape) == 4
    slice_axis = None
    if len(shape) == 2:
        ndim = 2
    else:
        singles = [a for a in range(3) if shape[a] == 1]
        ndim = 2 if len(singles) == 1 else 3
        slice_axis = singles[0] if ndim == 2 else None
    if series and not allow_series:
        raise _fail(path, f"is a series of {shape[3]} frames (shape {shape}); expected one image")
    spatial = [shape[a] for a in range(min(3, len(shape))) if a != slice_axis]
    if any(s < 2 for s in spatial):
        raise _fail(path, f"is too small to register: shape {stored}, every spatial axis needs at least "
                          "2 voxels")
    return ndim, series, slice_axis


def _read_array(path: str | Path, img: nib.Nifti1Image, ndim: int, series: bool,
                slice_axis: int | None) -> np.ndarray:
    try:
        data = np.asarray(img.dataobj)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise _fail(path, f"is corrupt or truncated ({_why(exc)})") from exc
    shape = data.shape
    if series:
        frames = int(np.prod(shape[3:])) if len(shape) > 3 else 1
        data = data.reshape(*shape[:3], frames)
        if ndim == 2:
            data = np.take(data, 0, axis=slice_axis)
    elif ndim == 3:
        data = data.reshape(shape[:3])
    elif slice_axis is None:
        data = data.reshape(shape[0], shape[1])
    else:
        data = data.reshape([shape[a] for a in range(3) if a != slice_axis])
    return data


def _read_raw(path: str | Path, ndim: int | None, allow_series: bool,
              what: str) -> tuple[np.ndarray, int, np.ndarray]:
    """Load, check the header and layout, and read the voxels: (affine, spatial ndim, array).

    A 2D image stored with its slice axis first or second (``(X, 1, Z)``, ``(1, Y, Z)``) comes
    back as ``(X, Z)`` / ``(Y, Z)`` with its affine's columns in that order, the slice axis third:
    the plane ``k = 0`` of :class:`Image`.
    """
    img = _load(path)
    affine = _check_header(path, img)
    found, series, slice_axis = _spatial_layout(path, img.shape, allow_series)
    if ndim is not None and found != ndim:
        raise _fail(path, f"is a {found}D {what} (shape {img.shape}), expected {ndim}D")
    if slice_axis is not None:
        in_plane = [a for a in range(3) if a != slice_axis]
        affine = affine[:, [*in_plane, slice_axis, 3]]
    return affine, found, _read_array(path, img, found, series, slice_axis)


def read_image(path: str | Path, *, ndim: int | None = None, allow_series: bool = False) -> Image:
    """Read a 2D, 3D (or, with ``allow_series``, 3D+time / 2D+time) NIfTI image as float32.

    2D images may be stored as ``(X, Y)`` or ``(X, Y, 1)``. Non-finite voxels are replaced by the
    smallest finite value (with a warning); an image with no finite value is refused.

    Args:
        ndim: if given, the spatial dimensionality the caller needs (2 or 3).
    """
    affine, found, raw = _read_raw(path, ndim, allow_series, "image")
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
    return Image(data=data, affine=affine, ndim=found, source=str(path))


def read_labels(path: str | Path, *, ndim: int | None = None, allow_series: bool = False) -> Image:
    """Read an integer label map. Values must be whole numbers; the result is int32."""
    affine, found, raw = _read_raw(path, ndim, allow_series, "label map")
    if np.issubdtype(raw.dtype, np.floating):
        if not np.isfinite(raw).all():
            raise _fail(path, "label map holds NaN or infinite values")
        if not np.array_equal(raw, np.round(raw)):
            raise _fail(path, "label map holds non-integer values; is it an intensity image?")
    if raw.min() < np.iinfo(np.int32).min or raw.max() > np.iinfo(np.int32).max:
        raise _fail(path, "label values do not fit in 32-bit integers")
    return Image(data=raw.astype(np.int32), affine=affine, ndim=found, source=str(path))


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


def _stored(image: Image, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Data and affine as written: a 2D image whose plane is not axial as a one-slice 3D volume
    (a coronal slice ``(X, 1, Z)``, a sagittal one ``(1, Y, Z)``). ITK reads a 2D file with the
    plane's first two LPS coordinates only, which cannot hold such a plane."""
    if image.ndim == 2 and normal_axis(image.affine) != 2:
        return one_slice_layout(data, image.affine)
    return data, image.affine


def write_image(image: Image, path: str | Path, *, time_step_s: float | None = None,
                description: str | None = None) -> Path:
    """Write an intensity image as float32 NIfTI with its affine (qform and sform, mm).

    For a series, ``time_step_s`` sets the frame duration (pixdim[4], seconds). A 2D image in a
    plane that is not axial is written as a one-slice 3D volume (see :func:`_stored`).
    """
    path = _check_target(path)
    data, affine = _stored(image, np.asarray(image.data, dtype=np.float32))
    if time_step_s is not None and not image.is_series:
        raise _fail(path, "time_step_s applies to a series only")
    _atomic_save(_nifti(data, affine, time_step_s=time_step_s, description=description), path)
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
    _atomic_save(_nifti(*_stored(labels, data.astype(dtype))), path)
    return path


def write_displacement_field(field: np.ndarray, affine: np.ndarray, path: str | Path) -> Path:
    """Write a displacement field in the layout ITK and ANTs read.

    Args:
        field: ``(*S, d)`` vectors in millimetres, spatial axes in voxel order, on the grid of
            ``affine``. The components are in the frame the reader expects (ITK: LPS).
        affine: the grid's 4x4 voxel -> world matrix.

    The file is 5D, ``(X, Y, Z, 1, d)`` (``Z = 1`` for 2D), with intent ``vector``. A 3D field on
    a one-slice grid ``(X, Y, 1)`` is stored with its slice axis first or second (``(X, 1, Y)``,
    the same world grid): ITK reads a vector image whose third axis has one voxel as 2D.
    """
    path = _check_target(path)
    field = np.asarray(field, dtype=np.float32)
    d = field.shape[-1]
    if d not in (2, 3) or field.ndim != d + 1:
        raise _fail(path, f"expected a field of shape (*S, d) with d = 2 or 3, got {field.shape}")
    if d == 3 and field.shape[2] == 1 and min(field.shape[:2]) > 1:
        axis = normal_axis(affine)
        field, affine = one_slice_layout(field[:, :, 0], affine, axis=axis if axis < 2 else 1)
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
