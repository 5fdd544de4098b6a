"""Figure 4, the latent space: how modality-invariant G's representation is (what Eq. 3 asks for).

**Definition.** For each channel ``c`` of G's output, ``r_c`` is the Pearson correlation over the
voxels of the feature grid between ``(G(x^A) o phi_AB)_c`` (the moving image's features, warped
onto the fixed grid by the full transform exactly as the model warps them in training) and
``G(x^B)_c`` (the fixed image's features)::

    r_c = sum_v (a_c(v) - mean a_c) (b_c(v) - mean b_c)
          / sqrt(sum_v (a_c(v) - mean a_c)^2 * sum_v (b_c(v) - mean b_c)^2)

The *mean latent correlation* is the mean of ``r_c`` over the channels; a channel that is constant
(standard deviation below 1e-8 times the largest channel's) in either map has no correlation and
is left out, and their number is reported. It is also computed before warping (``G(x^A)`` against
``G(x^B)``, the images only brought to one grid shape) and after the affine part only
(``G(x^A) o phi_af``), for contrast. 1 means the two modalities' features agree up to a positive
scale and offset per channel; Eq. (3)'s RMS loss asks for more (equal values), but correlation
does not depend on the channel's scale, so channels can be compared.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from firereg.explain.analysis import PairAnalysis
from firereg.explain.plotting import DPI, FigurePNG, new_figure, show_image, to_png
from firereg.explain.slices import View, take

__all__ = ["LatentCorrelation", "channel_correlations", "latent_correlation", "latent_maps_figure",
           "latent_histogram_figure", "EXTREMES"]

EXTREMES = 3  # channels shown at each end


def channel_correlations(a: np.ndarray, b: np.ndarray, rel_tol: float = 1e-8) -> np.ndarray:
    """Per-channel Pearson correlation of two ``(C, *S)`` feature maps; NaN for a channel that is
    constant in either (std below ``rel_tol`` times the largest channel std of that map)."""
    a = np.asarray(a, dtype=np.float64).reshape(a.shape[0], -1)
    b = np.asarray(b, dtype=np.float64).reshape(b.shape[0], -1)
    if a.shape != b.shape:
        raise ValueError(f"channel_correlations: feature maps differ in shape, {a.shape} and {b.shape}")
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    sa, sb = np.sqrt((a**2).mean(axis=1)), np.sqrt((b**2).mean(axis=1))
    valid = (sa > rel_tol * max(sa.max(), 1e-300)) & (sb > rel_tol * max(sb.max(), 1e-300))
    r = np.full(a.shape[0], np.nan)
    r[valid] = (a[valid] * b[valid]).mean(axis=1) / (sa[valid] * sb[valid])
    return np.clip(r, -1.0, 1.0)


@dataclass(frozen=True)
class LatentCorrelation:
    """Per-channel correlations with G(x^B), at three stages, and their means over valid channels."""

    after: np.ndarray  # G(x^A) o phi_AB
    affine: np.ndarray  # G(x^A) o phi_af
    before: np.ndarray  # G(x^A)

    @staticmethod
    def _mean(r: np.ndarray) -> float:
        return float(np.nanmean(r)) if np.isfinite(r).any() else float("nan")

    @property
    def mean_after(self) -> float:
        return self._mean(self.after)

    @property
    def mean_affine(self) -> float:
        return self._mean(self.affine)

    @property
    def mean_before(self) -> float:
        return self._mean(self.before)

    @property
    def left_out(self) -> int:
        """Channels without a correlation after warping (constant in either map)."""
        return int(np.isnan(self.after).sum())

    def ranked(self) -> tuple[list[int], list[int]]:
        """(most similar channels, least similar channels), :data:`EXTREMES` each, by ``after``;
        the two lists do not overlap."""
        finite = [int(c) for c in np.flatnonzero(np.isfinite(self.after))]
        order = sorted(finite, key=lambda c: (-self.after[c], c))
        most = order[:EXTREMES]
        least = order[len(most):][::-1][:EXTREMES]
        return most, least

    def to_dict(self) -> dict:
        most, least = self.ranked()
        return {"mean_before": self.mean_before, "mean_affine": self.mean_affine,
                "mean_after": self.mean_after, "channels": int(self.after.size),
                "channels_left_out": self.left_out,
                "most_similar_channels": most, "least_similar_channels": least,
                "per_channel_after": [None if np.isnan(v) else float(v) for v in self.after]}


def latent_correlation(analysis: PairAnalysis) -> LatentCorrelation:
    """Per-channel correlations of ``analysis``'s moving features with the fixed ones."""
    a = analysis
    return LatentCorrelation(after=channel_correlations(a.feat_moving_warped, a.feat_fixed),
                             affine=channel_correlations(a.feat_moving_affine, a.feat_fixed),
                             before=channel_correlations(a.feat_moving, a.feat_fixed))


