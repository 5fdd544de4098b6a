"""``firereg explain``: an HTML report of what a FIRE model does with one image pair.

Wire it into the top-level parser with :func:`add_explain_parser`; it sets ``func=run_explain``.
Nothing heavy is imported until the command runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_explain_parser", "run_explain"]

DEFAULT_SPACING = 1.28  # mm, the paper's model grid, for a checkpoint without a card


def add_explain_parser(sub) -> argparse.ArgumentParser:
    """Register ``firereg explain`` on the top-level subparsers ``sub``."""
    p = sub.add_parser(
        "explain", help="write an HTML report explaining a registration (figures + numbers)",
        description="Run a FIRE model's pieces (encoder G, transformation network T, decoders F) on one "
        "image pair and write into --out a self-contained explain.html (every image embedded), the "
        "figures as PNGs, and explain.json: label or edge overlays unaligned / FIRE-affine / FIRE, "
        "checkerboards and differences; the deformation (warped grid, displacement in mm, Jacobian "
        "determinant with folding); the synthesis path; per-channel correlation of G's features "
        "across modalities; and gradient sensitivity maps of the affine and non-rigid outputs. 3D "
        "images are shown in axial, coronal and sagittal slices through the labels' centroid. See "
        "docs/explain.md.")
    p.add_argument("--moving", required=True, help="moving image (.nii / .nii.gz)")
    p.add_argument("--fixed", required=True, help="fixed image (.nii / .nii.gz)")
    p.add_argument("--out", required=True, help="output folder (refused when it exists and is not "
                   "empty, unless --overwrite)")
    p.add_argument("--model", metavar="NAME|PATH",
                   help="a shipped model (firereg models), a checkpoint folder, or a training run folder "
                   "(its latest); default: the shipped model for the modality pair")
    p.add_argument("--moving-labels", help="label map on the moving grid (outlines, Dice)")
    p.add_argument("--fixed-labels", help="label map on the fixed grid (reference outlines, Dice)")
    p.add_argument("--moving-modality", metavar="MOD", help="the moving image's modality, e.g. T1")
    p.add_argument("--fixed-modality", metavar="MOD", help="the fixed image's modality, e.g. T2")
    p.add_argument("--direction", choices=("ab", "ba"), default=None,
                   help="ab: moving is the model's modality A; ba: modality B (default: from the "
                   "modalities, else ab)")
    p.add_argument("--labels-of-interest", type=int, nargs="+", metavar="LABEL",
                   help="3D: slices pass through the centroid of these label values (default: the "
                   "largest label region)")
    p.add_argument("--spacing", type=float, default=None,
                   help="model-grid spacing in mm (default: the model card's, else 1.28)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--overwrite", action="store_true",
                   help="write into an existing non-empty --out (files of the same names are replaced)")
    p.set_defaults(func=run_explain)
    return p



def _check_out(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    if any(out.iterdir()) and not overwrite:
        raise ValueError(f"--out {out}: exists and is not empty; pass --overwrite to write into it")


def _checkpoint_step(folder: Path) -> int | None:
    try:
        step = json.loads((folder / "checkpoint.json").read_text())["step"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return int(step) if isinstance(step, int) else None


def run_explain(args: argparse.Namespace) -> int:
    out = Path(args.out)
    _check_out(out, args.overwrite)

    from firereg.data.io import read_image, read_labels
    from firereg.explain import ModelInfo, explain_pair, write_report
    from firereg.pretrained.registry import select_model

    moving = read_image(args.moving)
    ndim = moving.ndim
    selection = select_model(args.model, ndim=ndim, moving_modality=args.moving_modality,
                             fixed_modality=args.fixed_modality, direction=args.direction)
    fixed = read_image(args.fixed, ndim=ndim)
    moving_labels = read_labels(args.moving_labels, ndim=ndim) if args.moving_labels else None
    fixed_labels = read_labels(args.fixed_labels, ndim=ndim) if args.fixed_labels else None
    from firereg.runtime import resolve_device

    device = resolve_device(args.device)
    model = selection.load(device=device)
    card = selection.card
    spacing = args.spacing if args.spacing is not None else (card.spacing_mm if card is not None
                                                             else DEFAULT_SPACING)
    info = ModelInfo(name=selection.model, card=card.to_dict() if card is not None else None,
                     how=selection.how, step=_checkpoint_step(Path(selection.checkpoint)))
    report = explain_pair(model, moving, fixed, spacing_mm=spacing, direction=selection.direction,
                          moving_labels=moving_labels, fixed_labels=fixed_labels,
                          labels_of_interest=args.labels_of_interest, moving_modality=args.moving_modality,
                          fixed_modality=args.fixed_modality, model_info=info, device=device)
    _check_out(out, args.overwrite)  # again: something may have appeared while the model ran
    from firereg.cli.register import output_lock

    # locked, and all or nothing: a failed write leaves --out as it was (a folder it made, removed)
    with output_lock(out):
        paths = write_report(report, out)
    s = report.summary
    print(f"firereg explain: {selection.how}")
    print(f"firereg explain: wrote {paths['html'].name}, {paths['json'].name} and "
          f"{len(report.figures)} figures into {out}")
    corr = s["latent_correlation"]
    print(f"  folding {s['folding_percent']:.3f}%, inverse consistency {s['inverse_consistency_mm']:.3f} mm, "
          f"mean latent correlation {corr['mean_before']:.3f} before -> {corr['mean_after']:.3f} "
          "after warping")
    return 0
