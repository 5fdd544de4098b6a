"""Figure 1, alignment (as the paper's Figs. 5-7): the fixed image with the moving image's label
outlines (or, without labels, its edges) unaligned, after FIRE-affine and after full FIRE, then
checkerboards and intensity differences of the fixed and the (warped) moving image."""

from __future__ import annotations

import numpy as np

from firereg.explain.analysis import PairAnalysis
from firereg.explain.plotting import (
    FigurePNG,
    checkerboard,
    draw_edges,
    draw_label_contours,
    label_colours,
    new_figure,
    show_image,
    to_png,
)
from firereg.explain.slices import View, take

__all__ = ["alignment_dice", "mean_dice", "alignment_figure", "STAGES"]

STAGES = (("unaligned", "unaligned"), ("affine", "FIRE-affine"), ("full", "FIRE"))


def mean_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Dice over the non-zero labels present in ``a`` or ``b`` (NaN when neither has any)."""
    values = sorted((set(np.unique(a).tolist()) | set(np.unique(b).tolist())) - {0})
    if not values:
        return float("nan")
    scores = []
    for v in values:
        x, y = a == v, b == v
        scores.append(2.0 * np.logical_and(x, y).sum() / (x.sum() + y.sum()))
    return float(np.mean(scores))


def _stage_images(analysis: PairAnalysis) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """(moving image, moving labels) on the fixed model grid at each stage."""
    a = analysis
    return {"unaligned": (a.moving, a.moving_labels), "affine": (a.warped_affine, a.labels_affine),
            "full": (a.warped, a.labels_warped)}


def alignment_dice(analysis: PairAnalysis) -> dict[str, float] | None:
    """Mean Dice of the moving labels with the fixed labels at each stage (None without both)."""
    if analysis.moving_labels is None or analysis.fixed_labels is None:
        return None
    return {key: mean_dice(labels, analysis.fixed_labels)
            for key, (_, labels) in _stage_images(analysis).items()}


def alignment_figure(analysis: PairAnalysis, view: View) -> FigurePNG:
    """Rows: outlines on the fixed image, checkerboard, difference; columns: the three stages."""
    a = analysis
    fig, axes = new_figure(3, 3, colorbar="last")
    fixed = take(a.fixed, view)
    stages = _stage_images(a)
    has_labels = a.moving_labels is not None
    values = set()
    for labels in (a.moving_labels, a.fixed_labels):
        if labels is not None:
            values |= set(np.unique(labels).tolist()) - {0}
    colours = label_colours(sorted(values))
    fixed_plane = take(a.fixed_labels, view) if a.fixed_labels is not None else None
    dice = alignment_dice(a)
    for col, (key, name) in enumerate(STAGES):
        image, labels = stages[key]
        moving = take(image, view)
        title = name + (f" (Dice {dice[key]:.3f})" if dice is not None else "")
        show_image(axes[0, col], fixed, title=title)
        if fixed_plane is not None:
            draw_label_contours(axes[0, col], fixed_plane, dict.fromkeys(colours, "white"),
                                linestyle="dashed", linewidth=0.7)
        if has_labels:
            draw_label_contours(axes[0, col], take(labels, view), colours)
        else:
            draw_edges(axes[0, col], moving)
        show_image(axes[1, col], checkerboard(fixed, moving), title=f"checkerboard, {name}")
        rms = float(np.sqrt(np.mean((a.fixed - image) ** 2)))
        show_image(axes[2, col], fixed - moving, cmap="RdBu_r", vmin=-2.0, vmax=2.0,
                   title=f"fixed - moving, {name} (RMS {rms:.3f})", colorbar=col == 2)
    outline = "label outlines of the moving image" if has_labels else "edges of the moving image (red)"
    fig.suptitle(f"Alignment ({view.label}): {outline} on the fixed image", fontsize=9)
    fixed_note = " Dashed white: the fixed image's own labels." if fixed_plane is not None else ""
    caption = (f"Top row: the fixed image with the {outline}, before registration, after FIRE's affine "
               f"part phi_af and after the full phi = phi_af o phi_nr.{fixed_note} Middle: checkerboard "
               "tiles alternate fixed and moving; misalignment shows as broken edges at tile borders. "
               "Bottom: fixed minus moving intensities (normalized to [-1, 1]); across modalities these "
               "differ by contrast, so read edges, not colour.")
    return FigurePNG(f"alignment_{view.name}", f"Alignment, {view.label}", caption, to_png(fig))
