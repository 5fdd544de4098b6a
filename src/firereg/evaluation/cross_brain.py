"""Cross-brain evaluation pairs: a second brain's image moved onto the SPM avg152 brain.

With ``moving_brain`` set in an experiment config (``icbm152_2009a``, or a folder in its layout),
a brain case's **moving** image is that brain's ``modality_moving`` image instead of the SPM one,
and the **fixed** image stays the SPM avg152 ``modality_fixed`` image of the same test slice or slab.
The two brains differ in anatomy, scanner contrast and grid (ICBM: 1 mm, x to the right; SPM: 2 mm,
x to the left), so the pair tests what the synthetic-transform protocol cannot: a different head.
The random transforms of the protocol are still added to the moving image (``cases.py``).

Pairing. Both templates are in MNI space with axial planes that coincide: for an SPM slice at
world ``z``, the moving slice is the second brain's axial slice at the same ``z`` (refused when no
slice lies within a quarter voxel of it, or when the second brain's third axis is not the SPM's).
3D slabs take the second brain's slices between the slab's first and last ``z``. Each image keeps
its own grid and world placement; every method works in world coordinates. The slices and slabs
themselves are cut by ``cases.py``'s helpers, as for every other brain case.

Labels. The second brain has only grey and white matter (``icbm.py``). The SPM labels are
therefore re-derived **with the same rule** from the SPM grey and white probability maps
(:func:`~firereg.data.sources.brain_labels.tissue_labels`: the more probable of the two where they
sum to >= 0.5), so the two sides' labels mean the same thing. Scored: grey matter (1; it includes
the deep grey nuclei and the cerebellar cortex) and white matter (3).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from firereg.data.image import Image
from firereg.data.io import read_image

__all__ = ["CROSS_BRAIN_LABELS", "moving_brain_root", "fixed_tissue_labels", "fixed_brain_only",
           "matching_slice"]

CROSS_BRAIN_LABELS = {1: "grey matter", 3: "white matter"}
"""The structures a cross-brain pair is scored on (values of the SPM/ICBM label tables)."""

_TOLERANCE_VOXELS = 0.25


def moving_brain_root(name_or_folder: str) -> Path:
    """The folder of the second brain: a prepared dataset's name in the cache, or a folder."""
    from firereg.data.sources.cache import datasets_dir

    folder = Path(name_or_folder).expanduser()
    if folder.is_dir():
        return folder
    cached = datasets_dir() / name_or_folder
    if cached.is_dir():
        return cached
    raise ValueError(f"moving_brain: {name_or_folder!r} is neither a folder nor a prepared dataset in "
                     f"{datasets_dir()}; run `firereg data prepare` (it builds icbm152_2009a)")


def fixed_tissue_labels(spm_root: Path) -> Image:
    """The SPM brain's grey (1) / white (3) labels by the second brain's rule, on the SPM 3D grid."""
    from firereg.data.sources.brain_labels import tissue_labels

    paths = [spm_root / "grey.nii.gz", spm_root / "white.nii.gz"]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"{spm_root}: cross-brain scoring needs its tissue maps; missing {missing} "
                         "(rebuild it with `firereg data prepare`)")
    grey, white = (read_image(p, ndim=3) for p in paths)
    return Image(tissue_labels(grey.data, white.data), grey.affine, 3, source=str(spm_root / "tissue"))


def fixed_brain_only(fixed3: Image, spm_root: Path) -> Image:
    """``fixed3`` (the SPM 3D image) with everything outside its brain set to 0.

    The brain is where grey + white + CSF probability >= 0.5 (the SPM tissue maps). The ICBM
    template is skull-stripped and the avg152 images are not; stripping the fixed side too is what
    a user does before registering a brain-extracted image, and it keeps a method from matching
    the moving brain's outline to the fixed head's (ANTs-affine fell below unaligned in 3D that way).
    """
    paths = [spm_root / f"{t}.nii.gz" for t in ("grey", "white", "csf")]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"{spm_root}: fixed_brain_only needs its tissue maps; missing {missing} "
                         "(rebuild it with `firereg data prepare`)")
    total = sum(read_image(p, ndim=3).data.astype(np.float64) for p in paths)
    if total.shape != fixed3.data.shape[-3:]:
        raise ValueError(f"{spm_root}: the tissue maps' grid {total.shape} is not the fixed image's "
                         f"{fixed3.data.shape[-3:]}")
    brain = (total >= 0.5).astype(fixed3.data.dtype)
    return Image(fixed3.data * brain, fixed3.affine, 3, source=f"{fixed3.source} (brain only)")


def matching_slice(fixed3: Image, k: int, moving3: Image) -> int:
    """Index of ``moving3``'s axial slice at the world ``z`` of ``fixed3``'s slice ``k``.

    Raises ValueError when ``moving3``'s third voxel axis does not run along ``fixed3``'s, or when
    no slice lies within a quarter voxel of that ``z``.
    """
    to_moving = np.linalg.inv(np.asarray(moving3.affine, float)) @ np.asarray(fixed3.affine, float)
    if not (np.allclose(to_moving[2, :2], 0, atol=1e-6) and np.allclose(to_moving[:2, 2], 0, atol=1e-6)):
        raise ValueError("moving_brain: its axial planes are not the fixed brain's (the third voxel "
                         "axes differ); cross-brain slices need the two grids' planes to coincide")
    position = float(to_moving[2, 2] * k + to_moving[2, 3])
    index = int(round(position))
    depth = moving3.spatial_shape[2]
    if abs(position - index) > _TOLERANCE_VOXELS or not 0 <= index < depth:
        raise ValueError(f"moving_brain: no slice at the world z of fixed slice {k} (it would be at "
                         f"{position:.2f} of 0..{depth - 1})")
    return index
