"""Checkpoints as safetensors plus a validated JSON config: never pickle, never half-written.

A checkpoint is a folder ``step-NNNNNNNN/`` holding

* ``model.safetensors`` - the model's tensors;
* ``optimizer.safetensors`` - the tensors of the three optimizers' states (when saved);
* ``rng.safetensors`` - torch (and CUDA) generator states and numpy's key (when saved);
* ``checkpoint.json`` - the model config, the step, the optimizers' hyper-parameters, python's
  and numpy's scalar RNG state, and anything the caller adds.

It is built in a temporary sibling folder and renamed into place, then the run's ``latest`` file
is replaced atomically to point at it. A kill at any moment leaves either the previous checkpoint
as ``latest`` or the new one, never a torn one; stale temporary folders are removed on the next
save. Loading reads tensors with safetensors (no code can run) and validates the config.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from firereg.atomic import atomic_write_text, json_text
from firereg.config import ConfigError, ModelConfig, from_dict, to_dict
from firereg.model import FireModel
from firereg.training.optimizers import FireOptimizers

__all__ = ["CheckpointError", "Checkpoint", "save_checkpoint", "load_checkpoint", "latest_checkpoint",
           "load_model", "load_initial_weights", "checkpoint_step"]

FORMAT = "firereg-checkpoint-1"
LATEST = "latest"


class CheckpointError(ValueError):
    """A checkpoint is missing, not ours, corrupt, or does not fit the model."""


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` restored."""

    path: Path
    step: int
    model_config: ModelConfig
    extra: dict[str, Any]


def _flatten_optimizers(optimizers: FireOptimizers) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {}
    for name, state in optimizers.state_dict().items():
        meta[name] = {"param_groups": state["param_groups"], "state": {}}
        for index, entries in state["state"].items():
            meta[name]["state"][str(index)] = sorted(entries)
            for key, value in entries.items():
                if not isinstance(value, torch.Tensor):
                    raise CheckpointError(f"save_checkpoint: optimizer {name} holds a non-tensor "
                                          f"state {key!r}")
                tensors[f"{name}/{index}/{key}"] = value.detach().cpu().contiguous()
    return tensors, meta


def _unflatten_optimizers(tensors: dict[str, torch.Tensor], meta: dict) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for name, info in meta.items():
        state = {int(index): {key: tensors[f"{name}/{index}/{key}"] for key in keys}
                 for index, keys in info["state"].items()}
        out[name] = {"state": state, "param_groups": info["param_groups"]}
    return out


def _rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = state
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy_keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    py_version, py_state, py_gauss = random.getstate()
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(cached)],
            "python": [py_version, list(py_state), py_gauss]}
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda"))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    kind, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss,
                         cached))
    version, state, gauss = meta["python"]
    random.setstate((version, tuple(state), gauss))


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """safetensors' ``save_file``, its I/O errors (a full disk) raised as the OSError they are."""
    try:
        save_file(tensors, str(path))
    except SafetensorError as exc:
        found = re.search(r"os error (\d+)", str(exc))
        if found is None:
            raise
        code = int(found.group(1))
        raise OSError(code, os.strerror(code), str(path)) from exc


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json_text(data, indent=2, sort_keys=True))


