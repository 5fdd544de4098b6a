"""MRBrainS13 and MRBrainS18 (training data) as multi-modal brain :class:`Case` records.

Layouts read (what the challenges distribute)::

    MRBrainS18   <root>/<N>/pre/T1.nii.gz, pre/IR.nii.gz, pre/FLAIR.nii.gz   (registered to FLAIR)
                 <root>/<N>/segm.nii.gz                                      (labels)
                 N = 1, 4, 5, 7, 14, 070, 148; ``orig/`` (not registered) is ignored.
    MRBrainS13   <root>/<N>/T1.nii, T1_IR.nii, T2_FLAIR.nii, LabelsForTraining.nii   (N = 1..5)

``.nii`` and ``.nii.gz`` are both accepted everywhere. The subject folders may also sit under
``<root>/training/`` or ``<root>/TrainingData/``, and :func:`mrbrains_cases` also accepts a
folder whose subfolders hold one release each (e.g. ``MRBrainS13/`` and ``MRBrainS18/``: the
12 subjects the paper fused, §4.1). ``T1_1mm.nii`` and ``LabelsForTesting.nii`` of MRBrainS13
are not used.

Modalities are named alike in both releases: "T1", "IR" (MRBrainS13 ``T1_IR``) and "FLAIR"
(MRBrainS13 ``T2_FLAIR``).

Unified label table (:data:`BRAIN_LABELS`). Both releases number the shared structures
identically, so the unified value of a label is its value in either file; MRBrainS18 adds two:

    ====  ==============================================  ===========  ===========
    value structure                                       MRBrainS13   MRBrainS18
    ====  ==============================================  ===========  ===========
    0     background                                      0            0
    1     cortical grey matter                            1            1
    2     basal ganglia                                   2            2
    3     white matter                                    3            3
    4     white matter lesions                            4            4
    5     cerebrospinal fluid (extracerebral space)       5            5
    6     ventricles                                      6            6
    7     cerebellum                                      7            7
    8     brain stem                                      8            8
    9     infarction                                      --           9
    10    other                                           --           10
    ====  ==============================================  ===========  ===========

The paper scores brain stem (8), cerebellum (7) and white matter (3): :data:`PAPER_STRUCTURES`.

Paper split (§4.1: 8 / 1 / 3 subjects train / val / test of the 12 fused): :func:`paper_split`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from firereg.data.io import read_image, read_labels
from firereg.data.records import Case, LabelTable
from firereg.data.sources.splits import PAPER_SPLIT_SEED, apply_split, resolve_split, stratified_split

__all__ = [
    "BRAIN_LABELS",
    "MRBRAINS13",
    "MRBRAINS18",
    "PAPER_STRUCTURES",
    "RELEASE_LABELS",
    "BrainPair",
    "MRBrainSError",
    "brain_pairs",
    "brain_slices",
    "mrbrains13_cases",
    "mrbrains18_cases",
    "mrbrains_cases",
    "paper_split",
    "unify_labels",
]

log = logging.getLogger(__name__)

MRBRAINS13 = "MRBrainS13"
MRBRAINS18 = "MRBrainS18"

BRAIN_LABELS: LabelTable = {
    1: "cortical grey matter",
    2: "basal ganglia",
    3: "white matter",
    4: "white matter lesions",
    5: "cerebrospinal fluid",
    6: "ventricles",
    7: "cerebellum",
    8: "brain stem",
    9: "infarction",
    10: "other",
}
"""Unified label value -> structure (0 is background). See the module docstring."""

RELEASE_LABELS: dict[str, dict[int, int]] = {
    MRBRAINS13: {v: v for v in range(9)},
    MRBRAINS18: {v: v for v in range(11)},
}
"""Per release: value in its label file -> unified value (the identity on the values it uses)."""

PAPER_STRUCTURES: dict[str, int] = {"BS": 8, "Ce": 7, "WHM": 3}
"""The structures the paper's Table 2 scores, as unified label values."""


@dataclass(frozen=True)
class _Layout:
    release: str
    images: dict[str, str]  # modality -> path stem relative to the subject folder
    labels: str
    parents: tuple[str, ...]

    def describe(self) -> str:
        files = ", ".join(f"{stem}.nii[.gz]" for stem in [*self.images.values(), self.labels])
        return f"{self.release}: <N>/{{{files}}}"


