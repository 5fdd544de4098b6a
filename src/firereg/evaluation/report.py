"""``report.html``: one self-contained page (figures embedded as base64 PNG) of an evaluation.

It holds what the data are (and what is synthetic about them), the tables of
:mod:`firereg.evaluation.tables`, a box plot of the per-case mean Dice of each method, one example
case (the fixed image with the fixed labels and the warped moving labels of unaligned, ANTs-SyN
and FIRE), the machine, and every method's exact settings. Figures are drawn with matplotlib's
Agg backend (no display needed).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from firereg.evaluation.experiment_config import METHOD_LABELS
from firereg.evaluation.tables import Table

__all__ = ["box_plot_png", "example_png", "render_html", "png_data_uri"]

_EXAMPLE_METHODS = ("unaligned", "ants_syn", "fire")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    _pyplot().close(fig)
    return buffer.getvalue()


def png_data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def box_plot_png(records: Sequence[dict[str, Any]], methods: Sequence[str], title: str, *,
                 key: str = "mean_dice", scale: float = 100.0, ylabel: str = "mean Dice per case (%)",
                 ylim: tuple[float, float] | None = (0, 100)) -> bytes:
    """A box plot of a per-case score of each method (default: the mean Dice in %)."""
    plt = _pyplot()
    data, names = [], []
    for method in methods:
        values = [scale * r["methods"][method][key] for r in records
                  if "error" not in r["methods"].get(method, {"error": 1})
                  and r["methods"][method].get(key) is not None]
        data.append(values or [float("nan")])
        names.append(f"{METHOD_LABELS[method]}\n(n={len(values)})")
    fig, ax = plt.subplots(figsize=(1.6 * len(methods) + 2.0, 4.0))
    ax.boxplot(data, tick_labels=names, showmeans=True)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _png(fig)


def _plane(volume: np.ndarray, k: int | None) -> np.ndarray:
    return volume if volume.ndim == 2 else volume[:, :, k]


def example_png(example: dict[str, Any], methods: Sequence[str], labels: dict[int, str],
                title: str) -> bytes:
    """The fixed image with the fixed labels (solid) and each method's warped labels (dashed)."""
    plt = _pyplot()
    shown = [m for m in _EXAMPLE_METHODS if m in example["warped_labels"]] or list(example["warped_labels"])
    fixed_labels = example["fixed_labels"]
    k = None
    if fixed_labels.ndim == 3:  # the axial plane with the most scored voxels
        scored = np.isin(fixed_labels, list(labels)).sum(axis=(0, 1))
        k = int(np.argmax(scored))
    spacing = example["spacing"]
    aspect = float(spacing[1] / spacing[0]) if len(spacing) > 1 else 1.0
    colours = ["tab:red", "tab:cyan", "tab:orange", "tab:green", "tab:purple", "tab:olive"]
    panels = [("moving (transformed)", example["moving"], example["moving_labels"])] + [
        (METHOD_LABELS[m], example["fixed"], example["warped_labels"][m]) for m in shown]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.1 * len(panels), 3.6))
    for ax, (name, image, warped) in zip(np.atleast_1d(axes), panels, strict=True):
        ax.imshow(_plane(image, k).T, cmap="gray", origin="lower", aspect=aspect)
        for colour, value in zip(colours, labels, strict=False):
            fixed_mask = (_plane(fixed_labels, k) == value).astype(float).T
            warped_mask = (_plane(warped, k) == value).astype(float).T
            if name != "moving (transformed)" and fixed_mask.any():
                ax.contour(fixed_mask, levels=[0.5], colors=[colour], linewidths=0.9)
            if warped_mask.any():
                ax.contour(warped_mask, levels=[0.5], colors=[colour], linewidths=0.9, linestyles="dashed")
        ax.set_title(name if name.startswith("moving") else f"fixed + {name}", fontsize=9)
        ax.axis("off")
    legend = ", ".join(f"{labels[v]} ({c.removeprefix('tab:')})"
                       for c, v in zip(colours, labels, strict=False))
    fig.suptitle(f"{title}\nsolid: fixed labels; dashed: moving labels (warped by the method). {legend}",
                 fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in [table.row_header, *table.columns])
    rows = "".join("<tr><th>" + html.escape(name) + "</th>"
                   + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
                   for name, cells in table.rows)
    notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in table.notes)
    return (f"<h3>{html.escape(table.title)}</h3><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{rows}</tbody></table>{notes}")


_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child { text-align: left; }
.data { background: #fff6d6; border: 1px solid #e0c060; padding: 0.6em 1em; }
.note { font-size: 0.85em; color: #555; }
pre { background: #f4f4f4; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
"""


def render_html(*, title: str, data_note: str, summary_lines: Sequence[str], tables: Sequence[Table],
                figures: Sequence[tuple[str, bytes]], conventions: Sequence[str],
                machine: dict[str, Any], settings: dict[str, Any], config: dict[str, Any]) -> str:
    """The whole page as a string; every image is an embedded PNG data URI."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<p class='data'><b>Data:</b> {html.escape(data_note)}</p>", "<ul>"]
    parts += [f"<li>{html.escape(line)}</li>" for line in summary_lines]
    parts.append("</ul><h2>Results</h2>")
    parts += [_html_table(t) for t in tables]
    parts.append("<h2>Figures</h2>")
    for caption, png in figures:
        parts.append(f"<figure><img alt='{html.escape(caption)}' src='{png_data_uri(png)}'>"
                     f"<figcaption class='note'>{html.escape(caption)}</figcaption></figure>")
    parts.append("<h2>Conventions</h2><ul>")
    parts += [f"<li>{html.escape(c)}</li>" for c in conventions]
    parts.append("</ul><h2>Machine</h2>")
    parts.append(f"<pre>{html.escape(json.dumps(machine, indent=2))}</pre>")
    parts.append("<details><summary>Method settings (exact, as used)</summary>"
                 f"<pre>{html.escape(json.dumps(settings, indent=2, default=str))}</pre></details>")
    parts.append("<details><summary>Experiment config (resolved)</summary>"
                 f"<pre>{html.escape(json.dumps(config, indent=2, default=str))}</pre></details>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
