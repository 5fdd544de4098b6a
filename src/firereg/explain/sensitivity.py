"""Figure 5, sensitivity maps: which regions of the two input images drive the transform.

The paper names Grad-CAM across the model's components as future work (§6.3); this module gives two
gradient-based maps for four scalar *targets* computed from ``T_AB(G(x^A), G(x^B))``.

**Targets** (``d`` = 2 or 3; ``theta`` = phi_af as a ``d x (d+1)`` matrix in normalized coordinates,
``I`` = the identity ``[1 0 | 0]``; ``||.||`` the Euclidean / Frobenius norm):

* ``affine``: ``||theta - I||``, how far the affine part is from the identity;
* ``translation``: ``||theta[:, d]||``, its translation column;
* ``linear``: ``||theta[:, :d] - I_d||``, its rotation / scaling / shear part;
* ``displacement``: the mean over the feature grid of ``||L u(v)||``, the non-rigid displacement
  ``u = phi_nr`` turned into mm by the fixed grid's normalized -> mm matrix ``L``.

Each norm is computed as ``sqrt(sum of squares + 1e-12)`` so that its gradient is defined (and 0)
at the identity.

**Maps**, for a target ``s`` and each input image ``x`` (moving ``x^A`` and fixed ``x^B``):

* *input x gradient*: ``S(v) = |ds/dx(v) * (x(v) - b)|`` with the baseline ``b = -1``, the
  normalized background intensity: a first-order estimate of how much ``s`` would change if voxel
  ``v`` were blanked to background (one step of integrated gradients from ``b``);
* *Grad-CAM on G*: with ``f = G(x)`` (G's last feature map, ``C`` channels on the feature grid),
  ``alpha_c = mean_v ds/df_c(v)`` and ``CAM(v) = ReLU(sum_c alpha_c f_c(v))``, linearly upsampled
  to the image grid: the feature regions whose activation increases ``s``.

For display each map is divided by the largest value of that target and method over *both*
images, so the moving and fixed panels share one scale, and each panel's title gives its image's
share of the total, ``sum_v S_image(v) / (sum_v S_moving(v) + sum_v S_fixed(v))``. A target that
does not depend on the input (an untrained T's last layer is zero) has all-zero maps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from firereg.evaluation.deformation import normalized_to_physical
from firereg.explain.analysis import PairAnalysis, PreparedPair, model_pieces
from firereg.explain.plotting import FigurePNG, new_figure, show_image, to_png
from firereg.explain.slices import View, take
from firereg.model import FireModel

__all__ = ["Sensitivity", "sensitivity_maps", "sensitivity_figure", "TARGETS", "METHODS", "BASELINE"]

TARGETS = {
    "affine": "||theta - I||",
    "translation": "||translation||",
    "linear": "||linear - I||",
    "displacement": "mean |phi_nr| (mm)",
}
METHODS = {"gradient": "input x gradient", "gradcam": "Grad-CAM on G"}
BASELINE = -1.0
_EPS = 1e-12


@dataclass
class Sensitivity:
    """Maps ``(*S)`` per target and method: ``maps[target][method] = (moving, fixed)``, raw (not
    normalized), and each target's value."""

    values: dict[str, float] = field(default_factory=dict)
    maps: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)

    def share_moving(self, target: str, method: str) -> float:
        """The moving image's share of the total attribution (NaN when both maps are zero)."""
        m, f = self.maps[target][method]
        total = float(m.sum() + f.sum())
        return float(m.sum()) / total if total > 0 else float("nan")

    def to_dict(self) -> dict:
        return {"targets": dict(self.values),
                "moving_share": {t: {m: self.share_moving(t, m) for m in METHODS} for t in self.maps}}


def _norm(t: torch.Tensor) -> torch.Tensor:
    return torch.sqrt((t * t).sum() + _EPS)


