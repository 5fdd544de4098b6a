"""The explanation report: one self-contained ``explain.html`` (every image a base64 PNG data URI),
the PNGs beside it, and ``explain.json`` with the numbers.

The files are written all or nothing, as ``register`` writes its own
(:func:`firereg.atomic.staged_files`): into a hidden staging folder in the output folder, moved into
place only once every one is complete; a failure (a full disk, a file-size limit) leaves the folder as
it was, an earlier report's files included.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firereg.atomic import atomic_write_bytes, staged_files
from firereg.explain.plotting import FigurePNG

__all__ = ["Section", "Number", "ExplainReport", "render_html", "write_report", "HTML_NAME", "JSON_NAME"]

HTML_NAME = "explain.html"
JSON_NAME = "explain.json"


@dataclass(frozen=True)
class Number:
    """One row of the numbers table."""

    name: str
    value: str
    meaning: str


@dataclass
class Section:
    """A report section: a heading, a sentence of explanation, figures and optional extra HTML."""

    id: str
    heading: str
    text: str
    figures: list[FigurePNG] = field(default_factory=list)
    html_extra: str = ""


@dataclass
class ExplainReport:
    """Everything :func:`write_report` writes.

    Attributes:
        title: the page title.
        inputs: (label, value) rows describing the inputs and the model choice.
        card: (label, value) rows of the model card.
        numbers: the numbers table.
        sections: the figure sections and the definitions, in order.
        summary: the JSON-safe content of ``explain.json``.
    """

    title: str
    inputs: list[tuple[str, str]]
    card: list[tuple[str, str]]
    numbers: list[Number]
    sections: list[Section]
    summary: dict[str, Any]

    @property
    def figures(self) -> list[FigurePNG]:
        return [f for s in self.sections for f in s.figures]


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1400px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #444; max-width: 1100px; }
nav ul { columns: 2; } code, pre { background: #f6f6f6; padding: 0 .2em; }
pre { padding: .6em; overflow-x: auto; font-size: .88em; }
.note { color: #555; font-size: .92em; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure(fig: FigurePNG) -> str:
    return (f'<figure id="fig-{_e(fig.name)}"><h3>{_e(fig.title)}</h3>'
            f'<img src="{data_uri(fig.png)}" alt="{_e(fig.title)}">'
            f"<figcaption>{_e(fig.caption)} <span class=\"note\">(also saved as {_e(fig.name)}.png)"
            "</span></figcaption></figure>")


def render_html(report: ExplainReport) -> str:
    """The report as one HTML document with every image inline."""
    numbers = "".join(f"<tr><th>{_e(n.name)}</th><td>{_e(n.value)}</td><td>{_e(n.meaning)}</td></tr>"
                      for n in report.numbers)
    toc = "".join(f'<li><a href="#{_e(s.id)}">{_e(s.heading)}</a></li>'
                  for s in [Section("inputs", "Inputs and model", ""), Section("numbers", "Numbers", ""),
                            *report.sections])
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(report.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(report.title)}</h1>",
        "<p>What a FIRE model does with one image pair, component by component (paper §3, §6.3): how "
        "well it aligns the images, what the deformation looks like, what its synthesis decoders and its "
        "shared encoder G make of the two modalities, and which image regions drive the predicted "
        "transform. A denotes the moving image and B the fixed one; all images are shown on the fixed "
        "image's model grid.</p>",
        f"<nav><ul>{toc}</ul></nav>",
        '<section id="inputs"><h2>Inputs and model</h2><p>The images and the model this report explains, '
        "and the model card (what the model was trained on and how well it did on its validation pairs)."
        f"</p>{_table(report.inputs)}<h3>Model card</h3>{_table(report.card)}</section>",
        '<section id="numbers"><h2>Numbers</h2><p>One line per summary quantity of this registration; '
        "the figures below show where they come from.</p>"
        f"<table><tr><th>quantity</th><th>value</th><th>meaning</th></tr>{numbers}</table></section>",
    ]
    for s in report.sections:
        figures = "".join(_figure(f) for f in s.figures)
        parts.append(f'<section id="{_e(s.id)}"><h2>{_e(s.heading)}</h2><p>{_e(s.text)}</p>'
                     f"{s.html_extra}{figures}</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_report(report: ExplainReport, out_dir: str | Path) -> dict[str, Path]:
    """Write every figure as ``<name>.png``, ``explain.json`` and ``explain.html`` into ``out_dir``
    (which must exist), all or nothing (module docstring). Returns the paths by name."""
    out = Path(out_dir)
    names = [f.name for f in report.figures]
    if len(set(names)) != len(names):
        raise ValueError(f"write_report: figure names repeat: {names}")
    summary = {**report.summary, "figures": [f"{n}.png" for n in names]}
    text = json.dumps(_json_safe(summary), indent=2, allow_nan=False) + "\n"
    paths: dict[str, Path] = {}
    with staged_files(out) as stage:
        for fig in report.figures:
            paths[fig.name] = atomic_write_bytes(stage / f"{fig.name}.png", fig.png)
        paths["json"] = atomic_write_bytes(stage / JSON_NAME, text.encode("utf-8"))
        paths["html"] = atomic_write_bytes(stage / HTML_NAME, render_html(report).encode("utf-8"))
    return {key: out / path.name for key, path in paths.items()}
