"""One evaluation experiment from config to written results: what ``firereg evaluate`` and
``firereg demo`` run.

Order: check the output folder, resolve the model (a missing model is refused before any data is
read), check ANTs is importable when an ANTs method is configured, build the cases, run every
method on every case, aggregate, write.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firereg.config import ConfigError
from firereg.evaluation.cases import DataInfo, build_cases, selected_indices, source_images
from firereg.evaluation.experiment_config import METHOD_LABELS, EvaluationConfig
from firereg.evaluation.outputs import check_out_dir, machine_info, write_results
from firereg.evaluation.runner import ExperimentRun, gpu_note, resolve_device, run_experiment
from firereg.evaluation.tables import Table, build_tables

__all__ = ["EvaluationOutcome", "resolve_model", "run_evaluation"]


@dataclass
class EvaluationOutcome:
    """What an evaluation produced (the files are already written)."""

    config: EvaluationConfig
    run: ExperimentRun
    tables: list[Table]
    data: DataInfo
    summary: list[str]
    machine: dict[str, Any]
    paths: dict[str, Path]
    seconds: float


def resolve_model(config: EvaluationConfig, where: str = "config"):
    """``(selection, spacing)`` of the configured model; refuses a missing one in one line."""
    from firereg.pretrained.registry import list_models, select_model

    names = {c.name for c in list_models()}
    path = Path(config.model).expanduser()
    if config.model.casefold() not in names and not path.exists():
        shipped = ", ".join(sorted(names)) or "none"
        raise ValueError(f"{where}: model {config.model!r} is not shipped with this install (shipped: "
                         f"{shipped}) and is not a checkpoint or run folder; train it, or set model "
                         "to a checkpoint path")
    same = config.modality_moving.casefold() == config.modality_fixed.casefold()
    # one modality (T1 -> T1) with no model of its own: both images through the model's matching
    # side, as `register --refine` does (docs/refinement.md "intra-modal")
    selection = select_model(config.model, ndim=config.dims, moving_modality=config.modality_moving,
                             fixed_modality=config.modality_fixed, intra_modal=same)
    spacing = config.spacing if config.spacing is not None else (
        selection.card.spacing_mm if selection.card is not None else None)
    if spacing is None:
        raise ConfigError(f"{where}: model {config.model} has no card (card.json) saying its "
                          "model-grid spacing; set spacing in the config")
    return selection, float(spacing)


def _summary(config: EvaluationConfig, run: ExperimentRun, n_images: int, n_total: int, selection,
             spacing: float | None, device: str) -> list[str]:
    per_image = f" x {config.transforms} random transforms" if config.kind != "cardiac" else ""
    what = "slices" if config.dims == 2 else "volumes"
    lines = [f"{len(run.records)} pairs: {n_images} of the {n_total} {config.dims}D {config.split} {what}"
             f"{per_image} (protocol seed {config.protocol.seed})",
             "methods: " + ", ".join(METHOD_LABELS[m] for m in config.methods)]
    if selection is not None:
        card = selection.card
        lines.append(f"FIRE model: {selection.model} ({selection.direction}; model grid {spacing:g} mm)"
                     + (f"; trained {card.iterations} iterations on {card.dataset}" if card else ""))
        if card is not None and card.notes:
            lines.append(f"model note: {card.notes}")
    if config.uses_ants:
        metric = "mutual information" if config.syn_metric == "mi" else "cross-correlation"
        lines.append(f"ANTs SyN metric: {metric}; ANTs threads: {config.ants.threads or 'ITK default'}")
    lines.append(f"FIRE device: {device}; run time {run.seconds:.1f} s")
    return lines


def run_evaluation(config: EvaluationConfig, out: str | Path, *, overwrite: bool = False,
                   progress: bool = True, config_path: str | None = None) -> EvaluationOutcome:
    """Run ``config`` and write its results into ``out`` (module docstring)."""
    start = time.perf_counter()
    where = config_path or config.name
    out = check_out_dir(out, overwrite)
    selection = spacing = model = None
    if config.uses_fire:
        selection, spacing = resolve_model(config, where)
    device = resolve_device(config.device)
    if config.uses_ants:
        from firereg.evaluation.ants_io import import_ants

        try:
            import_ants()
        except ImportError as exc:  # one line, as every user-facing error
            raise ValueError(f"{where}: the ANTs methods need antspyx ({exc}); install it, or remove "
                             "ants_affine and ants_syn from methods") from None
    images, data = source_images(config, spacing)
    cases = build_cases(config, images)
    if selection is not None:
        model = selection.load(device=device)
    machine = machine_info(config, device)
    run = run_experiment(config, cases, model=model, selection=selection, spacing=spacing, progress=progress)
    machine["load_average_1min_end"] = machine_info(config, device).get("load_average_1min")
    tables = build_tables(run.records, config.methods, list(config.label_table.values()), device,
                          gpu_note(config, device), similarity=config.kind == "individual")
    n_images = len(selected_indices(len(images), config.protocol.max_images))
    summary = _summary(config, run, n_images, len(images), selection, spacing, device)
    model_info = None
    if selection is not None:
        model_info = {"model": selection.model, "checkpoint": str(selection.checkpoint),
                      "direction": selection.direction, "selection": selection.how, "spacing_mm": spacing,
                      "card": selection.card.to_dict() if selection.card is not None else None}
    paths = write_results(out, config=config, run=run, tables=tables, data=data, summary=summary,
                          machine=machine, model=model_info, overwrite=overwrite, config_path=config_path)
    return EvaluationOutcome(config=config, run=run, tables=tables, data=data, summary=summary,
                             machine=machine, paths=paths, seconds=time.perf_counter() - start)
