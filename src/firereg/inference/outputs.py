"""Writing a registration's results into an output folder, in formats ITK, ANTs and viewers read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from firereg.atomic import atomic_write_text, json_text, staged_files
from firereg.data.io import write_displacement_field, write_image, write_labels
from firereg.inference.itk_files import write_itk_affine
from firereg.inference.register_pair import PairResult
from firereg.inference.world import Grid, exported_in_3d, lift_affine, lift_displacement

__all__ = ["write_pair_outputs", "OUTPUT_FILES"]

OUTPUT_FILES = ("warped.nii.gz", "warped_labels.nii.gz", "affine.mat", "warp.nii.gz",
                "inverse_affine.mat", "inverse_warp.nii.gz", "report.json")


def write_pair_outputs(result: PairResult, out_dir: str | Path, *, fixed_affine, moving_affine,
                       extra_report: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write every file of :data:`OUTPUT_FILES` that applies into ``out_dir``.

    ``warp.nii.gz`` lives on the fixed grid (``fixed_affine``), ``inverse_warp.nii.gz`` on the
    moving grid. With ANTs: ``antsApplyTransforms -r fixed -i moving -t warp.nii.gz -t affine.mat``
    reproduces ``warped.nii.gz``, and ``-r moving -i fixed -t inverse_warp.nii.gz
    -t inverse_affine.mat`` maps the fixed image onto the moving one.

    A 2D pair whose planes are not both axial gets 3D transforms (ITK cannot hold such a plane in
    2D): ``affine.mat`` maps the fixed plane onto the moving one, ``warp.nii.gz`` holds 3D vectors
    in the fixed plane on the fixed grid stored as a one-slice volume, and ANTs applies them to
    the images read in 3D (as it reads a one-slice file).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    affine, inverse_affine = result.affine, result.inverse_affine
    warp, inverse_warp = result.warp, result.inverse_warp
    fixed = Grid(result.warped.spatial_shape, fixed_affine)
    moving = Grid(tuple(result.inverse_warp.shape[:-1]), moving_affine)
    if exported_in_3d(fixed, moving):
        affine = lift_affine(affine, fixed, moving)
        inverse_affine = lift_affine(inverse_affine, moving, fixed)
        warp, inverse_warp = lift_displacement(warp, fixed), lift_displacement(inverse_warp, moving)
    # all or nothing: a failure (e.g. a full disk) leaves out_dir as it was, earlier outputs included
    with staged_files(out) as stage:
        paths["warped"] = write_image(result.warped, stage / "warped.nii.gz")
        if result.warped_labels is not None:
            paths["warped_labels"] = write_labels(result.warped_labels, stage / "warped_labels.nii.gz")
        paths["affine"] = write_itk_affine(affine, stage / "affine.mat")
        paths["warp"] = write_displacement_field(warp, fixed_affine, stage / "warp.nii.gz")
        paths["inverse_affine"] = write_itk_affine(inverse_affine, stage / "inverse_affine.mat")
        paths["inverse_warp"] = write_displacement_field(inverse_warp, moving_affine,
                                                         stage / "inverse_warp.nii.gz")
        report = dict(result.report)
        report.update(extra_report or {})
        report["files"] = {k: v.name for k, v in paths.items()}
        paths["report"] = atomic_write_text(stage / "report.json", json_text(report, indent=2))
    return {k: out / v.name for k, v in paths.items()}
