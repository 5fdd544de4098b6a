"""``explain_pair``: every figure and number of the explanation report for one image pair."""

from __future__ import annotations

import html
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from firereg.data.image import Image
from firereg.explain.analysis import PairAnalysis, analyse_pair, prepare_pair
from firereg.explain.deformation import deformation_figure
from firereg.explain.latent import latent_correlation, latent_histogram_figure, latent_maps_figure
from firereg.explain.overlays import alignment_dice, alignment_figure
from firereg.explain.report import ExplainReport, Number, Section
from firereg.explain.sensitivity import METHODS, TARGETS, sensitivity_figure, sensitivity_maps
from firereg.explain.slices import SliceChoice, View, choose_slices
from firereg.explain.synthesis import synthesis_figure, synthesis_rms
from firereg.model import FireModel

__all__ = ["ModelInfo", "explain_pair", "slice_source"]


@dataclass(frozen=True)
class ModelInfo:
    """What the report says about the model.

    Attributes:
        name: a shipped model's name or a checkpoint folder.
        card: the model card as a dict (``ModelCard.to_dict()``), or None.
        how: how the model and direction were chosen.
        step: the checkpoint's training step, when known.
    """

    name: str
    card: dict[str, Any] | None = None
    how: str = ""
    step: int | None = None


def _fmt(value: float, digits: int = 3, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}{unit}"


def slice_source(analysis: PairAnalysis) -> tuple[np.ndarray | None, str]:
    """The label map the 3D slices are chosen from: the fixed labels, else the moving labels
    warped by FIRE onto the fixed grid, else none (the image's centre of mass is used)."""
    if analysis.fixed_labels is not None:
        return analysis.fixed_labels, "fixed labels"
    if analysis.labels_warped is not None:
        return analysis.labels_warped, "moving labels after FIRE"
    return None, ""


def _card_rows(info: ModelInfo) -> list[tuple[str, str]]:
    card = info.card
    if card is None:
        rows = [("model", info.name), ("card", "none (a checkpoint without card.json)")]
        if info.step is not None:
            rows.append(("training iterations (checkpoint step)", f"{info.step:,}"))
        return rows
    val = card.get("validation") or {}
    keys = ("dice_unaligned", "dice_affine", "dice")
    dice = "-"
    if all(k in val for k in keys):
        dice = " -> ".join(f"{val[k]:.3f}" for k in keys)
        dice += f" ({int(val['pairs'])} pairs)" if "pairs" in val else ""
    return [("name", card["name"]),
            ("modalities (A <-> B)", f"{card['modality_a']} <-> {card['modality_b']}"),
            ("dimensions", f"{card['ndim']}D"), ("model-grid spacing", f"{card['spacing_mm']:g} mm"),
            ("training iterations", f"{card['iterations']:,}"),
            ("validation Dice (unaligned -> affine -> full)", dice), ("dataset", card.get("dataset", "")),
            ("trained with", card.get("command", "")), ("machine", card.get("machine", "")),
            ("notes", card.get("notes", ""))]


def _definitions_html() -> str:
    targets = "".join(f"<li><code>{html.escape(k)}</code>: {html.escape(v)}</li>" for k, v in TARGETS.items())
    return (
        "<h3>Latent correlation</h3><p>For each channel c of G's output, r_c is the Pearson correlation, "
        "over the voxels of the feature grid, between channel c of G(x^A) o phi_AB (the moving image's "
        "features warped by the full transform, as in training) and channel c of G(x^B):</p>"
        "<pre>r_c = sum_v (a_c(v) - mean a_c)(b_c(v) - mean b_c) / "
        "sqrt(sum_v (a_c(v) - mean a_c)^2 * sum_v (b_c(v) - mean b_c)^2)</pre>"
        "<p>The mean latent correlation is the mean of r_c over the channels (channels constant in either "
        "map are left out and counted). It is also given before warping (G(x^A) against G(x^B)) and after "
        "the affine part only (G(x^A) o phi_af). Eq. (3) trains G(x^A) o phi_AB to equal G(x^B); "
        "correlation measures the same agreement without depending on each channel's scale.</p>"
        "<h3>Sensitivity</h3><p>Four scalar targets of T_AB(G(x^A), G(x^B)), with theta = phi_af as a "
        "d x (d+1) matrix in normalized coordinates and I = [identity | 0]; every norm is "
        "sqrt(sum of squares + 1e-12):</p><ul>"
        f"{targets}</ul><p>(the last: the mean over the feature grid of the length of the non-rigid "
        "displacement phi_nr, converted to mm by the fixed grid's normalized-to-mm matrix). For a target s "
        "and an input image x:</p><ul>"
        "<li><b>input x gradient</b>: S(v) = |ds/dx(v) * (x(v) - b)| with baseline b = -1, the normalized "
        "background: a first-order estimate of how much s changes if voxel v is blanked to background;</li>"
        "<li><b>Grad-CAM on G</b>: with f = G(x), alpha_c = mean_v ds/df_c(v) and CAM(v) = ReLU(sum_c "
        "alpha_c f_c(v)), linearly upsampled to the image grid.</li></ul>"
        "<p>Each map is divided by the maximum of that target and method over both images; the percentage "
        "in a panel's title is that image's share of the sum over both. A target that does not depend on "
        "the input (an untrained network's last layer is zero) gives all-zero maps.</p>"
        "<h3>Physical quantities</h3><p>|T(x) - x| is the distance in mm between a fixed-grid voxel and the "
        "moving-image point it is mapped to (LPS physical coordinates of the two model grids, so it includes "
        "any offset between the images' fields of view). det J is the determinant of the physical Jacobian "
        "dT/dx (firereg.evaluation.deformation); folding is det J &lt;= 0. Inverse consistency is the mean "
        "|phi_BA(phi_AB(x)) - x| in mm over the fixed model grid.</p>")


