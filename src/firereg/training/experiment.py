"""The configuration of a training run: one YAML file with model, optim, data, augmentation and
train sections, every key checked (unknown keys and out-of-range values are refused by name)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from firereg.config import ConfigError, ModelConfig, OptimConfig, from_dict, to_dict

__all__ = ["DataConfig", "CurriculumConfig", "SupervisionConfig", "TrainConfig", "ExperimentConfig",
           "load_experiment", "save_experiment", "SOURCES"]

SOURCES = ("spm", "mrbrains", "acdc", "phantom", "synth")


@dataclass(frozen=True)
class DataConfig:
    """Which pairs to train on.

    Attributes:
        source: "spm" (the offline avg152 brain, built by ``firereg data prepare``), "mrbrains"
            (MRBrainS13/18 under ``root``), "acdc" (ACDC under ``root``), "phantom" (the
            synthetic cine tree under ``root``, or the prepared one when ``root`` is None) or
            "synth" (subjects made from the offline ``synth_bank`` by the synthesizer, on the
            training device, as the ``synthesis`` section says; validated on the SPM val slab).
        root: dataset folder; None for the prepared offline data.
        modality_a, modality_b: e.g. "T1" and "T2" (brain); "cine" for cardiac data (A = B).
        dims: 2 (slices) or 3 (volumes).
        spacing: model-grid spacing in mm (paper: 1.28).
        shape: fixed model-grid shape (needed to batch cases of different sizes), or None.
        cache: where ``firereg data prepare`` put the offline data (None: the default cache).
    """

    source: str = "spm"
    root: str | None = None
    modality_a: str = "T1"
    modality_b: str = "T2"
    dims: int = 2
    spacing: float = 1.28
    shape: tuple[int, ...] | None = None
    cache: str | None = None

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"data.source must be one of {list(SOURCES)}, got {self.source!r}")
        if self.source in ("mrbrains", "acdc") and not self.root:
            raise ConfigError(f"data.root is required for data.source {self.source!r}")
        if self.dims not in (2, 3):
            raise ConfigError(f"data.dims must be 2 or 3, got {self.dims!r}")
        if not isinstance(self.spacing, int | float) or not 0.1 <= float(self.spacing) <= 20:
            raise ConfigError(f"data.spacing must be between 0.1 and 20 mm, got {self.spacing!r}")
        if self.shape is not None:
            shape = tuple(int(s) for s in self.shape)
            object.__setattr__(self, "shape", shape)
            if len(shape) != self.dims or any(s % 4 or s < 20 for s in shape):
                raise ConfigError(f"data.shape must hold {self.dims} multiples of 4, each >= 20, "
                                  f"got {shape}")


@dataclass(frozen=True)
class CurriculumConfig:
    """How the pairs get harder (docs/training.md explains why a CPU budget needs this).

    Attributes:
        aligned_steps: steps during which both images of a pair get the *same* random transform,
            so the pair stays aligned and the synthesis learns the contrast mapping first.
        ramp_steps: steps over which the augmentation strength then grows linearly from 0 to 1.
    """

    aligned_steps: int = 0
    ramp_steps: int = 0

    def __post_init__(self) -> None:
        for name in ("aligned_steps", "ramp_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"train.curriculum.{name} must be an int >= 0, got {value!r}")

    def strength(self, step: int) -> float:
        """Augmentation strength in [0, 1] at ``step``."""
        if step < self.aligned_steps:
            return 1.0
        if self.ramp_steps == 0:
            return 1.0
        return min(1.0, (step - self.aligned_steps + 1) / self.ramp_steps)

    def aligned(self, step: int) -> bool:
        return step < self.aligned_steps


@dataclass(frozen=True)
class SupervisionConfig:
    """The known-transform term (:func:`firereg.losses.l_known`), a departure from §3.9.

    Its weight is ``weight`` for the first ``hold_steps``, then falls linearly to 0 over
    ``anneal_steps`` (0: it stays at ``weight``). ``weight: 0`` is the paper's objective alone.
    Only ``data.source: synth`` knows the transforms it needs.
    """

    weight: float = 0.0
    hold_steps: int = 0
    anneal_steps: int = 0

    def __post_init__(self) -> None:
        w = self.weight
        if not isinstance(w, int | float) or isinstance(w, bool) or not math.isfinite(w) or not 0 <= w <= 100:
            raise ConfigError(f"train.supervision.weight must be a number in [0, 100], got {w!r}")
        object.__setattr__(self, "weight", float(w))
        for name in ("hold_steps", "anneal_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"train.supervision.{name} must be an int >= 0, got {value!r}")

    def weight_at(self, step: int) -> float:
        """The term's weight at ``step`` (0-based)."""
        if self.weight == 0 or step < self.hold_steps or self.anneal_steps == 0:
            return self.weight
        return self.weight * max(0.0, 1.0 - (step - self.hold_steps + 1) / self.anneal_steps)


