"""Figure 3, the synthesis path of §3.1: x^A, x^B, x_hat^B = F_AB(G(x^A)), x_hat^A = F_BA(G(x^B)),
x_hat_T^B = F_AB(G(x^A) o phi_AB), and the residual x_hat_T^B - x^B that Eq. (7) minimises."""

from __future__ import annotations

import numpy as np

from firereg.explain.analysis import PairAnalysis
from firereg.explain.plotting import FigurePNG, new_figure, show_image, to_png
from firereg.explain.slices import View, take

__all__ = ["synthesis_figure", "synthesis_rms"]


def synthesis_rms(analysis: PairAnalysis) -> dict[str, float]:
    """RMS (normalized intensities) of the synthesis residuals the losses use: x_hat_T^B vs x^B
    (Eq. 7, registration accuracy) and x_hat^B vs x^B before any warp (for contrast)."""
    a = analysis
    return {"warped_synthesis_vs_fixed": float(np.sqrt(np.mean((a.synth_fixed_warped - a.fixed) ** 2))),
            "synthesis_vs_fixed": float(np.sqrt(np.mean((a.synth_fixed - a.fixed) ** 2)))}


def synthesis_figure(analysis: PairAnalysis, view: View, *, moving_name: str = "A",
                     fixed_name: str = "B") -> FigurePNG:
    """Six panels side by side; ``moving_name``/``fixed_name`` are the modalities, for the titles."""
    a = analysis
    fig, axes = new_figure(1, 6, colorbar="last")
    ax = axes[0]
    rms = synthesis_rms(a)
    panels = (
        (a.moving, f"x^A (moving, {moving_name})"),
        (a.fixed, f"x^B (fixed, {fixed_name})"),
        (a.synth_fixed, "x_hat^B = F_AB(G(x^A))"),
        (a.synth_moving, "x_hat^A = F_BA(G(x^B))"),
        (a.synth_fixed_warped, "x_hat_T^B = F_AB(G(x^A) o phi)"),
    )
    for i, (image, title) in enumerate(panels):
        show_image(ax[i], take(image, view), title=title)
    show_image(ax[5], take(a.synth_fixed_warped - a.fixed, view), cmap="RdBu_r", vmin=-2.0, vmax=2.0,
               title=f"x_hat_T^B - x^B (RMS {rms['warped_synthesis_vs_fixed']:.3f})", colorbar=True)
    fig.suptitle(f"Synthesis path ({view.label})", fontsize=9)
    caption = ("The inputs, then what the decoders make of the shared encoding G: x_hat^B renders the "
               "moving image's anatomy in the fixed image's contrast (it stays aligned with x^A), x_hat^A "
               "the reverse; x_hat_T^B decodes the moving features after warping them with phi, so it "
               "should match x^B in both contrast and position. The last panel is their difference, the "
               "residual of the registration accuracy loss (Eq. 7).")
    return FigurePNG(f"synthesis_{view.name}", f"Synthesis path, {view.label}", caption, to_png(fig))