def explain_pair(
    model: FireModel,
    moving: Image,
    fixed: Image,
    *,
    spacing_mm: float,
    direction: str = "ab",
    moving_labels: Image | None = None,
    fixed_labels: Image | None = None,
    labels_of_interest: Sequence[int] | None = None,
    moving_modality: str | None = None,
    fixed_modality: str | None = None,
    model_info: ModelInfo | None = None,
    device: str | torch.device = "cpu",
) -> ExplainReport:
    """Run the model's pieces on ``moving`` -> ``fixed`` and build the whole report.

    Args:
        spacing_mm: model-grid spacing (the model card's).
        direction: "ab" when the moving image is the model's modality A, else "ba".
        moving_labels, fixed_labels: label maps on the images' own grids (optional).
        labels_of_interest: label values whose centroid the 3D slices pass through.
        moving_modality, fixed_modality: names for the titles (default: the card's, else A and B).
    """
    ndim = model.config.ndim
    for name, image in (("moving", moving), ("fixed", fixed)):
        if image.ndim != ndim or image.is_series:
            raise ValueError(f"{image.source or name}: a {ndim}D model needs a single {ndim}D image, got "
                             f"a {image.ndim}D {'series' if image.is_series else 'image'}")
    info = model_info or ModelInfo(name="model")
    card = info.card
    if card is not None:
        side = (card["modality_a"], card["modality_b"])
        moving_modality = moving_modality or side[0 if direction == "ab" else 1]
        fixed_modality = fixed_modality or side[1 if direction == "ab" else 0]
    moving_name, fixed_name = moving_modality or "A", fixed_modality or "B"
    timings: dict[str, float] = {}
    start = time.perf_counter()
    pair = prepare_pair(moving, fixed, spacing_mm=spacing_mm, moving_labels=moving_labels,
                        fixed_labels=fixed_labels)
    analysis = analyse_pair(model, pair, direction, device)
    timings["analysis_s"] = time.perf_counter() - start
    start = time.perf_counter()
    sens = sensitivity_maps(model, pair, direction, device)
    timings["sensitivity_s"] = time.perf_counter() - start
    corr = latent_correlation(analysis)
    dice = alignment_dice(analysis)
    rms = synthesis_rms(analysis)
    labels, label_source = slice_source(analysis)
    views, choice = choose_slices(analysis.shape, labels=labels, image=analysis.fixed,
                                  labels_of_interest=labels_of_interest)
    if choice is not None and labels is not None:
        choice = SliceChoice(choice.centre, f"{choice.how} ({label_source})")

    start = time.perf_counter()
    sections = _sections(analysis, corr, sens, views, moving_name, fixed_name)
    timings["figures_s"] = time.perf_counter() - start

    numbers = _numbers(analysis, corr, dice, rms, sens, choice)
    inputs = [("moving (A)", f"{moving.source or 'moving'} ({moving_name})"),
              ("fixed (B)", f"{fixed.source or 'fixed'} ({fixed_name})"),
              ("moving labels", moving_labels.source if moving_labels is not None and moving_labels.source
               else ("given" if moving_labels is not None else "none")),
              ("fixed labels", fixed_labels.source if fixed_labels is not None and fixed_labels.source
               else ("given" if fixed_labels is not None else "none")),
              ("model", info.name), ("direction", direction), ("model selection", info.how or "-"),
              ("model grid", f"{' x '.join(map(str, analysis.shape))} voxels at {spacing_mm:g} mm"),
              ("slices shown", ", ".join(v.label for v in views)
               + (f" (through {choice.centre}: {choice.how})" if choice else ""))]
    summary = {
        "moving": moving.source, "fixed": fixed.source, "model": info.name, "model_card": card,
        "direction": direction, "selection": info.how, "ndim": ndim, "model_grid_shape": list(analysis.shape),
        "model_grid_spacing_mm": spacing_mm,
        "slices": {v.name: v.index for v in views if v.axis is not None},
        "slice_centre": list(choice.centre) if choice else None,
        "slice_choice": choice.how if choice else None,
        "folding_percent": analysis.folding_percent,
        "inverse_consistency_mm": analysis.inverse_consistency_mm,
        "mean_displacement_mm": float(analysis.displacement_mm.mean()),
        "max_nonrigid_mm": float(analysis.nonrigid_mm.max()),
        "affine_theta": analysis.theta.tolist(), "dice": dice, "synthesis_rms": rms,
        "latent_correlation": corr.to_dict(), "sensitivity": sens.to_dict(), "timings": timings,
    }
    title = f"FIRE explanation: {moving_name} -> {fixed_name} with {info.name}"
    return ExplainReport(title=title, inputs=inputs, card=_card_rows(info), numbers=numbers,
                         sections=sections, summary=summary)