def latent_maps_figure(analysis: PairAnalysis, corr: LatentCorrelation, view: View) -> FigurePNG:
    """Rows: the most and the least similar channels; each as (G(x^A) o phi, G(x^B)) side by side."""
    a = analysis
    most, least = corr.ranked()
    cols = 2 * max(len(most), 1)
    fig, axes = new_figure(2, cols, panel=1.9)
    for row, (channels, what) in enumerate(((most, "most"), (least, "least"))):
        for ax in axes[row]:
            ax.set_axis_off()
        for i, c in enumerate(channels):
            warped = take(a.feat_moving_warped[c], view, image_shape=a.shape)
            fixed = take(a.feat_fixed[c], view, image_shape=a.shape)
            lo = float(min(a.feat_moving_warped[c].min(), a.feat_fixed[c].min()))
            hi = float(max(a.feat_moving_warped[c].max(), a.feat_fixed[c].max()))
            hi = hi if hi > lo else lo + 1e-6
            show_image(axes[row, 2 * i], warped, cmap="viridis", vmin=lo, vmax=hi,
                       title=f"ch {c} A o phi (r={corr.after[c]:.2f})")
            show_image(axes[row, 2 * i + 1], fixed, cmap="viridis", vmin=lo, vmax=hi, title=f"ch {c} B")
            axes[row, 2 * i].set_axis_on()
            axes[row, 2 * i + 1].set_axis_on()
        if not channels:
            axes[row, 0].text(0.5, 0.5, f"no {what} similar channel (every channel is constant)",
                              ha="center", va="center", fontsize=8, transform=axes[row, 0].transAxes)
    fig.suptitle(f"Latent channels ({view.label}): top row most similar, bottom row least similar",
                 fontsize=9)
    caption = (f"Each pair shows one channel of G's output: the moving image's features warped by phi "
               f"(G(x^A) o phi) and the fixed image's (G(x^B)), on one colour scale. Top: the {len(most)} "
               f"channels whose two maps correlate most; bottom: the {len(least)} that correlate least. "
               "Similar pairs are the modality-invariant part of the representation that Eq. (3) trains.")
    return FigurePNG(f"latent_{view.name}", f"Latent channels, {view.label}", caption, to_png(fig))


def latent_histogram_figure(corr: LatentCorrelation) -> FigurePNG:
    """Histogram of the per-channel correlations before warping and after the full transform."""
    fig = Figure(figsize=(5.5, 3.4), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.14, top=0.91)
    bins = np.linspace(-1.0, 1.0, 41)
    for values, colour, name in ((corr.before, "#999999", f"before warping (mean {corr.mean_before:.3f})"),
                                 (corr.after, "#1f77b4", f"G(x^A) o phi (mean {corr.mean_after:.3f})")):
        finite = values[np.isfinite(values)]
        ax.hist(finite, bins=bins, color=colour, alpha=0.7, label=name)
    ax.set_xlabel("per-channel correlation with G(x^B)", fontsize=8)
    ax.set_ylabel("channels", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper left")
    left = f", {corr.left_out} constant channel(s) left out" if corr.left_out else ""
    ax.set_title(f"{corr.after.size} channels{left}", fontsize=8)
    caption = ("How many of G's channels reach each correlation between the moving and the fixed image's "
               "features, before warping (grey) and after warping the moving features by phi (blue). A "
               "modality-invariant encoder puts the blue mass near 1 once the images are aligned.")
    return FigurePNG("latent_histogram", "Latent correlation per channel", caption, to_png(fig))
