"""Aggregate per-case scores into the paper's table layouts, as Markdown and CSV.

* **Dice** (Table 2 / Table 3 layout): one row per structure and a ``mean`` row (the per-case
  mean Dice over the structures the case's fixed labels hold), one column per method in the order
  unaligned, ANTs-affine, FIRE-affine, ANTs-SyN, FIRE; Dice in percent as in the paper.
* **Transform quality and time**: HD95 per structure and its per-case mean over structures (mm),
  folding (% of voxels with ``det J <= 0``), log-Jacobian SD, inverse-consistency error (mm) and
  the time per pair (registration only, and total), per method.
* **NCC and endpoint error** (kind individual: unlabelled held-out images under known transforms):
  NCC of the warped moving image against the fixed image and the mean endpoint error (mm) of the
  transform against the known one, inside the fixed mask, and the known transform's own mean
  displacement (what ``unaligned`` scores), per method; placed first.
* **Time per pair** (Table 4 layout): rows affine and non-rigid, columns FIRE on its device, FIRE
  on a GPU when the run also timed it there (``gpu_timing``), and ANTs, registration only and
  total, in seconds.

Every cell reads ``mean (SD)`` over the cases where the value exists: SD is the sample standard
deviation (``ddof = 1``), ``-`` with fewer than two values; a cell with no value reads ``-``.
Infinite values (HD95 when the warped labels lost a structure) are left out of the mean and
counted: ``12.34 (5.67) [2 inf]``. Cases where a method failed are left out of its column and
counted in the notes.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from firereg.evaluation.experiment_config import METHOD_LABELS

__all__ = ["Table", "mean_sd", "format_cell", "dice_table", "similarity_table", "metrics_table",
           "timing_table",
           "build_tables", "to_markdown", "to_text", "to_csv", "failures"]

DASH = "-"


@dataclass
class Table:
    """One results table: display strings plus the numbers behind every cell (for the CSV)."""

    key: str
    title: str
    row_header: str
    columns: list[str]
    rows: list[tuple[str, list[str]]] = field(default_factory=list)
    cells: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add_row(self, name: str, values_per_column: Sequence[Sequence[float] | None], *,
                scale: float = 1.0, digits: int = 2) -> None:
        """Add a row of ``mean (SD)`` cells, one list of per-case values per column (None: n/a)."""
        shown = []
        for column, values in zip(self.columns, values_per_column, strict=True):
            values = list(values) if values is not None else []
            text = format_cell(values, scale=scale, digits=digits)
            mean, sd, n = mean_sd([v * scale for v in values])
            self.cells.append({"table": self.key, "row": name, "column": column, "mean": mean, "sd": sd,
                               "n": n, "n_inf": sum(1 for v in values if math.isinf(v)), "cell": text})
            shown.append(text)
        self.rows.append((name, shown))

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "row_header": self.row_header,
                "columns": self.columns, "rows": [{"row": r, "cells": dict(zip(self.columns, c, strict=True))}
                                                  for r, c in self.rows], "notes": self.notes}


def mean_sd(values: Iterable[float]) -> tuple[float | None, float | None, int]:
    """(mean, sample SD, n) of the finite values; mean None when there are none, SD None under 2."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(finite)
    if n == 0:
        return None, None, 0
    mean = math.fsum(finite) / n
    if n < 2:
        return mean, None, n
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in finite) / (n - 1))
    return mean, sd, n


def format_cell(values: Sequence[float], *, scale: float = 1.0, digits: int = 2) -> str:
    """``"mean (SD)"`` of ``values`` times ``scale`` (module docstring)."""
    infinite = sum(1 for v in values if v is not None and math.isinf(v))
    mean, sd, _ = mean_sd([v * scale for v in values if v is not None])
    suffix = f" [{infinite} inf]" if infinite else ""
    if mean is None:
        return DASH + suffix
    sd_text = DASH if sd is None else f"{sd:.{digits}f}"
    return f"{mean:.{digits}f} ({sd_text}){suffix}"


def _ok(record: dict[str, Any], method: str) -> dict[str, Any] | None:
    scores = record["methods"].get(method)
    return None if scores is None or "error" in scores else scores


def _values(records: Sequence[dict[str, Any]], method: str, getter) -> list[float]:
    out = []
    for record in records:
        scores = _ok(record, method)
        if scores is None:
            continue
        value = getter(scores)
        if value is not None:
            out.append(float(value))
    return out


def _columns(methods: Sequence[str]) -> list[str]:
    return [METHOD_LABELS[m] for m in methods]


def failures(records: Sequence[dict[str, Any]], methods: Sequence[str]) -> dict[str, int]:
    """Method -> number of cases where it failed (only methods that failed)."""
    counts = {m: sum(1 for r in records if "error" in r["methods"].get(m, {})) for m in methods}
    return {m: c for m, c in counts.items() if c}


def dice_table(records: Sequence[dict[str, Any]], methods: Sequence[str], structures: Sequence[str],
               *, title: str = "Dice (%)") -> Table:
    """Dice per structure and mean, in percent (Table 2 layout)."""
    table = Table("dice", title, "structure", _columns(methods))
    for name in structures:
        table.add_row(name, [_values(records, m, lambda s, n=name: s["dice"].get(n)) for m in methods],
                      scale=100.0)
    table.add_row("mean", [_values(records, m, lambda s: s["mean_dice"]) for m in methods], scale=100.0)
    return table


