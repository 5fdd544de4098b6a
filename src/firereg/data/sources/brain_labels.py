"""Named brain structures derived from the maps that ship with SPM (and nilearn's ICBM 2009a).

No manual segmentation of the avg152 brain exists offline. What SPM ships on or near its grid:

* ``tpm/labels_Neuromorphometrics.nii``: a maximum-probability atlas of 136 structures (1.5 mm,
  121x145x121, MNI space; names in ``labels_Neuromorphometrics.xml``; CC BY-NC), built from the
  manually labelled OASIS brains of the MICCAI 2012 multi-atlas challenge. It labels the brain
  parenchyma and the ventricles, but almost none of the extracerebral CSF.
* ``toolbox/OldSeg/{grey,white,csf}.nii``: tissue probability maps on the avg152 2 mm grid.

The label map of the avg152 brain (:func:`derive_brain_labels`) is made of these, in this order:

1. Every Neuromorphometrics label is put in one structure by its *name* in the XML, with the
   ordered rules of :data:`STRUCTURE_RULES` (first match wins):

   - ventricles (6): "Lateral Ventricle", "Inf Lat Vent", "3rd Ventricle", "4th Ventricle";
   - cerebellum (7): "Cerebellum Exterior", "Cerebellum White Matter", "Cerebellar Vermal
     Lobules ...";
   - brain stem (8): "Brain Stem";
   - basal ganglia (2), i.e. the deep grey nuclei: caudate, putamen, pallidum, accumbens area,
     thalamus proper, ventral DC (ventral diencephalon: hypothalamus, subthalamic nucleus,
     substantia nigra) and basal forebrain;
   - white matter (3): "Cerebral White Matter" and "Optic Chiasm";
   - cerebrospinal fluid (5): "CSF";
   - cortical grey matter (1): hippocampus and amygdala (medial temporal grey matter: they are
     neither basal ganglia nor white matter, and MRBrainS-style protocols count them as grey
     matter) and every cortical label. Cortical labels are recognised by the Neuromorphometrics
     naming scheme "Right|Left <ABBREVIATION> <lower-case description>", e.g.
     "Left PrG precentral gyrus", "Right Ent entorhinal area".
   - Anything else ("Right vessel", "Left vessel": 5 voxels) is left unassigned, so step 3
     decides it. The names each rule caught are written to ``labels.json``.

2. The grouped map is resampled from its 1.5 mm grid onto the 2 mm grid, label-aware (each
   structure's indicator interpolated linearly in world coordinates through both files'
   affines, the largest weight wins: :func:`firereg.data.preprocessing.resample_labels`).
   Grouping *before* resampling lets a 2 mm voxel that straddles five small gyral labels vote
   for grey matter as a whole.

3. Voxels the atlas leaves unlabelled take the most probable tissue of the OldSeg maps when
   ``grey + white + csf >= 0.5``: csf -> cerebrospinal fluid (5), grey -> cortical grey
   matter (1), white -> white matter (3). This adds the extracerebral CSF and a rim of cortex.

Values follow the MRBrainS unified table (:mod:`firereg.data.sources.mrbrains`), so the same
value means the same structure in every brain dataset of firereg: :data:`SPM_LABELS`. Values 4
(white matter lesions), 9 and 10 do not occur in a template brain.

Caveat (written into the dataset's README): the atlas and the avg152 images are different
population averages registered to the same MNI space, so boundaries agree with the avg152
intensities only approximately. :attr:`DerivedLabels.agreement` measures it against the OldSeg
tissue maps (on the real data, Dice: cerebral white matter 0.82, cortical + deep grey matter
outside cerebellum and brain stem 0.85, brain mask 0.97).

For ICBM 2009a (nilearn), only grey and white matter probability maps exist: :func:`tissue_labels`
gives cortical grey matter (1) and white matter (3) only, see :mod:`firereg.data.sources.icbm`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from firereg.data.image import Image
from firereg.data.preprocessing import resample_labels
from firereg.data.records import LabelTable

__all__ = [
    "CSF",
    "GREY",
    "WHITE",
    "LABEL_DERIVATION",
    "SPM_LABELS",
    "STRUCTURE_RULES",
    "TISSUE_THRESHOLD",
    "DerivedLabels",
    "derive_brain_labels",
    "group_labels",
    "parse_atlas_xml",
    "resample_atlas",
    "structure_of",
    "tissue_labels",
]

GREY, BASAL_GANGLIA, WHITE, CSF, VENTRICLES, CEREBELLUM, BRAIN_STEM = 1, 2, 3, 5, 6, 7, 8

SPM_LABELS: LabelTable = {
    GREY: "cortical grey matter",
    BASAL_GANGLIA: "basal ganglia",
    WHITE: "white matter",
    CSF: "cerebrospinal fluid",
    VENTRICLES: "ventricles",
    CEREBELLUM: "cerebellum",
    BRAIN_STEM: "brain stem",
}
"""Label value -> structure of the derived brain labels (values and names as MRBrainS's)."""

LABEL_DERIVATION: dict[int, str] = {
    GREY: "Neuromorphometrics cortical labels ('Right|Left <ABBR> <description>') + hippocampus + "
          "amygdala; where the atlas is unlabelled: OldSeg grey is the most probable tissue",
    BASAL_GANGLIA: "Neuromorphometrics deep grey nuclei: caudate, putamen, pallidum, accumbens area, "
                   "thalamus proper, ventral DC, basal forebrain",
    WHITE: "Neuromorphometrics cerebral white matter + optic chiasm; where the atlas is unlabelled: "
           "OldSeg white is the most probable tissue",
    CSF: "Neuromorphometrics 'CSF'; where the atlas is unlabelled: OldSeg csf is the most probable "
         "tissue (mostly extracerebral CSF)",
    VENTRICLES: "Neuromorphometrics lateral, inferior lateral, 3rd and 4th ventricles",
    CEREBELLUM: "Neuromorphometrics cerebellum exterior + cerebellum white matter + vermal lobules",
    BRAIN_STEM: "Neuromorphometrics brain stem",
}
"""Label value -> how it was made (written to the dataset's labels.json and README)."""

TISSUE_THRESHOLD = 0.5
"""Tissue fallback only where the tissue probabilities sum to at least this."""

STRUCTURE_RULES: tuple[tuple[int, str], ...] = (
    (VENTRICLES, r"\blateral ventricle\b|\binf lat vent\b|\b3rd ventricle\b|\b4th ventricle\b"),
    (CEREBELLUM, r"\bcerebellum exterior\b|\bcerebellum white matter\b|\bcerebellar vermal lobules\b"),
    (BRAIN_STEM, r"\bbrain stem\b"),
    (BASAL_GANGLIA, r"\b(caudate|putamen|pallidum|accumbens area|thalamus proper|thalamus|ventral dc"
                    r"|basal forebrain)\b"),
    (WHITE, r"\bcerebral white matter\b|\boptic chiasm\b"),
    (CSF, r"^csf$"),
    (GREY, r"\b(hippocampus|amygdala)\b"),
)
"""Ordered (value, regular expression on the lower-cased name) rules; first match wins. Cortical
labels are recognised afterwards by their naming scheme (:data:`_CORTICAL`)."""

# "Right PrG precentral gyrus": side, an abbreviation starting upper-case, then lower-case words.
_CORTICAL = re.compile(r"^(Right|Left) [A-Z][A-Za-z]* [a-z][a-z -]*$")


def structure_of(name: str) -> int:
    """The structure value (:data:`SPM_LABELS`) of a Neuromorphometrics label name, 0 if none."""
    text = " ".join(name.split())
    lower = text.lower()
    for value, pattern in STRUCTURE_RULES:
        if re.search(pattern, lower):
            return value
    return GREY if _CORTICAL.match(text) else 0


def parse_atlas_xml(source: str | Path | bytes, *, where: str | None = None) -> dict[int, str]:
    """Label index -> name from an SPM atlas XML (``<atlas><data><label><index/><name/>``).

    Raises:
        ValueError: not XML, no labels, a non-integer or repeated index.
    """
    where = where or (str(source) if not isinstance(source, bytes) else "atlas XML")
    try:
        root = ET.fromstring(source) if isinstance(source, bytes) else ET.parse(source).getroot()
    except (ET.ParseError, OSError) as exc:
        raise ValueError(f"{where}: not a readable atlas XML ({exc})") from exc
    names: dict[int, str] = {}
    for label in root.iter("label"):
        index, name = label.findtext("index"), label.findtext("name")
        if index is None or name is None:
            raise ValueError(f"{where}: a <label> lacks <index> or <name>")
        try:
            value = int(index.strip())
        except ValueError as exc:
            raise ValueError(f"{where}: label index {index!r} is not an integer") from exc
        if value in names:
            raise ValueError(f"{where}: label index {value} appears twice")
        names[value] = " ".join(name.split())
    if not names:
        raise ValueError(f"{where}: no <label> entries found")
    return names


def group_labels(names: Mapping[int, str]) -> tuple[dict[int, int], list[str]]:
    """(atlas index -> structure value for the indices that map, names that map to nothing)."""
    lookup, unassigned = {}, []
    for index, name in sorted(names.items()):
        value = structure_of(name)
        if value:
            lookup[index] = value
        else:
            unassigned.append(name)
    return lookup, unassigned


def _apply_lookup(data: np.ndarray, lookup: Mapping[int, int]) -> np.ndarray:
    out = np.zeros(data.shape, dtype=np.int32)
    for index, value in lookup.items():
        out[data == index] = value
    return out


def resample_atlas(labels: Image, shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """Label-aware resampling of a 3D label map onto the grid ``(shape, affine)``: int32 array."""
    tensor = torch.as_tensor(np.ascontiguousarray(labels.data, dtype=np.int64))[None, None]
    out = resample_labels(tensor, labels.spatial_shape, labels.affine, tuple(shape), affine)
    return out[0, 0].numpy().astype(np.int32)


def tissue_labels(grey: np.ndarray, white: np.ndarray, csf: np.ndarray | None = None,
                  *, threshold: float = TISSUE_THRESHOLD) -> np.ndarray:
    """Most probable tissue where the probabilities sum to at least ``threshold``, else 0.

    Values: :data:`GREY`, :data:`WHITE`, :data:`CSF` (only with a ``csf`` map). Ties go to grey,
    then white. Returns int32 of the maps' shape.
    """
    maps = [grey, white] + ([csf] if csf is not None else [])
    values = np.array([GREY, WHITE] + ([CSF] if csf is not None else []), dtype=np.int32)
    if len({np.shape(m) for m in maps}) != 1:
        raise ValueError(f"tissue_labels: the probability maps differ in shape: "
                         f"{[np.shape(m) for m in maps]}")
    stack = np.stack([np.asarray(m, dtype=np.float32) for m in maps])
    best = values[np.argmax(stack, axis=0)]
    return np.where(stack.sum(axis=0) >= threshold, best, 0).astype(np.int32)


@dataclass(frozen=True)
class DerivedLabels:
    """What :func:`derive_brain_labels` returns.

    Attributes:
        labels: the structure map on the target grid (int32, values of :data:`SPM_LABELS`).
        fine: the atlas's own indices resampled label-aware onto the target grid (int32).
        lookup: atlas index -> structure value.
        groups: structure value -> the atlas names put in it.
        unassigned: atlas names put in no structure (left to the tissue fallback).
        from_atlas, from_tissue: voxel counts per structure value from step 2 and step 3.
        agreement: Dice between the atlas (step 2) and the OldSeg argmax (``tissue_labels``):
            ``white_matter`` (atlas white matter vs tissue white), ``grey_matter`` (atlas cortical
            grey + basal ganglia vs tissue grey outside the atlas's cerebellum and brain stem),
            ``brain`` (atlas labels but CSF vs tissue grey or white).
    """

    labels: np.ndarray
    fine: np.ndarray
    lookup: dict[int, int]
    groups: dict[int, list[str]]
    unassigned: list[str]
    from_atlas: dict[int, int]
    from_tissue: dict[int, int]
    agreement: dict[str, float]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return round(2.0 * int((a & b).sum()) / total, 4) if total else 1.0


def _counts(data: np.ndarray) -> dict[int, int]:
    values, counts = np.unique(data[data > 0], return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


def derive_brain_labels(atlas: Image, names: Mapping[int, str], grey: Image, white: Image,
                        csf: Image, *, threshold: float = TISSUE_THRESHOLD) -> DerivedLabels:
    """The structure label map on the tissue maps' grid (see the module docstring for the rules).

    Args:
        atlas: the Neuromorphometrics label map (any grid; resampled in world coordinates).
        names: atlas index -> name (:func:`parse_atlas_xml`).
        grey, white, csf: tissue probability maps in [0, 1], all on the target grid.
    """
    target = grey
    for other in (white, csf):
        if other.spatial_shape != target.spatial_shape or not np.allclose(other.affine, target.affine,
                                                                          atol=1e-4):
            raise ValueError(f"{other.source or 'tissue map'}: not on the grid of "
                             f"{target.source or 'the grey matter map'}")
    if atlas.ndim != 3 or target.ndim != 3:
        raise ValueError("derive_brain_labels: needs 3D maps")
    present = {int(v) for v in np.unique(atlas.data)} - {0}
    unknown = sorted(present - set(names))
    if unknown:
        raise ValueError(f"{atlas.source or 'atlas'}: label values {unknown[:10]} have no name in the "
                         "XML; is it the matching XML?")
    lookup, unassigned = group_labels(names)
    groups: dict[int, list[str]] = {v: [] for v in SPM_LABELS}
    for index, value in lookup.items():
        groups[value].append(names[index])
    grouped = _apply_lookup(atlas.data, lookup)
    shape, affine = target.spatial_shape, target.affine
    resampled = resample_atlas(atlas.with_data(grouped), shape, affine)
    fallback = tissue_labels(grey.data, white.data, csf.data, threshold=threshold)
    labels = np.where(resampled > 0, resampled, fallback).astype(np.int32)
    fine = resample_atlas(atlas, shape, affine)
    agreement = {
        "white_matter": _dice(resampled == WHITE, fallback == WHITE),
        "grey_matter": _dice(np.isin(resampled, [GREY, BASAL_GANGLIA]),
                             (fallback == GREY) & ~np.isin(resampled, [CEREBELLUM, BRAIN_STEM])),
        "brain": _dice((resampled > 0) & (resampled != CSF), np.isin(fallback, [GREY, WHITE])),
    }
    return DerivedLabels(labels=labels, fine=fine, lookup=lookup, groups=groups,
                         unassigned=unassigned, from_atlas=_counts(resampled),
                         from_tissue=_counts(np.where(resampled > 0, 0, fallback)), agreement=agreement)
