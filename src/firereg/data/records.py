"""What every data source yields: cases that name their files, read lazily by the datasets.

A brain source yields :class:`Case` objects (co-registered modalities of one subject plus an
optional label map); a cardiac source yields :class:`CineCase` objects (a 4D cine with its
end-diastolic and end-systolic frames and their label maps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CARDIAC_LABELS", "Case", "CineCase", "LabelTable"]

LabelTable = dict[int, str]  # label value -> structure name


@dataclass(frozen=True)
class Case:
    """One subject with co-registered images of several modalities.

    Attributes:
        name: unique within its source (e.g. "spm_avg152", "mrbrains18_1").
        images: modality name ("T1", "T2", "PD", "FLAIR", "IR") -> NIfTI path; all on one grid.
        labels: label-map path on the same grid, or None.
        label_names: label value -> structure name for ``labels``.
        split: "train", "val" or "test" when the source assigns one, else None.
        meta: anything else the source knows (spacing, origin dataset, slice ranges...).
    """

    name: str
    images: dict[str, Path]
    labels: Path | None = None
    label_names: LabelTable = field(default_factory=dict)
    split: str | None = None
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CineCase:
    """One 4D cardiac cine (3D + time, or 2D + time) with its annotated phases.

    Attributes:
        name: e.g. "patient001".
        cine: path of the 4D NIfTI ``(X, Y, Z, T)``.
        ed, es: 0-based frame indices of end-diastole and end-systole.
        frame_labels: 0-based frame index -> label-map path (ACDC: ED and ES), labels
            1 RV, 2 myocardium, 3 LV.
        frames: 0-based frame index -> path of that frame as its own 3D file, where one exists.
        split: "train", "val" or "test" when assigned.
        meta: e.g. the ACDC group, height, weight, or "synthetic": True for the phantom.
    """

    name: str
    cine: Path
    ed: int
    es: int
    frame_labels: dict[int, Path] = field(default_factory=dict)
    frames: dict[int, Path] = field(default_factory=dict)
    split: str | None = None
    meta: dict = field(default_factory=dict)


CARDIAC_LABELS: LabelTable = {1: "RV", 2: "myocardium", 3: "LV"}
