"""The card of a shipped model: what it registers, at which grid spacing, and how it was trained."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firereg.atomic import json_text

__all__ = ["CARD_NAME", "CardError", "ModelCard", "VALIDATION_KEYS"]

CARD_NAME = "card.json"
VALIDATION_KEYS = ("dice_unaligned", "dice_affine", "dice", "pairs",
                   "synth_dice_unaligned", "synth_dice_affine", "synth_dice", "synth_pairs")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class CardError(ValueError):
    """A model card is missing a field, has an unknown one, or holds an invalid value."""


@dataclass(frozen=True)
class ModelCard:
    """What a shipped model is.

    Attributes:
        name: the model's name and folder, e.g. "t1-t2-2d" (lower case, digits, ``.``, ``_``, ``-``).
        modality_a, modality_b: the modalities of the model's sides A and B, e.g. "T1" and "T2";
            equal for an intra-modal model ("cine").
        ndim: 2 or 3, the dimensionality of the images it registers.
        spacing_mm: the model-grid spacing it was trained at (the default ``--spacing``).
        dataset: what it was trained on.
        config: repository-relative path of the committed training config.
        command: the exact training command.
        iterations: training steps.
        machine: where it was trained.
        validation: the last validation Dice of the run: ``dice_unaligned``, ``dice_affine``,
            ``dice`` and ``pairs`` (empty when the run had no labelled validation pairs), and the
            same with ``synth_`` for a synthesized-data run's validation brain.
        diffeomorphic: whether the transforms are diffeomorphic by construction.
        notes: anything a user should know.
        recipe: how it was trained, in a few words (e.g. "synthesized subjects + known-transform
            term, docs/training.md").
        heldout: its figures on brains it never saw, by experiment name (``firereg evaluate``):
            ``{experiment: {metric: value}}``, e.g. mean Dice of FIRE and ANTs in the same run.
    """

    name: str
    modality_a: str
    modality_b: str
    ndim: int
    spacing_mm: float
    dataset: str
    config: str
    command: str
    iterations: int
    machine: str
    validation: dict[str, float] = field(default_factory=dict)
    diffeomorphic: bool = False
    notes: str = ""
    recipe: str = ""
    heldout: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_PATTERN.match(self.name):
            raise CardError(f"model card: name must be lower-case letters, digits, '.', '_' or '-', "
                            f"got {self.name!r}")
        where = f"model card {self.name}"
        for key in ("modality_a", "modality_b"):
            value = getattr(self, key)
            if not isinstance(value, str) or not value.strip():
                raise CardError(f"{where}: {key} must be a non-empty string, got {value!r}")
        for key in ("dataset", "config", "command", "machine", "notes", "recipe"):
            if not isinstance(getattr(self, key), str):
                raise CardError(f"{where}: {key} must be a string, got {getattr(self, key)!r}")
        if isinstance(self.ndim, bool) or self.ndim not in (2, 3):
            raise CardError(f"{where}: ndim must be 2 or 3, got {self.ndim!r}")
        if (isinstance(self.spacing_mm, bool) or not isinstance(self.spacing_mm, int | float)
                or not math.isfinite(self.spacing_mm) or self.spacing_mm <= 0):
            raise CardError(f"{where}: spacing_mm must be a positive number, got {self.spacing_mm!r}")
        object.__setattr__(self, "spacing_mm", float(self.spacing_mm))
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or self.iterations < 0:
            raise CardError(f"{where}: iterations must be an int >= 0, got {self.iterations!r}")
        if not isinstance(self.diffeomorphic, bool):
            raise CardError(f"{where}: diffeomorphic must be true or false, got {self.diffeomorphic!r}")
        if not isinstance(self.validation, dict):
            raise CardError(f"{where}: validation must be a mapping, got {self.validation!r}")
        unknown = sorted(set(self.validation) - set(VALIDATION_KEYS))
        if unknown:
            raise CardError(f"{where}: unknown validation key(s) {unknown}; known keys are "
                            f"{list(VALIDATION_KEYS)}")
        for key, value in self.validation.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise CardError(f"{where}: validation.{key} must be a number, got {value!r}")
        if not isinstance(self.heldout, dict):
            raise CardError(f"{where}: heldout must be a mapping, got {self.heldout!r}")
        for experiment, figures in self.heldout.items():
            if not isinstance(figures, dict) or not all(
                    isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                    for v in figures.values()):
                raise CardError(f"{where}: heldout.{experiment} must map metric names to finite "
                                f"numbers, got {figures!r}")

    @property
    def modalities(self) -> str:
        """``"T1 <-> T2"``."""
        return f"{self.modality_a} <-> {self.modality_b}"

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-safe dict of the card."""
        return {**dataclasses.asdict(self), "validation": dict(self.validation),
                "heldout": {k: dict(v) for k, v in self.heldout.items()}}

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "model card") -> ModelCard:
        """Build a card from a mapping, refusing unknown and missing keys by name."""
        if not isinstance(data, dict):
            raise CardError(f"{source}: expected a JSON object, got {type(data).__name__}")
        fields = dataclasses.fields(cls)
        known = {f.name for f in fields}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CardError(f"{source}: unknown key(s) {unknown}; known keys are {sorted(known)}")
        required = [f.name for f in fields if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]
        missing = [k for k in required if k not in data]
        if missing:
            raise CardError(f"{source}: missing key(s) {missing}")
        try:
            return cls(**data)
        except CardError as exc:
            if source == "model card":
                raise
            raise CardError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> ModelCard:
        """Read a ``card.json``."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CardError(f"{path}: no such model card") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CardError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_dict(data, source=str(path))

    def to_json(self) -> str:
        return json_text(self.to_dict(), indent=2) + "\n"

    def save(self, path: str | Path) -> Path:
        """Write the card as JSON, atomically."""
        from firereg.atomic import atomic_write_text

        return atomic_write_text(path, self.to_json())
