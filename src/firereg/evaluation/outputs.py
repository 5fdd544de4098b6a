"""Write an evaluation's files into its output folder, atomically: ``results.md``, ``results.csv``,
``cases.json`` and ``report.html``.

The folder is refused when it already holds files, unless ``overwrite`` (then the four files are
replaced; nothing else in it is touched). While writing, the folder is locked like every firereg
output folder (``.firereg.lock``), and the four files are written as ``register`` writes its own
(:func:`firereg.atomic.staged_files`): into a hidden staging folder, moved into place only once all
are complete, so a failure (a full disk, a file-size limit, an interrupt) leaves the folder as it
was, the files of an earlier run included.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from firereg.atomic import atomic_write_text, staged_files
from firereg.evaluation.cases import DataInfo
from firereg.evaluation.experiment_config import METHOD_LABELS, EvaluationConfig
from firereg.evaluation.runner import ExperimentRun
from firereg.evaluation.tables import Table, to_csv, to_markdown

__all__ = ["OUTPUT_FILES", "check_out_dir", "machine_info", "conventions", "write_results", "json_safe"]

OUTPUT_FILES = ("results.md", "results.csv", "cases.json", "report.html")


def check_out_dir(out: str | Path, overwrite: bool) -> Path:
    """The output folder; refuses an existing non-empty one unless ``overwrite``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"--out {out}: the folder is not empty; choose another or pass --overwrite")
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(config: EvaluationConfig, device: str) -> dict[str, Any]:
    """Where the run happened: CPU model (/proc/cpuinfo), cores, threads, versions, device, load."""
    import torch

    torch_threads = config.torch_threads or torch.get_num_threads()
    try:
        from importlib.metadata import version

        ants_version = version("antspyx")
    except Exception:  # not installed
        ants_version = None
    info = {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch_threads,
        "ants_threads": config.ants.threads if config.ants.threads is not None else "ITK default",
        "torch": torch.__version__,
        "antspyx": ants_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
    }
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    with contextlib.suppress(OSError):
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    return info


def conventions(config: EvaluationConfig, device: str) -> list[str]:
    """How to read every number (for results.md and report.html)."""
    individual = [
        "NCC = Pearson correlation, inside the fixed image's brain or head mask, of the moving image "
        "warped by the method's whole transform (one linear resampling for every method) and the fixed "
        "image, which is the ground-truth aligned image (moving = fixed under a known random transform).",
        "Endpoint error (mm) = mean over the fixed mask of ||T_method(x) - T_true(x)||, both maps fixed "
        "point -> moving point in LPS mm; T_true is the inverse of the protocol transform that made the "
        "moving image (fixed-point inversion, residual in cases.json); unaligned scores the known "
        "transform's mean displacement.",
    ] if config.kind == "individual" else []
    return individual + [
        "Dice = 2|A and B| / (|A| + |B|) between the warped moving labels and the fixed labels on the "
        "fixed grid, in percent; a structure is scored in a case only where the fixed labels hold it, "
        "and a case's mean Dice averages its scored structures.",
        "HD95 (mm) = max of the two directed 95th percentiles of surface-voxel distances (MONAI's "
        "convention); 'inf' when the warped labels lost the structure (left out of the mean, counted).",
        "Folding = % of fixed-grid voxels where the whole transform (affine included, as one LPS mm "
        "displacement on the fixed grid, computed alike for every method) has det J <= 0; "
        "log-Jacobian SD = standard deviation of log det J over the other voxels.",
        "Inverse consistency = mean ||phi_BA(phi_AB(x)) - x|| in mm over the fixed model grid (FIRE's "
        "two networks); not computed for ANTs.",
        "Time per pair: 'registration' computes the transform (ANTs: the ants.registration call; FIRE: "
        "preprocessing both images and the network, G and T in both directions, plus the per-pair "
        "refinement or fine-tuning in the FIRE+refine columns); 'total' adds "
        "resampling the image and labels onto the fixed grid (and FIRE's folding and inverse-"
        f"consistency report). FIRE ran on {device}; the model is loaded once, outside the times; "
        "every method ran once untimed on the first case first (warm-up).",
        "Cells read mean (SD) over cases: SD is the sample standard deviation; n per cell is in "
        "results.csv; failed cases are left out and counted.",
    ]