def _numbers(a: PairAnalysis, corr, dice, rms, sens, choice) -> list[Number]:
    rows = [
        Number("folding", _fmt(a.folding_percent, 3, " %"), "share of fixed-grid voxels where det J <= 0"),
        Number("inverse consistency", _fmt(a.inverse_consistency_mm, 3, " mm"),
               "mean |phi_BA(phi_AB(x)) - x| over the fixed model grid"),
        Number("mean latent correlation, after FIRE", _fmt(corr.mean_after),
               "mean over G's channels of corr(G(x^A) o phi_AB, G(x^B)); 1 = modality-invariant and aligned"),
        Number("mean latent correlation, after FIRE-affine", _fmt(corr.mean_affine),
               "the same with G(x^A) o phi_af"),
        Number("mean latent correlation, before warping", _fmt(corr.mean_before),
               "the same with G(x^A) itself, for contrast"),
        Number("channels left out of the correlation", f"{corr.left_out} of {corr.after.size}",
               "constant in either feature map"),
        Number("mean |T(x) - x|", _fmt(float(a.displacement_mm.mean()), 2, " mm"),
               "mean length of the full displacement (affine + non-rigid)"),
        Number("max |phi_nr|", _fmt(float(a.nonrigid_mm.max()), 2, " mm"), "largest non-rigid displacement"),
        Number("RMS(x_hat_T^B - x^B)", _fmt(rms["warped_synthesis_vs_fixed"]),
               "residual of Eq. (7) (normalized intensities in [-1, 1])"),
        Number("affine theta", "; ".join(" ".join(f"{v:+.3f}" for v in row) for row in a.theta),
               "phi_af in normalized coordinates (rows; identity = 1 0 | 0)"),
    ]
    if dice is not None:
        rows.insert(0, Number("label Dice (unaligned -> FIRE-affine -> FIRE)",
                              " -> ".join(_fmt(dice[k]) for k in ("unaligned", "affine", "full")),
                              "mean Dice of the moving labels with the fixed labels over the labels present"))
    for target in TARGETS:
        share = sens.share_moving(target, "gradient")
        rows.append(Number(f"sensitivity target {target}", _fmt(sens.values[target], 4),
                           f"{TARGETS[target]}; moving image's share of the input x gradient: "
                           f"{'n/a' if math.isnan(share) else f'{100 * share:.0f} %'}"))
    if choice is not None:
        rows.append(Number("3D slices through", str(choice.centre), choice.how))
    return rows


def _sections(a: PairAnalysis, corr, sens, views: list[View], moving_name: str,
              fixed_name: str) -> list[Section]:
    both = a.moving_labels is not None
    return [
        Section("alignment", "1. Alignment",
                "The moving image's " + ("label outlines" if both else "edges")
                + " on the fixed image before registration, after FIRE's affine part and after full FIRE "
                "(as the paper's Figs. 5-7), with checkerboards and differences of the two images at each "
                "stage.",
                [alignment_figure(a, v) for v in views]),
        Section("deformation", "2. Deformation",
                "What the transform does to space: the moving grid drawn where it lands, how far each point "
                "moves, and where the transform expands, shrinks or folds.",
                [deformation_figure(a, v) for v in views]),
        Section("synthesis", "3. Synthesis path",
                "FIRE registers through synthesis: the decoders F_AB and F_BA render G's shared encoding in "
                "the other modality, before and after the encoding is warped by phi_AB.",
                [synthesis_figure(a, v, moving_name=moving_name, fixed_name=fixed_name) for v in views]),
        Section("latent", "4. Latent space",
                f"How modality-invariant G's representation is (Eq. 3): per channel, the correlation of the "
                f"warped moving features with the fixed ones; mean {_fmt(corr.mean_after)} after FIRE, "
                f"{_fmt(corr.mean_before)} before warping.",
                [latent_histogram_figure(corr), *(latent_maps_figure(a, corr, v) for v in views)]),
        Section("sensitivity", "5. Sensitivity",
                "Which regions of the two input images the predicted affine parameters and the non-rigid "
                f"displacement depend on ({', '.join(METHODS.values())}; exact definitions below).",
                [sensitivity_figure(a, sens, v) for v in views]),
        Section("definitions", "Definitions",
                "The exact definitions of the derived quantities in this report.", [], _definitions_html()),
    ]