@dataclass(frozen=True)
class TrainConfig:
    """The loop: iterations (paper: 144,000), batch, validation, checkpoints, logs.

    ``init_from`` (a shipped model's name, e.g. ``t1-t2-2d``, or a checkpoint/run folder) starts a
    new run from those weights instead of a fresh initialisation (fine-tuning); the optimizers
    start fresh. The tensor shapes must match; settings that change no shape (``diffeomorphic``)
    may differ. A resumed run ignores it (its own checkpoint holds the weights).
    """

    iterations: int = 144_000
    batch_size: int = 4
    validate_every: int = 1000
    validation_pairs: int = 16
    checkpoint_every: int = 1000
    log_every: int = 10
    seed: int = 0
    num_workers: int = 0
    max_grad_norm: float | None = None
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    init_from: str | None = None
    supervision: SupervisionConfig = field(default_factory=SupervisionConfig)
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if isinstance(self.curriculum, dict):
            object.__setattr__(self, "curriculum", from_dict(CurriculumConfig, self.curriculum))
        if isinstance(self.supervision, dict):
            object.__setattr__(self, "supervision", from_dict(SupervisionConfig, self.supervision))
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"train.precision must be 'fp32' or 'bf16' (autocast of the forward pass), "
                              f"got {self.precision!r}")
        for name, lo in (("iterations", 1), ("batch_size", 1), ("validate_every", 1),
                         ("validation_pairs", 1), ("checkpoint_every", 1), ("log_every", 1),
                         ("seed", 0), ("num_workers", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < lo:
                raise ConfigError(f"train.{name} must be an int >= {lo}, got {value!r}")
        if self.max_grad_norm is not None and not (isinstance(self.max_grad_norm, int | float)
                                                   and self.max_grad_norm > 0):
            raise ConfigError(f"train.max_grad_norm must be > 0 or null, got {self.max_grad_norm!r}")
        if self.init_from is not None and (not isinstance(self.init_from, str) or not self.init_from.strip()):
            raise ConfigError(f"train.init_from must be a shipped model's name or a checkpoint folder, "
                              f"got {self.init_from!r}")


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything a training run needs; saved beside its checkpoints."""

    model: ModelConfig
    optim: OptimConfig
    data: DataConfig
    augmentation: dict[str, Any]
    train: TrainConfig
    synthesis: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.model.ndim != self.data.dims:
            raise ConfigError(f"model.ndim ({self.model.ndim}) must equal data.dims ({self.data.dims})")
        synth = self.data.source == "synth"
        if self.synthesis is not None and not synth:
            raise ConfigError(f"the synthesis section needs data.source: synth (got {self.data.source!r})")
        if self.train.supervision.weight > 0 and not synth:
            raise ConfigError("train.supervision needs data.source: synth (only synthesized pairs know "
                              "their true transform)")

    def to_dict(self) -> dict[str, Any]:
        train = to_dict(self.train)
        train["curriculum"] = to_dict(self.train.curriculum)
        train["supervision"] = to_dict(self.train.supervision)
        out = {"model": to_dict(self.model), "optim": to_dict(self.optim),
               "data": to_dict(self.data), "augmentation": dict(self.augmentation), "train": train}
        if self.synthesis is not None:
            out["synthesis"] = dict(self.synthesis)
        return out


SECTIONS = ("model", "optim", "data", "augmentation", "train", "synthesis")


def experiment_from_dict(data: dict[str, Any], where: str = "config") -> ExperimentConfig:
    """Build an :class:`ExperimentConfig`, naming the file and section of any bad key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with sections {list(SECTIONS)}")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {unknown}; known: {list(SECTIONS)}")
    try:
        from firereg.data.augmentation import AugmentationConfig

        augmentation = from_dict(AugmentationConfig, data.get("augmentation"))
        synthesis = None
        source = (data.get("data") or {}).get("source") if isinstance(data.get("data"), dict) else None
        if "synthesis" in data or source == "synth":
            from firereg.data.synthesis.config import SynthesisConfig

            synthesis = from_dict(SynthesisConfig, data.get("synthesis")).to_dict()
        return ExperimentConfig(
            model=from_dict(ModelConfig, data.get("model")),
            optim=from_dict(OptimConfig, data.get("optim")),
            data=from_dict(DataConfig, data.get("data")),
            augmentation=to_dict(augmentation),
            train=from_dict(TrainConfig, data.get("train")),
            synthesis=synthesis,
        )
    except (ConfigError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read a training config YAML (see ``configs/``)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({_one_line(exc)})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text (UTF-8) YAML file ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    return experiment_from_dict(data or {}, str(path))


def _one_line(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: the problem and where it is."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def save_experiment(config: ExperimentConfig, path: str | Path) -> Path:
    from firereg.atomic import atomic_write_text

    return atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
