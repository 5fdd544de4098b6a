"""ACDC (2017 Automated Cardiac Diagnosis Challenge) cine MRI as :class:`CineCase` records.

Layout read (what the challenge distributes)::

    <root>/training/patient001/Info.cfg
                               patient001_4d.nii.gz          (X, Y, Z, T) cine
                               patient001_frame01.nii.gz     ED frame, 3D
                               patient001_frame01_gt.nii.gz  its labels: 1 RV, 2 myocardium, 3 LV
                               patient001_frame12.nii.gz     ES frame
                               patient001_frame12_gt.nii.gz

``<root>`` may also be the folder that holds the ``patientNNN`` folders itself, a folder with
``testing/`` (patients 101-150), a ``database/training`` / ``database/testing`` tree (the 2023
re-release), or one ``patientNNN`` folder. Images may be ``.nii`` instead of ``.nii.gz``.

``Info.cfg`` holds ``Key: value`` lines (``ED``, ``ES``, ``Group``, ``Height``, ``NbFrame``,
``Weight``). ACDC numbers frames from 1 (``ED: 1`` is the first frame, stored as ``frame01``);
the records use 0-based indices into the 4D array's time axis, so ``ED: 1`` gives ``ed == 0``.

Only file headers are read here; images are loaded later, by the datasets.

Paper split (§4.2: 60 / 10 / 30 training / validation / test patients): see :func:`paper_split`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib

from firereg.data.records import CARDIAC_LABELS, CineCase
from firereg.data.sources.splits import PAPER_SPLIT_SEED, apply_split, resolve_split, stratified_split

__all__ = [
    "ACDCError",
    "ACDC_GROUPS",
    "FramePair",
    "acdc_cases",
    "acdc_test_pair",
    "acdc_training_pairs",
    "paper_split",
    "read_info_cfg",
]

log = logging.getLogger(__name__)

ACDC_GROUPS = ("NOR", "MINF", "DCM", "HCM", "RV")
"""The five ACDC diagnostic groups (20 training patients each)."""


_PATIENT_DIR = re.compile(r"^patient(\d+)$", re.IGNORECASE)
_LOCATIONS = (".", "training", "testing", "database/training", "database/testing")
_SUFFIXES = (".nii.gz", ".nii")


class ACDCError(ValueError):
    """An ACDC folder does not have the layout or content the adapter expects."""


@dataclass(frozen=True)
class FramePair:
    """Two frames of one cine to register: ``moving`` onto ``fixed`` (0-based time indices).

    Lightweight: paths and indices only, nothing is loaded.

    Attributes:
        case: the case name, e.g. "patient001".
        cine: the 4D file ``(X, Y, Z, T)`` both frames come from.
        moving, fixed: 0-based frame indices into the cine's time axis.
        moving_labels, fixed_labels: label maps of those frames where ACDC has them, else None.
        moving_file, fixed_file: the frames as their own 3D files where they exist, else None.
    """

    case: str
    cine: Path
    moving: int
    fixed: int
    moving_labels: Path | None = None
    fixed_labels: Path | None = None
    moving_file: Path | None = None
    fixed_file: Path | None = None


# --------------------------------------------------------------------------------------------
# Info.cfg


def read_info_cfg(path: str | Path) -> dict[str, str]:
    """The ``Key: value`` pairs of an ACDC ``Info.cfg``, as strings.

    Tolerates a byte-order mark, Windows line ends, blank lines, ``#`` comments, spaces around
    keys and values, and ``=`` instead of ``:``. Keys keep their spelling (the adapter looks
    them up case-insensitively). A repeated key keeps its last value.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise ACDCError(f"{path}: cannot read Info.cfg ({exc.strerror or exc})") from exc
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"^([^:=]+?)\s*[:=]\s*(.*)$", line)
        if match is None:
            log.debug("%s: ignoring line %r", path, line)
            continue
        values[match.group(1).strip()] = match.group(2).strip()
    return values


def _get(info: Mapping[str, str], key: str) -> str | None:
    for k, v in info.items():
        if k.lower() == key.lower():
            return v
    return None


