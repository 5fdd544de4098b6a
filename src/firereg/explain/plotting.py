"""Shared drawing helpers. Figures are built on matplotlib's Agg canvas directly (no pyplot, no
global backend switch), so they render the same with or without a display."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["FigurePNG", "new_figure", "to_png", "show_image", "label_colours", "draw_label_contours",
           "draw_edges", "edge_map", "checkerboard", "PANEL_INCHES", "DPI"]

PANEL_INCHES = 2.6
DPI = 90
# one colour per label value (cycled): distinct on a grey image
LABEL_COLOURS = ("#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#42d4f4",
                 "#f032e6", "#bfef45", "#fabed4", "#469990", "#dcbeff")


@dataclass(frozen=True)
class FigurePNG:
    """A rendered figure.

    Attributes:
        name: file name stem (``<name>.png``), unique within a report.
        title: heading shown above it in the report.
        caption: one or two sentences on how to read it.
        png: the PNG bytes.
    """

    name: str
    title: str
    caption: str
    png: bytes


def new_figure(rows: int, cols: int, *, panel: float = PANEL_INCHES, title_lines: int = 1,
               colorbar: str | None = None, ylabel: bool = False) -> tuple[Figure, np.ndarray]:
    """A figure of ``rows x cols`` square panels of ``panel`` inches on an Agg canvas, with room for
    ``title_lines`` lines of title per panel, a colour bar beside each panel (``colorbar="each"``) or
    the last column only (``"last"``), a label left of the first column (``ylabel``) and a figure
    title on top. Returns the axes as a 2D array.

    Margins are fixed in inches (no ``tight_layout``, which costs as much as drawing the figure).
    """
    if colorbar not in (None, "each", "last"):
        raise ValueError(f"new_figure: colorbar must be None, 'each' or 'last', got {colorbar!r}")
    gap_w = 0.15 + (0.55 if colorbar == "each" else 0.0)
    gap_h = 0.12 + 0.16 * title_lines
    left, right, top, bottom = (0.3 if ylabel else 0.08), 0.08 + (0.55 if colorbar else 0.0), 0.4, 0.08
    width = left + right + cols * panel + (cols - 1) * gap_w
    height = top + bottom + rows * panel + rows * gap_h
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False, gridspec_kw={
        "left": left / width, "right": 1 - right / width, "bottom": bottom / height,
        "top": 1 - (top + gap_h) / height, "wspace": gap_w / panel, "hspace": gap_h / panel})
    return fig, np.asarray(axes)


def to_png(fig: Figure) -> bytes:
    """Render ``fig`` to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def show_image(ax: Axes, plane: np.ndarray, *, title: str | None = None, cmap: str = "gray",
               vmin: float | None = -1.0, vmax: float | None = 1.0, colorbar: bool = False, **kwargs):
    """``imshow`` a plane from :func:`firereg.explain.slices.take` (origin lower, square voxels)."""
    im = ax.imshow(plane, cmap=cmap, vmin=vmin, vmax=vmax, origin="lower", interpolation="nearest",
                   **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)
    if colorbar:
        cb = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        cb.ax.tick_params(labelsize=6)
    return im


def label_colours(values) -> dict[int, str]:
    """A fixed colour for each label value."""
    return {int(v): LABEL_COLOURS[(int(v) - 1) % len(LABEL_COLOURS)] for v in values}


def draw_label_contours(ax: Axes, labels: np.ndarray, colours: dict[int, str], *, linestyle: str = "solid",
                        linewidth: float = 1.0) -> None:
    """The outline of every label of ``colours`` present in the ``labels`` plane."""
    for value, colour in colours.items():
        mask = (labels == value).astype(float)
        if mask.min() == mask.max():
            continue
        ax.contour(mask, levels=[0.5], colors=[colour], linewidths=linewidth, linestyles=linestyle)


def edge_map(plane: np.ndarray) -> np.ndarray:
    """Gradient magnitude (Gaussian derivative, sigma 1 voxel) of an image plane."""
    from scipy.ndimage import gaussian_gradient_magnitude

    return gaussian_gradient_magnitude(np.asarray(plane, dtype=np.float64), sigma=1.0)


def draw_edges(ax: Axes, plane: np.ndarray, *, colour: str = "#ff3030", quantile: float = 0.9) -> None:
    """Contours of ``plane``'s strong edges: its gradient magnitude at its ``quantile``."""
    edges = edge_map(plane)
    level = float(np.quantile(edges, quantile))
    if level <= 0 or edges.max() <= level:
        return
    ax.contour(edges, levels=[level], colors=[colour], linewidths=0.8)


def checkerboard(a: np.ndarray, b: np.ndarray, tiles: int = 8) -> np.ndarray:
    """``a`` on the even tiles, ``b`` on the odd ones, ``tiles`` tiles along each axis."""
    idx = np.indices(a.shape)
    parity = sum((i * tiles) // n for i, n in zip(idx, a.shape, strict=True)) % 2
    return np.where(parity == 0, a, b)
