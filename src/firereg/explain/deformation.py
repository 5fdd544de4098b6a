"""Figure 2, the deformation: the moving grid's lines drawn where they land on the fixed image,
the displacement magnitude in mm (full transform and non-rigid part), and the Jacobian
determinant with folding (det <= 0) in a colour of its own."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import ListedColormap

from firereg.explain.analysis import PairAnalysis
from firereg.explain.plotting import FigurePNG, new_figure, show_image, to_png
from firereg.explain.slices import View, take

__all__ = ["deformation_figure", "FOLD_COLOUR", "grid_step"]

FOLD_COLOUR = "#00ff00"  # folding: bright green, outside the Jacobian colour map (blue-white-red)


def grid_step(shape) -> int:
    """Spacing of the drawn grid lines in voxels: about 16 lines across the largest axis."""
    return max(2, int(round(max(shape) / 16)))


def _draw_grid(ax, coords: list[np.ndarray], step: int) -> None:
    """Contours of the moving-grid voxel coordinates at multiples of ``step``: each line is a line of
    the moving image's own grid, drawn where phi puts it on the fixed grid."""
    for c in coords:
        if not c.max() > c.min():
            continue
        levels = np.arange(np.floor(c.min() / step) * step, np.ceil(c.max() / step) * step + step, step)
        levels = levels[(levels > c.min()) & (levels < c.max())]
        if levels.size:
            ax.contour(c, levels=levels, colors=["#ffd400"], linewidths=0.6)


def deformation_figure(analysis: PairAnalysis, view: View) -> FigurePNG:
    """Deformed grid over the fixed image, |T(x) - x| (mm), |phi_nr| (mm), det J with folding."""
    a = analysis
    fig, axes = new_figure(1, 4, colorbar="each")
    ax = axes[0]
    show_image(ax[0], take(a.fixed, view), title="moving grid lines on the fixed image")
    in_plane = [axis for axis in range(a.ndim) if axis != view.axis]
    _draw_grid(ax[0], [take(a.moving_voxels[i], view) for i in in_plane], grid_step(a.shape))

    show_image(ax[1], take(a.displacement_mm, view), cmap="magma", vmin=0.0,
               vmax=max(float(a.displacement_mm.max()), 1e-6),
               title=f"|T(x) - x| (mm), mean {a.displacement_mm.mean():.2f}", colorbar=True)
    show_image(ax[2], take(a.nonrigid_mm, view), cmap="magma", vmin=0.0,
               vmax=max(float(a.nonrigid_mm.max()), 1e-6),
               title=f"non-rigid |phi_nr| (mm), max {a.nonrigid_mm.max():.2f}", colorbar=True)

    jac = take(a.jacobian, view)
    finite = a.jacobian[np.isfinite(a.jacobian)]
    spread = float(np.max(np.abs(finite - 1.0))) if finite.size else 1.0
    spread = min(max(spread, 0.05), 2.0)
    show_image(ax[3], jac, cmap="RdBu_r", vmin=1.0 - spread, vmax=1.0 + spread, colorbar=True,
               title=f"det J, folding {a.folding_percent:.3f}%")
    folded = ~(jac > 0)
    if folded.any():
        ax[3].imshow(np.ma.masked_where(~folded, np.ones_like(jac)), cmap=ListedColormap([FOLD_COLOUR]),
                     origin="lower", interpolation="nearest", vmin=0, vmax=1)
    fig.suptitle(f"Deformation ({view.label})", fontsize=9)
    caption = ("Left: yellow lines are lines of the moving image's own voxel grid (every "
               f"{grid_step(a.shape)} voxels), drawn where the transform places them on the fixed image; "
               "straight, evenly spaced lines mean an affine map, local bends the non-rigid part. "
               "Then the length of the displacement T(x) - x in mm (affine and non-rigid together, "
               "physical coordinates), the non-rigid displacement phi_nr alone in mm, and the "
               "Jacobian determinant of T: 1 keeps volume, > 1 (red) expands, < 1 (blue) shrinks; "
               f"voxels with det <= 0 (folding) are painted green ({FOLD_COLOUR}).")
    return FigurePNG(f"deformation_{view.name}", f"Deformation, {view.label}", caption, to_png(fig))