def sensitivity_maps(model: FireModel, pair: PreparedPair, direction: str = "ab",
                     device: str | torch.device = "cpu") -> Sensitivity:
    """Gradients of the four targets w.r.t. both input images and G's outputs (see module docstring)."""
    model = model.ready_for_inference(device)
    pieces = model_pieces(model, direction)
    size = tuple(pair.fixed.shape[2:])
    d = len(size)
    x_m = pair.moving.to(device).detach().clone().requires_grad_(True)
    x_f = pair.fixed.to(device).detach().clone().requires_grad_(True)
    lin = torch.as_tensor(normalized_to_physical(pair.fixed_grid)[:d, :d], dtype=x_m.dtype, device=device)
    out = Sensitivity()
    with torch.enable_grad():
        feat_m, feat_f = pieces.encoder(x_m), pieces.encoder(x_f)
        parts = pieces.transform(feat_m, feat_f)
        theta = parts.affine[0]
        eye = torch.eye(d, d + 1, dtype=theta.dtype, device=theta.device)
        u_mm = torch.einsum("ij,nj...->ni...", lin, parts.nonrigid)  # (1, d, *S/4)
        targets = {
            "affine": _norm(theta - eye),
            "translation": _norm(theta[:, d]),
            "linear": _norm(theta[:, :d] - eye[:, :d]),
            "displacement": torch.sqrt((u_mm * u_mm).sum(dim=1) + _EPS).mean(),
        }
        for name, s in targets.items():
            grads = torch.autograd.grad(s, [x_m, x_f, feat_m, feat_f], retain_graph=True, allow_unused=True)
            g_xm, g_xf, g_fm, g_ff = (torch.zeros_like(t) if g is None else g
                                      for g, t in zip(grads, (x_m, x_f, feat_m, feat_f), strict=True))
            out.values[name] = float(s.detach())
            out.maps[name] = {
                "gradient": tuple(_np((g * (x.detach() - BASELINE)).abs())
                                  for g, x in ((g_xm, x_m), (g_xf, x_f))),
                "gradcam": tuple(_np(_gradcam(f.detach(), g, size))
                                 for f, g in ((feat_m, g_fm), (feat_f, g_ff))),
            }
    return out


def _gradcam(features: torch.Tensor, grad: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    weights = grad.flatten(2).mean(dim=2)  # (1, C)
    cam = F.relu(torch.einsum("nc,nc...->n...", weights, features)).unsqueeze(1)
    mode = "bilinear" if len(size) == 2 else "trilinear"
    return F.interpolate(cam, size=size, mode=mode, align_corners=True)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()[0, 0]


def _overlay(ax, image: np.ndarray, heat: np.ndarray, scale: float, title: str) -> None:
    show_image(ax, image, title=title)
    if scale <= 0:
        ax.text(0.5, 0.5, "all zero", color="white", ha="center", va="center", fontsize=8,
                transform=ax.transAxes)
        return
    shown = heat / scale
    ax.imshow(np.ma.masked_where(shown < 0.02, shown), cmap="turbo", vmin=0.0, vmax=1.0, alpha=0.6,
              origin="lower", interpolation="nearest")


def sensitivity_figure(analysis: PairAnalysis, sens: Sensitivity, view: View) -> FigurePNG:
    """Rows: the targets; columns: input x gradient on moving / fixed, Grad-CAM on moving / fixed."""
    a = analysis
    rows = list(sens.maps)
    fig, axes = new_figure(len(rows), 4, panel=2.2, title_lines=2, ylabel=True)
    images = (take(a.moving, view), take(a.fixed, view))
    for r, target in enumerate(rows):
        for m, method in enumerate(METHODS):
            maps = sens.maps[target][method]
            scale = float(max(maps[0].max(), maps[1].max()))
            share = sens.share_moving(target, method)
            for side, name in enumerate(("moving", "fixed")):
                pct = "" if np.isnan(share) else f" {100 * (share if side == 0 else 1 - share):.0f}%"
                title = f"{METHODS[method]}\n{name}{pct}" if r == 0 else f"{name}{pct}"
                _overlay(axes[r, 2 * m + side], images[side], take(maps[side], view), scale, title)
        axes[r, 0].set_ylabel(TARGETS[target], fontsize=8)
    fig.suptitle(f"Sensitivity ({view.label}): which input regions drive phi_af and phi_nr", fontsize=9)
    caption = ("Each row is one quantity of the predicted transform (the affine part's distance from the "
               "identity, its translation, its linear part, the mean non-rigid displacement); the columns "
               "show which voxels of the moving and the fixed image it depends on, by input x gradient "
               "(|ds/dx| times the intensity above background) and by Grad-CAM on G's output. The "
               "percentage is that image's share of the total; both images of a pair share one colour "
               "scale (turbo: blue low, red high; below 2% of the maximum not drawn).")
    return FigurePNG(f"sensitivity_{view.name}", f"Sensitivity, {view.label}", caption, to_png(fig))