def save_checkpoint(
    run_dir: str | Path,
    model: FireModel,
    step: int,
    *,
    optimizers: FireOptimizers | None = None,
    save_rng: bool = True,
    extra: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Save ``run_dir/step-NNNNNNNN/`` atomically and point ``run_dir/latest`` at it.

    Keeps the newest ``keep`` checkpoints. ``extra`` must be JSON-serialisable.
    Returns the checkpoint folder.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in run_dir.glob(".tmp-step-*"):
        shutil.rmtree(stale, ignore_errors=True)
    name = f"step-{int(step):08d}"
    final = run_dir / name
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=run_dir))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        _save_tensors(state, tmp / "model.safetensors")
        meta: dict[str, Any] = {"format": FORMAT, "step": int(step),
                                "model_config": to_dict(model.config), "extra": extra or {}}
        if optimizers is not None:
            tensors, meta["optimizers"] = _flatten_optimizers(optimizers)
            _save_tensors(tensors, tmp / "optimizer.safetensors")
        if save_rng:
            tensors, meta["rng"] = _rng_state()
            _save_tensors(tensors, tmp / "rng.safetensors")
        _write_json(tmp / "checkpoint.json", meta)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(run_dir / LATEST, name + "\n")
    checkpoints = sorted(p for p in run_dir.glob("step-*") if p.is_dir())
    for old in checkpoints[: max(0, len(checkpoints) - keep)]:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The folder ``run_dir/latest`` points at, or None when the run has no checkpoint."""
    pointer = Path(run_dir) / LATEST
    if not pointer.exists():
        return None
    target = Path(run_dir) / pointer.read_text().strip()
    if not (target / "checkpoint.json").exists():
        raise CheckpointError(f"{pointer}: points at {target.name}, which is not a checkpoint")
    return target


def checkpoint_step(path: str | Path) -> int:
    """The step a checkpoint folder was saved at (from its ``checkpoint.json``)."""
    step = _read_meta(Path(path)).get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"{Path(path) / 'checkpoint.json'}: invalid step {step!r}")
    return step


def _read_meta(path: Path) -> dict:
    meta_path = path / "checkpoint.json"
    if not meta_path.exists():
        raise CheckpointError(f"{path}: not a firereg checkpoint (no checkpoint.json)")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{meta_path}: not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{meta_path}: unknown checkpoint format {meta.get('format')!r}"
                              if isinstance(meta, dict) else f"{meta_path}: not a checkpoint")
    return meta


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise CheckpointError(f"{path}: missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a valid safetensors file ({exc}); model files are "
                              "never unpickled") from exc


def load_model(path: str | Path, *, device: str | torch.device = "cpu") -> FireModel:
    """Build a :class:`FireModel` from a checkpoint folder (config + safetensors weights)."""
    path = Path(path)
    meta = _read_meta(path)
    try:
        config = from_dict(ModelConfig, meta["model_config"])
    except (ConfigError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: invalid model config ({exc})") from exc
    state = _read_tensors(path / "model.safetensors")
    # Check the config against the weights on a skeleton that allocates nothing: a crafted config
    # (width 10^4, say) must not get to allocate memory the file's own tensors do not account for.
    with torch.device("meta"):
        skeleton = FireModel(config)
    _check_fits(skeleton.state_dict(), state, path)
    _check_weights(skeleton.state_dict(), state, path)  # before building it
    model = FireModel(config)
    _load_weights(model, state, path)
    return model.to(device)


def _check_fits(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor], path: Path) -> None:
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointError(f"{path}: weights do not fit the model (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}, wrong shape {wrong[:3]})")


# Weights may be stored in any floating type the model's float32 parameters can take losslessly
# enough (load_state_dict casts them); firereg itself writes float32. Integer, bool or complex
# tensors are refused: cast to float they would load without complaint as garbage weights.
WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def _check_weights(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor], path: Path) -> None:
    """Every tensor of a model file of an accepted dtype and finite (as the model will hold it).

    NaN or infinite weights make every output NaN (and some native kernels crash on NaN
    coordinates); the first bad tensor, by name, is reported."""
    where = path / "model.safetensors"
    for name in sorted(state):
        tensor, want = state[name], expected[name]
        if want.is_floating_point():
            if tensor.dtype not in WEIGHT_DTYPES:
                raise CheckpointError(
                    f"{where}: tensor {name!r} is {str(tensor.dtype).removeprefix('torch.')}; model "
                    "weights must be floating point (float32, or float16, bfloat16, float64)")
            if not bool(torch.isfinite(tensor.to(want.dtype)).all()):
                if bool(torch.isnan(tensor).any()):
                    what = "NaN"
                elif not bool(torch.isfinite(tensor).all()):
                    what = "infinite values"
                else:
                    what = f"values beyond the range of {str(want.dtype).removeprefix('torch.')}"
                raise CheckpointError(f"{where}: tensor {name!r} holds {what}; the model file is "
                                      "broken (re-train or re-export it)")
        elif tensor.dtype != want.dtype:
            raise CheckpointError(f"{where}: tensor {name!r} is {str(tensor.dtype).removeprefix('torch.')}, "
                                  f"expected {str(want.dtype).removeprefix('torch.')}")


def _load_weights(model: FireModel, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    _check_fits(expected, state, path)
    _check_weights(expected, state, path)
    model.load_state_dict(state)


def load_initial_weights(source: str | Path, model: FireModel) -> Path:
    """Copy the weights of ``source`` into ``model`` (``train.init_from``); returns the folder used.

    ``source`` is a shipped model's name (``firereg models``), a checkpoint folder or a run folder
    (its latest checkpoint). Only the tensor shapes must fit: the model's own config (for example
    ``diffeomorphic: true`` on top of a displacement-trained model) is kept.
    """
    from firereg.pretrained.registry import get_card, model_path

    path = Path(source).expanduser()
    if not path.exists():
        try:
            get_card(str(source))
        except ValueError as exc:
            raise CheckpointError(f"train.init_from: {source!r} is neither a folder nor a shipped "
                                  f"model ({exc})") from None
        path = model_path(str(source))
    if (path / LATEST).exists():
        path = latest_checkpoint(path)
    _load_weights(model, _read_tensors(path / "model.safetensors"), path)
    return path


def load_checkpoint(
    path: str | Path,
    model: FireModel,
    *,
    optimizers: FireOptimizers | None = None,
    restore_rng: bool = True,
) -> Checkpoint:
    """Restore ``model`` (and ``optimizers``, and the RNGs) from a checkpoint folder.

    ``path`` may be a run folder, in which case its ``latest`` checkpoint is used.
    """
    path = Path(path)
    if (path / LATEST).exists():
        path = latest_checkpoint(path)
    meta = _read_meta(path)
    config = from_dict(ModelConfig, meta["model_config"])
    if config != model.config:
        raise CheckpointError(f"{path}: saved for {config}, not for this model {model.config}")
    _load_weights(model, _read_tensors(path / "model.safetensors"), path)
    if optimizers is not None:
        if "optimizers" not in meta:
            raise CheckpointError(f"{path}: holds no optimizer state")
        tensors = _read_tensors(path / "optimizer.safetensors")
        optimizers.load_state_dict(_unflatten_optimizers(tensors, meta["optimizers"]))
    if restore_rng and "rng" in meta:
        _set_rng_state(_read_tensors(path / "rng.safetensors"), meta["rng"])
    return Checkpoint(path=path, step=int(meta["step"]), model_config=config,
                      extra=meta.get("extra", {}))
