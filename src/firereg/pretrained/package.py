"""Build a shipped model's folder from a training run (a maintainer's step, ``firereg models package``)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from firereg.atomic import json_text
from firereg.pretrained.card import CARD_NAME, VALIDATION_KEYS, ModelCard
from firereg.pretrained.registry import pretrained_root

__all__ = ["PACKAGED_FILES", "package_run"]

# The only files a shipped model folder holds: no optimizer or RNG state.
PACKAGED_FILES = ("model.safetensors", "checkpoint.json", CARD_NAME)
RUN_CONFIG = "config.yaml"  # written by firereg train (firereg.training.loop.CONFIG_NAME)


def _validation_from(values: Any) -> dict[str, float]:
    """The Dice entries of a validation record (checkpoint extra, or a val.csv row)."""
    if not isinstance(values, dict):
        return {}
    out: dict[str, float] = {}
    for key in VALIDATION_KEYS:
        if values.get(key) in (None, ""):
            continue
        number = float(values[key])
        out[key] = int(number) if key.endswith("pairs") else number
    return out


def _last_val_row(path: Path) -> dict[str, float]:
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return _validation_from(rows[-1]) if rows else {}


def _run_data_config(run: Path) -> dict[str, Any]:
    """The ``data`` section of the run's ``config.yaml``, or {} when there is none."""
    path = run / RUN_CONFIG
    if not path.is_file():
        return {}
    import yaml

    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
    data = config.get("data") if isinstance(config, dict) else None
    return data if isinstance(data, dict) else {}


def _check_modalities(run: Path, data: dict[str, Any], modality_a: str, modality_b: str) -> None:
    for key, given in (("modality_a", modality_a), ("modality_b", modality_b)):
        trained = data.get(key)
        if isinstance(trained, str) and trained.casefold() != given.strip().casefold():
            raise ValueError(f"{run}: was trained with data.{key} {trained}, not {given}")


def package_run(run_dir: str | Path, name: str, *, modality_a: str, modality_b: str, dataset: str,
                config: str, command: str, machine: str, notes: str = "",
                spacing_mm: float | None = None, diffeomorphic: bool = False,
                overwrite: bool = False, recipe: str = "") -> Path:
    """Copy the latest checkpoint of ``run_dir`` into ``pretrained_root()/name`` with a card.

    The folder gets ``model.safetensors``, ``checkpoint.json`` (its ``extra`` reduced to the
    validation Dice) and ``card.json``. The iterations are the checkpoint's step; the validation
    Dice is the checkpoint's (else the last row of ``val.csv``); ndim and ``diffeomorphic`` are the
    model's (``diffeomorphic=True`` for a model that is not is refused); the spacing
    is ``spacing_mm`` or the run's ``config.yaml`` ``data.spacing``. The folder is built as a
    temporary sibling and renamed into place. Returns the model folder.
    """
    from firereg.training.checkpoint import latest_checkpoint, load_model

    run = Path(run_dir)
    if not run.is_dir():
        raise ValueError(f"{run}: no such training run folder")
    checkpoint = latest_checkpoint(run)
    if checkpoint is None:
        raise ValueError(f"{run}: not a training run folder (no latest checkpoint)")
    model = load_model(checkpoint)  # checks the config and that the weights fit
    if diffeomorphic and not model.config.diffeomorphic:
        raise ValueError(f"{run}: --diffeomorphic, but the model was trained with displacement fields "
                         "(its model.diffeomorphic is false)")
    diffeomorphic = bool(model.config.diffeomorphic)  # the card says what the weights are
    meta = json.loads((checkpoint / "checkpoint.json").read_text())
    extra = meta.get("extra") if isinstance(meta.get("extra"), dict) else {}
    validation = _validation_from(extra.get("validation")) or _last_val_row(run / "val.csv")
    data = _run_data_config(run)
    _check_modalities(run, data, modality_a, modality_b)
    if spacing_mm is None:
        spacing_mm = data.get("spacing")
        if spacing_mm is None:
            raise ValueError(f"{run}: no {RUN_CONFIG} with data.spacing; give the model-grid spacing")
    card = ModelCard(name=name, modality_a=modality_a.strip(), modality_b=modality_b.strip(),
                     ndim=model.config.ndim, spacing_mm=spacing_mm, dataset=dataset, config=config,
                     command=command, iterations=int(meta["step"]), machine=machine,
                     validation=validation, diffeomorphic=diffeomorphic, notes=notes, recipe=recipe)
    root = pretrained_root()
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    if final.exists() and not overwrite:
        raise ValueError(f"{final}: a model of that name exists; remove it or choose another name")
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root))
    try:
        shutil.copyfile(checkpoint / "model.safetensors", tmp / "model.safetensors")
        packaged = {"format": meta["format"], "step": int(meta["step"]),
                    "model_config": meta["model_config"], "extra": {"validation": validation}}
        (tmp / "checkpoint.json").write_text(json_text(packaged, indent=2, sort_keys=True) + "\n")
        card.save(tmp / CARD_NAME)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes folders private
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".old-{name}-", dir=root))
            os.replace(final, old / name)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