def _int_value(cfg: Path, info: Mapping[str, str], key: str, *, required: bool) -> int | None:
    raw = _get(info, key)
    if raw is None or raw == "":
        if required:
            found = ", ".join(info) or "none"
            raise ACDCError(f"{cfg}: missing key '{key}' (keys found: {found})")
        return None
    try:
        number = float(raw)
    except ValueError:
        number = float("nan")
    if not number.is_integer():
        if required:
            raise ACDCError(f"{cfg}: key '{key}' must be a whole frame number, got {raw!r}")
        log.warning("%s: ignoring non-integer %s = %r", cfg, key, raw)
        return None
    return int(number)


def _float_value(cfg: Path, info: Mapping[str, str], key: str) -> float | None:
    raw = _get(info, key)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        log.warning("%s: ignoring non-numeric %s = %r", cfg, key, raw)
        return None


# --------------------------------------------------------------------------------------------
# Files


def _nifti(folder: Path, stem: str) -> Path | None:
    """``folder/stem.nii.gz`` or ``folder/stem.nii``, whichever exists (the former first)."""
    for suffix in _SUFFIXES:
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def _frame_files(folder: Path, name: str) -> tuple[dict[int, Path], dict[int, Path]]:
    """1-based frame number -> image file and -> label file, from ``<name>_frameXX[_gt].nii[.gz]``.

    The number is read, not formatted, so ``frame1`` and ``frame001`` are found as well as
    ``frame01``; ``.nii.gz`` wins over ``.nii`` when both exist.
    """
    pattern = re.compile(rf"^{re.escape(name)}_frame(\d+)(_gt)?\.nii(\.gz)?$", re.IGNORECASE)
    images: dict[int, Path] = {}
    labels: dict[int, Path] = {}
    for path in sorted(folder.iterdir(), key=lambda p: (not p.name.endswith(".gz"), p.name)):
        match = pattern.match(path.name)
        if match is None or not path.is_file():
            continue
        target = labels if match.group(2) else images
        target.setdefault(int(match.group(1)), path)
    return images, labels


def _header(path: Path) -> nib.Nifti1Image:
    try:
        return nib.load(str(path))
    except Exception as exc:  # any nibabel failure becomes one clear message
        raise ACDCError(f"{path}: not a readable NIfTI file ({type(exc).__name__}: {exc})") from exc


def _patient_dirs(root: Path) -> list[tuple[Path, str | None]]:
    """(patient folder, "training"/"testing" or None) for every ``patientNNN`` folder found."""
    if _PATIENT_DIR.match(root.name) and (root / "Info.cfg").is_file():
        return [(root, None)]
    found: list[tuple[Path, str | None]] = []
    for location in _LOCATIONS:
        base = root if location == "." else root / location
        if not base.is_dir():
            continue
        subset = Path(location).name if location != "." else None
        if subset is None and base.name.lower() in ("training", "testing"):
            subset = base.name.lower()
        for child in sorted(base.iterdir()):
            if child.is_dir() and _PATIENT_DIR.match(child.name):
                found.append((child, subset))
    return found


def _subset_of(name: str, location: str | None) -> str:
    if location is not None:
        return location
    match = _PATIENT_DIR.match(name)
    return "training" if match is not None and int(match.group(1)) <= 100 else "testing"