_LAYOUTS = {
    MRBRAINS18: _Layout(MRBRAINS18, {"T1": "pre/T1", "IR": "pre/IR", "FLAIR": "pre/FLAIR"}, "segm",
                        ("training", "TrainingData")),
    MRBRAINS13: _Layout(MRBRAINS13, {"T1": "T1", "IR": "T1_IR", "FLAIR": "T2_FLAIR"},
                        "LabelsForTraining", ("TrainingData", "training")),
}


class MRBrainSError(ValueError):
    """A folder does not have an MRBrainS layout, or a subject in it is incomplete."""


@dataclass(frozen=True)
class BrainPair:
    """One registration pair of a brain case: ``moving`` modality onto ``fixed`` modality.

    Lightweight: paths (and a slice index) only, nothing is loaded.

    Attributes:
        case: the case name, e.g. "mrbrains18_070".
        moving_modality, fixed_modality: e.g. "T1" and "FLAIR".
        moving, fixed: the two co-registered image files.
        labels: the case's label map (same grid), or None.
        z: for 2D pairs, the axial slice (index along voxel axis 2 of the files' native grid);
            None for 3D pairs.
    """

    case: str
    moving_modality: str
    fixed_modality: str
    moving: Path
    fixed: Path
    labels: Path | None
    z: int | None = None


# --------------------------------------------------------------------------------------------
# Layout detection


def _nifti(path_stem: Path) -> Path | None:
    for suffix in (".nii.gz", ".nii"):
        path = path_stem.with_name(path_stem.name + suffix)
        if path.is_file():
            return path
    return None


def _looks_like(folder: Path, release: str) -> bool:
    """Whether a subject folder carries files of ``release`` (MRBrainS18 wins a tie)."""
    marks18 = (folder / "pre").is_dir() or _nifti(folder / "segm") is not None
    if release == MRBRAINS18:
        return marks18
    stems = ("T1_IR", "T2_FLAIR", "LabelsForTraining", "T1")
    return not marks18 and any(_nifti(folder / s) is not None for s in stems)


def _subject_dirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [c for c in folder.iterdir() if c.is_dir() and c.name.isdigit()]


def _scan(root: Path, release: str) -> list[Path]:
    """Subject folders of ``release`` in ``root`` or its first parent folder that has some."""
    layout = _LAYOUTS[release]
    for base in (root, *(root / p for p in layout.parents)):
        subjects = [s for s in _subject_dirs(base) if _looks_like(s, release)]
        if subjects:
            return sorted(subjects, key=lambda p: (int(p.name), p.name))
    return []


def _expected(root: Path) -> str:
    lines = [f"  {layout.describe()}" for layout in _LAYOUTS.values()]
    return (f"{root}: expected subject folders <N> (N a number) of one of\n" + "\n".join(lines)
            + "\nin it, under training/ or TrainingData/, or in its subfolders")


def _shape(path: Path) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in nib.load(str(path)).shape)
    except Exception as exc:  # any nibabel failure becomes one clear message
        raise MRBrainSError(f"{path}: not a readable NIfTI file ({type(exc).__name__}: {exc})") from exc
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def _subject_case(folder: Path, release: str) -> Case:
    layout = _LAYOUTS[release]
    images: dict[str, Path] = {}
    for modality, stem in layout.images.items():
        path = _nifti(folder / stem)
        if path is None:
            raise MRBrainSError(f"{folder}: {release} subject without {stem}.nii.gz (or .nii), its "
                                f"{modality} image")
        images[modality] = path
    labels = _nifti(folder / layout.labels)
    if labels is None:
        log.warning("%s: no %s.nii[.gz]; the case has no labels", folder, layout.labels)
    files = [*images.values(), *([labels] if labels is not None else [])]
    shapes = {path: _shape(path) for path in files}
    reference = shapes[images["FLAIR"]]
    if len(reference) != 3:
        raise MRBrainSError(f"{images['FLAIR']}: expected a 3D volume, got shape {reference}")
    for path, shape in shapes.items():
        if shape != reference:
            raise MRBrainSError(f"{path}: shape {shape} differs from {reference} of "
                                f"{images['FLAIR'].name}; {release} images must be co-registered")
    tag = release.lower()
    return Case(
        name=f"{tag}_{folder.name}",
        images=images,
        labels=labels,
        label_names=dict(BRAIN_LABELS) if labels is not None else {},
        meta={"release": release, "subject": folder.name, "folder": folder, "shape": reference},
    )