def json_safe(value: Any) -> Any:
    """``value`` with inf as the string "inf", NaN as None and tuples as lists (strict JSON)."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return json_safe(value.item())
    return value


def _markdown(title: str, data: DataInfo, summary: Sequence[str], tables: Sequence[Table],
              notes: Sequence[str], machine: dict[str, Any]) -> str:
    lines = [f"# {title}", "", f"**Data:** {data.description}.", ""]
    lines += [f"* {line}" for line in summary]
    for table in tables:
        lines += ["", to_markdown(table)]
    lines += ["", "## Conventions", ""] + [f"* {n}" for n in notes]
    lines += ["", "## Machine", "", "```", json.dumps(machine, indent=2), "```",
              "", "Every per-case value and every method's exact settings are in cases.json.", ""]
    return "\n".join(lines)


def write_results(
    out: str | Path,
    *,
    config: EvaluationConfig,
    run: ExperimentRun,
    tables: Sequence[Table],
    data: DataInfo,
    summary: Sequence[str],
    machine: dict[str, Any],
    model: dict[str, Any] | None,
    overwrite: bool,
    config_path: str | None = None,
) -> dict[str, Path]:
    """Write the four output files (module docstring) and return name -> path."""
    from firereg.cli.register import output_lock
    from firereg.evaluation.report import box_plot_png, example_png, render_html

    out = check_out_dir(out, overwrite)
    device = machine.get("device", config.device)
    notes = conventions(config, device)
    synthetic = "synthetic phantom" if data.synthetic_images else (
        "real images, synthetic random transforms" if data.synthetic_transforms else "real images")
    title = f"firereg evaluate: {config.name}"
    if config.kind == "individual":
        box_title = f"{config.name}: per-case endpoint error ({synthetic})"
        figures = [(f"Per-case mean endpoint error (mm) of each method ({synthetic}).",
                    box_plot_png(run.records, config.methods, box_title, key="endpoint_error_mm",
                                 scale=1.0, ylabel="mean endpoint error per case (mm)", ylim=None))]
    else:
        box_title = f"{config.name}: per-case mean Dice ({synthetic})"
        figures = [(f"Per-case mean Dice of each method ({synthetic}).",
                    box_plot_png(run.records, config.methods, box_title))]
    if run.example is not None and run.example["warped_labels"]:
        warped = run.example["warped_labels"]
        shown = [METHOD_LABELS[m] for m in ("unaligned", "ants_syn", "fire") if m in warped]
        figures.append((f"Example case {run.example['id']} ({synthetic}): {', '.join(shown)}.",
                        example_png(run.example, config.methods, config.label_table,
                                    f"case {run.example['id']} ({synthetic})")))
    experiment = config.to_dict()
    cases_json = {
        "format": 1,
        "experiment": experiment,
        "config_path": config_path,
        "data": asdict(data),
        "model": model,
        "machine": machine,
        "settings": run.settings,
        "run_seconds": run.seconds,
        "summary": [t.to_dict() for t in tables],
        "cases": run.records,
    }
    documents = {
        "results.md": _markdown(title, data, summary, tables, notes, machine),
        "results.csv": to_csv(tables),
        "cases.json": json.dumps(json_safe(cases_json), indent=1, allow_nan=False) + "\n",
        "report.html": render_html(title=title, data_note=data.description + ".", summary_lines=summary,
                                   tables=tables, figures=figures, conventions=notes, machine=machine,
                                   settings=json_safe(run.settings), config=experiment),
    }
    with output_lock(out), staged_files(out) as stage:  # all or nothing (module docstring)
        for name in OUTPUT_FILES:
            atomic_write_text(stage / name, documents[name])
    return {name: out / name for name in OUTPUT_FILES}