def _one_case(folder: Path, location: str | None) -> CineCase:
    name = folder.name
    cfg = folder / "Info.cfg"
    if not cfg.is_file():
        raise ACDCError(f"{folder}: no Info.cfg (every ACDC patient folder has one, naming the ED "
                        "and ES frames)")
    info = read_info_cfg(cfg)
    ed1 = _int_value(cfg, info, "ED", required=True)
    es1 = _int_value(cfg, info, "ES", required=True)
    nb_frame = _int_value(cfg, info, "NbFrame", required=False)
    assert ed1 is not None and es1 is not None

    cine = _nifti(folder, f"{name}_4d")
    if cine is None:
        raise ACDCError(f"{folder}: no 4D cine file {name}_4d.nii.gz (or {name}_4d.nii)")
    img = _header(cine)
    shape = tuple(int(s) for s in img.shape)
    if len(shape) != 4:
        raise ACDCError(f"{cine}: expected a 4D cine (X, Y, Z, T), got shape {shape}")
    frames_in_file = shape[3]
    if nb_frame is not None and nb_frame != frames_in_file:
        log.warning("%s: NbFrame = %d but %s holds %d frames; using the file's count",
                    cfg, nb_frame, cine.name, frames_in_file)

    for key, value in (("ED", ed1), ("ES", es1)):
        if nb_frame is not None and not 1 <= value <= nb_frame:
            raise ACDCError(f"{cfg}: {key} = {value} is outside 1..NbFrame = {nb_frame} "
                            "(ACDC frame numbers start at 1)")
        if not 1 <= value <= frames_in_file:
            raise ACDCError(f"{cfg}: {key} = {value} is outside 1..{frames_in_file}, the frames of "
                            f"{cine.name} (ACDC frame numbers start at 1)")
    if ed1 == es1:
        raise ACDCError(f"{cfg}: ED and ES name the same frame ({ed1})")

    images, labels = _frame_files(folder, name)
    frames: dict[int, Path] = {}
    frame_labels: dict[int, Path] = {}
    for key, number in (("ED", ed1), ("ES", es1)):
        stem = f"{name}_frame{number:02d}"
        path = images.get(number)
        if path is None:
            raise ACDCError(f"{folder}: no frame file {stem}.nii.gz (or .nii) for {key}: {number} "
                            "in Info.cfg")
        for file in (path, labels.get(number)):
            if file is None:
                continue
            file_shape = tuple(int(s) for s in _header(file).shape)
            while len(file_shape) > 3 and file_shape[-1] == 1:
                file_shape = file_shape[:-1]
            if file_shape != shape[:3]:
                raise ACDCError(f"{file}: shape {file_shape} differs from the spatial shape "
                                f"{shape[:3]} of {cine.name}")
        frames[number - 1] = path
        if number in labels:
            frame_labels[number - 1] = labels[number]
        else:
            log.debug("%s: no label file %s_gt for %s", folder, stem, key)

    group = _get(info, "Group")
    meta = {
        "group": group or None,
        "height": _float_value(cfg, info, "Height"),
        "weight": _float_value(cfg, info, "Weight"),
        "nb_frame": nb_frame,
        "num_frames": frames_in_file,
        "shape": shape[:3],
        "spacing": tuple(float(z) for z in img.header.get_zooms()[:3]),
        "subset": _subset_of(name, location),
        "folder": folder,
        "label_names": dict(CARDIAC_LABELS),
        "info": dict(info),
    }
    return CineCase(name=name, cine=cine, ed=ed1 - 1, es=es1 - 1, frame_labels=frame_labels,
                    frames=frames, meta=meta)


# --------------------------------------------------------------------------------------------
# Cases