def _release_cases(root: str | Path, release: str) -> list[Case]:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise MRBrainSError(f"{root}: {release} folder not found")
    subjects = _scan(root, release)
    if not subjects:
        raise MRBrainSError(f"{root}: no {release} subject folders; expected "
                            f"{_LAYOUTS[release].describe()} in it or under "
                            f"{' or '.join(p + '/' for p in _LAYOUTS[release].parents)}")
    return [_subject_case(s, release) for s in subjects]


def _with_split(cases: list[Case], split) -> list[Case]:
    return resolve_split(cases, split, paper_split)


SplitArg = Mapping[str, str] | Mapping[str, Sequence[str]] | str | None


def mrbrains18_cases(root: str | Path, *, split: SplitArg = None) -> list[Case]:
    """The MRBrainS18 subjects under ``root`` (``<N>/pre/{T1,IR,FLAIR}``, ``<N>/segm``).

    Cases are named ``mrbrains18_<N>`` (``N`` as the folder spells it, e.g. "070"), sorted by
    number, with ``images`` "T1", "IR", "FLAIR" (the ``pre/`` images), ``labels`` = ``segm``,
    ``label_names`` = :data:`BRAIN_LABELS`, and ``meta`` ``release``, ``subject``, ``folder``,
    ``shape``. ``split`` as in :func:`mrbrains_cases`.

    Raises:
        MRBrainSError: no subject folder, a missing modality, or files of different shapes.
    """
    return _with_split(_release_cases(root, MRBRAINS18), split)


def mrbrains13_cases(root: str | Path, *, split: SplitArg = None) -> list[Case]:
    """The MRBrainS13 subjects under ``root`` (``<N>/{T1,T1_IR,T2_FLAIR,LabelsForTraining}``).

    Like :func:`mrbrains18_cases`, with names ``mrbrains13_<N>``, ``T1_IR`` as "IR" and
    ``T2_FLAIR`` as "FLAIR". ``root`` may be the ``TrainingData`` folder or its parent.
    """
    return _with_split(_release_cases(root, MRBRAINS13), split)