def similarity_table(records: Sequence[dict[str, Any]], methods: Sequence[str]) -> Table:
    """NCC and endpoint error per method (kind individual, module docstring)."""
    table = Table("similarity", "NCC and endpoint error against the known transform", "metric",
                  _columns(methods))
    rows = (("NCC in the mask", "ncc", 3), ("endpoint error (mm)", "endpoint_error_mm", 2),
            ("known transform's mean displacement (mm)", "known_displacement_mm", 2))
    for label, key, digits in rows:
        table.add_row(label, [_values(records, m, lambda s, k=key: s.get(k)) for m in methods],
                      digits=digits)
    return table


def _mean_hd95(scores: dict[str, Any]) -> float | None:
    values = [v for v in scores["hd95_mm"].values() if v is not None]
    return float(sum(values) / len(values)) if values else None


def metrics_table(records: Sequence[dict[str, Any]], methods: Sequence[str],
                  structures: Sequence[str]) -> Table:
    """HD95, folding, log-Jacobian SD, inverse consistency and time per pair, per method."""
    table = Table("metrics", "Surface distance, transform quality and time per pair", "metric",
                  _columns(methods))
    for name in structures:
        table.add_row(f"HD95 {name} (mm)",
                      [_values(records, m, lambda s, n=name: s["hd95_mm"].get(n)) for m in methods])
    table.add_row("HD95 mean over structures (mm)", [_values(records, m, _mean_hd95) for m in methods])
    rows = (("folding (% of voxels)", "folding_percent"), ("log-Jacobian SD", "log_jacobian_std"),
            ("inverse consistency (mm)", "inverse_consistency_mm"),
            ("registration time per pair (s)", "registration_seconds"),
            ("total time per pair (s)", "total_seconds"))
    for label, key in rows:
        table.add_row(label, [_values(records, m, lambda s, k=key: s.get(k)) for m in methods], digits=3)
    return table


def _gpu_seconds(scores: dict[str, Any], key: str) -> float | None:
    gpu = scores.get("gpu_timing")
    return None if not gpu else gpu.get(key)


def timing_table(records: Sequence[dict[str, Any]], methods: Sequence[str], device: str,
                 gpu_note: str | None = None) -> Table:
    """Time per pair in seconds (Table 4 layout): affine and non-rigid, FIRE and ANTs.

    When the records hold a second timing of FIRE on a GPU (``gpu_timing``, the runner's
    ``gpu_timing`` option), two FIRE-GPU columns follow the FIRE ones; ``gpu_note`` (for example
    "no CUDA device") is added under the table otherwise.
    """
    fire = f"FIRE-{device.upper()}"
    with_gpu = any(_gpu_seconds(s, "registration_seconds") is not None
                   for r in records for s in r["methods"].values() if "error" not in s)
    columns = [f"{fire} registration (s)", f"{fire} total (s)"]
    columns += ["FIRE-GPU registration (s)", "FIRE-GPU total (s)"] if with_gpu else []
    columns += ["ANTs registration (s)", "ANTs total (s)"]
    table = Table("time", "Time per pair (s)", "registration", columns)
    keys = ("registration_seconds", "total_seconds")
    for row, fire_method, ants_method in (("affine", "fire_affine", "ants_affine"),
                                          ("non-rigid", "fire", "ants_syn")):
        fire_on, ants_on = fire_method in methods, ants_method in methods
        cells = [_values(records, fire_method, lambda s, k=key: s[k]) if fire_on else None for key in keys]
        if with_gpu:
            cells += [_values(records, fire_method, lambda s, k=key: _gpu_seconds(s, k)) if fire_on else None
                      for key in keys]
        cells += [_values(records, ants_method, lambda s, k=key: s[k]) if ants_on else None for key in keys]
        table.add_row(row, cells, digits=3)
    if not with_gpu and gpu_note:
        table.notes.append(gpu_note)
    return table


def build_tables(records: Sequence[dict[str, Any]], methods: Sequence[str], structures: Sequence[str],
                 device: str, gpu_note: str | None = None, *, similarity: bool = False) -> list[Table]:
    """The tables of a run (module docstring), with a note on failed cases; ``similarity`` puts
    the NCC and endpoint-error table first (kind individual; its Dice is that of the mask)."""
    tables = [dice_table(records, methods, structures,
                         title="Dice (%) of the scoring mask" if similarity else "Dice (%)"),
              metrics_table(records, methods, structures), timing_table(records, methods, device, gpu_note)]
    if similarity:
        tables.insert(0, similarity_table(records, methods))
    failed = failures(records, methods)
    if failed:
        note = "failed cases (left out): " + ", ".join(f"{METHOD_LABELS[m]} {c}" for m, c in failed.items())
        for table in tables:
            table.notes.append(note)
    return tables


def to_markdown(table: Table) -> str:
    """A GitHub-flavoured Markdown table (title as a bold line above it)."""
    header = [table.row_header, *table.columns]
    lines = [f"**{table.title}**", "", "| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * len(table.columns)) + "|"]
    lines += ["| " + " | ".join([name, *cells]) + " |" for name, cells in table.rows]
    lines += [f"\n{note}" for note in table.notes]
    return "\n".join(lines)


def to_text(table: Table) -> str:
    """A plain fixed-width table for a terminal."""
    header = [table.row_header, *table.columns]
    body = [[name, *cells] for name, cells in table.rows]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    return "\n".join([table.title, line(header), *[line(r) for r in body]])


def to_csv(tables: Sequence[Table]) -> str:
    """Every cell of every table, one CSV row each: table, row, column, mean, sd, n, n_inf, cell."""
    buffer = io.StringIO()
    fields = ["table", "row", "column", "mean", "sd", "n", "n_inf", "cell"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for table in tables:
        for cell in table.cells:
            writer.writerow({k: ("" if cell[k] is None else cell[k]) for k in fields})
    return buffer.getvalue()