def acdc_cases(
    root: str | Path,
    *,
    split: Mapping[str, str] | Mapping[str, Sequence[str]] | str | None = None,
    subset: str | None = None,
    strict: bool = True,
) -> list[CineCase]:
    """Every ACDC patient under ``root`` as a :class:`CineCase`, sorted by patient number.

    Args:
        root: the ACDC folder; see the module docstring for the layouts accepted.
        split: None (``split`` stays None), ``"paper"`` (:func:`paper_split`), or a mapping,
            either case name -> "train"/"val"/"test" or split -> list of case names
            (see :func:`apply_split`).
        subset: "training" or "testing" to keep only one ACDC subset (taken from the folder
            name, else from the patient number: 1-100 training, 101-150 testing); None keeps all.
            The paper used the 100 training patients: pass ``subset="training"`` when ``root``
            holds both subsets.
        strict: if False, a broken patient folder is skipped with a warning instead of raising.

    Returns:
        cases with ``ed``/``es`` 0-based, ``frames`` and ``frame_labels`` keyed by 0-based index
        (labels only where a ``_gt`` file exists), and ``meta`` holding ``group``, ``height``,
        ``weight``, ``nb_frame`` (Info.cfg), ``num_frames``, ``shape`` ``(X, Y, Z)`` and
        ``spacing`` (4D header), ``subset``, ``folder``, ``label_names`` and the raw ``info``.

    Raises:
        ACDCError: no patient folder, a missing/bad Info.cfg key, a missing 4D or frame file,
            a frame number out of range, or a frame file whose shape differs from the cine's.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ACDCError(f"{root}: ACDC folder not found")
    if subset not in (None, "training", "testing"):
        raise ACDCError(f"acdc_cases: subset must be 'training', 'testing' or None, got {subset!r}")
    folders = _patient_dirs(root)
    if not folders:
        raise ACDCError(f"{root}: no ACDC patient folders found; expected patientNNN/ folders (with "
                        "Info.cfg and patientNNN_4d.nii.gz) in it or under training/, testing/, "
                        "database/training/ or database/testing/")
    cases: dict[str, CineCase] = {}
    for folder, location in folders:
        try:
            case = _one_case(folder, location)
        except ACDCError as exc:
            if strict:
                raise
            log.warning("skipping %s: %s", folder, exc)
            continue
        if case.name in cases:
            raise ACDCError(f"{root}: patient {case.name} appears twice, in "
                            f"{cases[case.name].meta['folder']} and {folder}")
        cases[case.name] = case
    chosen = [c for c in cases.values() if subset is None or c.meta["subset"] == subset]
    if not chosen:
        raise ACDCError(f"{root}: no usable ACDC patient" + (f" in the {subset} subset" if subset else ""))
    chosen.sort(key=_patient_key)
    return resolve_split(chosen, split, paper_split, ACDCError)


def _patient_key(case: CineCase) -> tuple[int, str]:
    match = _PATIENT_DIR.match(case.name)
    return (int(match.group(1)) if match else 10**9, case.name)


# --------------------------------------------------------------------------------------------
# Splits


def paper_split(cases: Sequence[CineCase], *, seed: int = PAPER_SPLIT_SEED) -> list[CineCase]:
    """The cases with ``split`` set as in §4.2: 60 / 10 / 30 patients train / val / test.

    Rule: :func:`stratified_split` with weights train 60, val 10, test 30, stratified by the
    ACDC group from Info.cfg (``meta["group"]``; cases without one form their own stratum), with
    a fixed seed. On ACDC's 100 training patients (5 groups of 20) every group gives exactly 12
    train, 2 val and 6 test patients. Other case counts are split in the same proportions.
    The result does not depend on the order of ``cases``; the returned list keeps it.
    """
    if not cases:
        raise ValueError("paper_split: no cases")
    names = [c.name for c in cases]
    groups = [str(c.meta.get("group") or "unknown") for c in cases]
    assignment = stratified_split(names, groups, {"train": 60, "val": 10, "test": 30}, seed=seed)
    return apply_split(cases, assignment)


# --------------------------------------------------------------------------------------------
# Pairs


def _pair(case: CineCase, moving: int, fixed: int) -> FramePair:
    return FramePair(case=case.name, cine=case.cine, moving=moving, fixed=fixed,
                     moving_labels=case.frame_labels.get(moving),
                     fixed_labels=case.frame_labels.get(fixed),
                     moving_file=case.frames.get(moving), fixed_file=case.frames.get(fixed))


def _num_frames(case: CineCase) -> int:
    count = case.meta.get("num_frames")
    if count is None:
        shape = _header(Path(case.cine)).shape
        if len(shape) != 4:
            raise ACDCError(f"{case.cine}: expected a 4D cine (X, Y, Z, T), got shape {shape}")
        count = shape[3]
    return int(count)


def acdc_training_pairs(case: CineCase) -> Iterator[FramePair]:
    """Training pairs of one cine (§4.2, "all MRI phases"): every frame except ED onto ED.

    Yields ``T - 1`` :class:`FramePair` with ``moving`` = 0, 1, ..., T-1 (ED skipped) and
    ``fixed`` = ED, 0-based. Nothing is loaded.
    """
    for t in range(_num_frames(case)):
        if t != case.ed:
            yield _pair(case, t, case.ed)


def acdc_test_pair(case: CineCase) -> FramePair:
    """The evaluated pair (§4.2): ES (moving) onto ED (fixed), both with their label maps.

    Raises:
        ACDCError: the case lacks the ED or ES label file (e.g. ACDC's 2017 testing set).
    """
    for key, t in (("ED", case.ed), ("ES", case.es)):
        if t not in case.frame_labels:
            raise ACDCError(f"{case.name}: no label map for {key} (frame {t + 1:02d}, a "
                            f"{case.name}_frame{t + 1:02d}_gt.nii.gz file); the test pair needs both")
    return _pair(case, case.es, case.ed)