def mrbrains_cases(root: str | Path, *, split: SplitArg = None) -> list[Case]:
    """The MRBrainS subjects under ``root``, whichever release (or both) it holds.

    Detection: subject folders ``<N>`` with ``pre/`` or ``segm`` are MRBrainS18, those with
    ``T1_IR``/``T2_FLAIR``/``LabelsForTraining``/``T1`` at their top are MRBrainS13; they are
    looked for in ``root``, under ``training/`` or ``TrainingData/``, and, when none is found
    there, in each subfolder of ``root`` (with the same rule), which is how the two releases
    fused in the paper are read from one folder.

    Args:
        split: None, ``"paper"`` (:func:`paper_split` over all cases found) or a mapping
            (name -> split, or split -> names; see :func:`~firereg.data.sources.splits.apply_split`).

    Raises:
        MRBrainSError: neither layout found (the message lists what was expected), an incomplete
            subject, or two subjects with the same name.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise MRBrainSError(f"{root}: MRBrainS folder not found")
    found = [(release, _scan(root, release)) for release in _LAYOUTS]
    if not any(subjects for _, subjects in found):
        found = []
        for child in sorted(root.iterdir()):
            if child.is_dir() and not child.name.isdigit() and not child.name.startswith("."):
                found += [(release, _scan(child, release)) for release in _LAYOUTS]
    cases: dict[str, Case] = {}
    for release, subjects in found:
        for folder in subjects:
            case = _subject_case(folder, release)
            if case.name in cases:
                raise MRBrainSError(f"{root}: subject {case.name} found twice, in "
                                    f"{cases[case.name].meta['folder']} and {folder}")
            cases[case.name] = case
    if not cases:
        raise MRBrainSError(f"{_expected(root)}; found none")
    ordered = sorted(cases.values(), key=lambda c: (c.meta["release"], int(c.meta["subject"]),
                                                    c.meta["subject"]))
    return _with_split(ordered, split)


# --------------------------------------------------------------------------------------------
# Labels


def unify_labels(labels: np.ndarray, release: str, *, source: str | None = None) -> np.ndarray:
    """A label array of ``release`` in the unified values of :data:`BRAIN_LABELS`.

    Values the release does not define are kept as they are, with a warning naming them.
    Returns int32, same shape.
    """
    if release not in RELEASE_LABELS:
        raise ValueError(f"unify_labels: unknown release {release!r}; expected {list(RELEASE_LABELS)}")
    table = RELEASE_LABELS[release]
    data = np.asarray(labels).astype(np.int32)
    values = np.unique(data)
    unknown = [int(v) for v in values if int(v) not in table]
    if unknown:
        log.warning("%s: label values %s are not in the %s table; kept as they are",
                    source or "labels", unknown, release)
    out = data.copy()
    for value in values:
        target = table.get(int(value), int(value))
        if target != value:
            out[data == value] = target
    return out


def brain_slices(labels: str | Path, *, min_voxels: int = 1) -> list[int]:
    """Axial slices with brain: indices ``z`` along voxel axis 2 where ``labels > 0`` covers at
    least ``min_voxels`` voxels. Every non-zero label counts, CSF included."""
    if min_voxels < 1:
        raise ValueError(f"brain_slices: min_voxels must be >= 1, got {min_voxels}")
    data = read_labels(labels, ndim=3).data
    counts = (data > 0).sum(axis=(0, 1))
    return [int(z) for z in np.flatnonzero(counts >= min_voxels)]


def _image_slices(image: Path, min_voxels: int) -> list[int]:
    data = read_image(image, ndim=3).data
    counts = (data != 0).sum(axis=(0, 1))
    return [int(z) for z in np.flatnonzero(counts >= min_voxels)]


# --------------------------------------------------------------------------------------------
# Pairs and split


def brain_pairs(
    cases: Sequence[Case],
    pairs: Sequence[tuple[str, str]] = (("T1", "FLAIR"), ("IR", "FLAIR")),
    mode: str = "2d",
    *,
    min_brain_voxels: int = 1,
) -> Iterator[BrainPair]:
    """Registration pairs (§4.1: T1 -> FLAIR in 2D and 3D, IR -> FLAIR in 2D), lazily.

    For each case and each ``(moving, fixed)`` modality pair: in "3d" mode one
    :class:`BrainPair`; in "2d" mode one per axial slice with brain (:func:`brain_slices` on the
    case's label map, read once per case; a case without labels uses the slices where the fixed
    image is non-zero). Slice indices are on the files' native grid (axis 2).

    Raises:
        ValueError: an unknown mode, or a case without a requested modality.
    """
    mode = mode.lower()
    if mode not in ("2d", "3d"):
        raise ValueError(f"brain_pairs: mode must be '2d' or '3d', got {mode!r}")
    for case in cases:
        for moving, fixed in pairs:
            for modality in (moving, fixed):
                if modality not in case.images:
                    raise ValueError(f"brain_pairs: case {case.name} has no {modality!r} image "
                                     f"(it has {sorted(case.images)})")
        if mode == "3d":
            for moving, fixed in pairs:
                yield BrainPair(case.name, moving, fixed, case.images[moving], case.images[fixed],
                                case.labels)
            continue
        slices: dict[str, list[int]] = {}
        for moving, fixed in pairs:
            key = "labels" if case.labels is not None else fixed
            if key not in slices:
                slices[key] = (brain_slices(case.labels, min_voxels=min_brain_voxels)
                               if case.labels is not None
                               else _image_slices(case.images[fixed], min_brain_voxels))
            for z in slices[key]:
                yield BrainPair(case.name, moving, fixed, case.images[moving], case.images[fixed],
                                case.labels, z)


def paper_split(cases: Sequence[Case], *, seed: int = PAPER_SPLIT_SEED) -> list[Case]:
    """The cases with ``split`` set as in §4.1: 8 / 1 / 3 subjects train / val / test.

    Rule: :func:`~firereg.data.sources.splits.stratified_split` with weights train 8, val 1,
    test 3, stratified by release (``meta["release"]``), with a fixed seed. On the 12 fused
    subjects (5 MRBrainS13 + 7 MRBrainS18) this gives test = 1 MRBrainS13 + 2 MRBrainS18,
    val = 1 MRBrainS18, train = 4 + 4. Other counts are split in the same proportions. The
    result does not depend on the order of ``cases``; the returned list keeps it.
    """
    if not cases:
        raise ValueError("paper_split: no cases")
    names = [c.name for c in cases]
    groups = [str(c.meta.get("release") or "unknown") for c in cases]
    assignment = stratified_split(names, groups, {"train": 8, "val": 1, "test": 3}, seed=seed)
    return apply_split(cases, assignment)
