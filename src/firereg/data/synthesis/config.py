"""Settings of the training-subject synthesizer: anatomy, label-driven rendering, appearance.

Every field is a plain number, string or list, checked on construction; unknown keys are refused
by :func:`firereg.config.from_dict` with one line that names them. docs/training.md explains
each group and the ablation configs that switch them off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from firereg.config import ConfigError, from_dict

__all__ = ["AnatomyConfig", "RenderConfig", "AppearanceConfig", "SynthesisConfig"]


def _check_range(owner: str, name: str, value: Any, lo: float, hi: float) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not lo <= float(value) <= hi:
        raise ConfigError(f"synthesis.{owner}{name} must be a number in [{lo:g}, {hi:g}], got {value!r}")


@dataclass(frozen=True)
class AnatomyConfig:
    """Random large-scale smooth deformations that turn a template into a new "subject".

    Attributes:
        p: probability that an image's subject is deformed at all.
        control_points: control nodes per axis of the smooth field (few = large-scale).
        max_displacement: largest control displacement, a fraction of the field of view.
        scaling: per-axis head-size change, log-uniform in ``[1 / (1 + s), 1 + s]``.
        p_same: probability that the fixed image of a pair from the same base subject gets the
            moving image's anatomy (a same-subject pair, the paper's protocol) rather than an
            anatomy of its own (an inter-subject pair).
    """

    p: float = 1.0
    control_points: int = 5
    max_displacement: float = 0.06
    scaling: float = 0.08
    p_same: float = 0.5

    def __post_init__(self) -> None:
        for name, lo, hi in (("p", 0, 1), ("max_displacement", 0, 0.3), ("scaling", 0, 0.5),
                             ("p_same", 0, 1)):
            _check_range("anatomy.", name, getattr(self, name), lo, hi)
        if not isinstance(self.control_points, int) or not 2 <= self.control_points <= 16:
            raise ConfigError(f"synthesis.anatomy.control_points must be an int in [2, 16], got "
                              f"{self.control_points!r}")


@dataclass(frozen=True)
class RenderConfig:
    """How a modality is rendered from a tissue/parcel map (SynthSeg-style, but anchored).

    Each parcel's intensity is drawn around its tissue class's measured mean for that modality
    (``synth_bank/intensities.json``): ``mean_c * (1 + class_jitter * z_c) + spread * sd_c * z_p``
    with standard normal ``z`` per class and per parcel, then voxel noise ``noise * sd_c`` and a
    partial-volume blur of ``blur`` voxels.
    """

    class_jitter: float = 0.1
    spread: float = 0.5
    noise: float = 0.3
    blur: float = 0.7

    def __post_init__(self) -> None:
        for name, lo, hi in (("class_jitter", 0, 1), ("spread", 0, 5), ("noise", 0, 5), ("blur", 0, 5)):
            _check_range("render.", name, getattr(self, name), lo, hi)


@dataclass(frozen=True)
class AppearanceConfig:
    """Per-image appearance randomisation, applied to the network's inputs only (the clean,
    co-registered targets of the known-transform term get none).

    Intensities are mapped to [0, 1] first; each effect happens with its probability ``p_*`` and
    a strength drawn uniformly up to its maximum:

    * bias: a smooth multiplicative field ``exp(b)``, ``|b| <= bias`` (control grid of 4 nodes);
    * gamma: ``x ** exp(g)``, ``|g| <= gamma``;
    * contrast: ``x + c x (1 - x)``, ``|c| <= contrast`` (monotone for ``c < 1``);
    * blur: Gaussian, sigma up to ``blur`` voxels;
    * resolution: one random axis downsampled by a factor up to ``resolution`` and back;
    * sharpen: unsharp masking of amount up to ``sharpen``;
    * noise: Rician noise of standard deviation up to ``noise``.
    Then the image is renormalized to [-1, 1] by the preprocessing's percentiles (0.5, 99.5).
    """

    p_bias: float = 0.8
    bias: float = 0.3
    p_gamma: float = 0.8
    gamma: float = 0.3
    p_contrast: float = 0.5
    contrast: float = 0.5
    p_blur: float = 0.4
    blur: float = 1.0
    p_resolution: float = 0.25
    resolution: float = 2.5
    p_sharpen: float = 0.2
    sharpen: float = 1.0
    p_noise: float = 0.8
    noise: float = 0.04

    def __post_init__(self) -> None:
        for name in ("p_bias", "p_gamma", "p_contrast", "p_blur", "p_resolution", "p_sharpen", "p_noise"):
            _check_range("appearance.", name, getattr(self, name), 0, 1)
        for name, lo, hi in (("bias", 0, 2), ("gamma", 0, 1.5), ("contrast", 0, 0.95),
                             ("blur", 0, 5), ("resolution", 1, 8), ("sharpen", 0, 5), ("noise", 0, 0.5)):
            _check_range("appearance.", name, getattr(self, name), lo, hi)

    @classmethod
    def none(cls) -> AppearanceConfig:
        """No appearance change at all (for ablations)."""
        return cls(p_bias=0, p_gamma=0, p_contrast=0, p_blur=0, p_resolution=0, p_sharpen=0, p_noise=0)


@dataclass(frozen=True)
class SynthesisConfig:
    """The ``synthesis`` section of a training config with ``data.source: synth``.

    Attributes:
        templates: co-registered multi-modal templates of ``synth_bank`` to draw subjects from
            (each must hold both modalities of the model).
        tissues: tissue/parcel maps of ``synth_bank`` to render subjects from; the special value
            ``"all"`` takes every one the bank holds.
        p_tissues: probability that an image's subject is rendered from a tissue map rather than
            taken from a template (0: templates only; 1: label-driven only).
        p_same_subject: probability that a pair's fixed image comes from the moving image's base
            subject (else from another one, drawn independently).
        slice_offset: in 2D, the fixed slice of an inter-subject pair lies up to this many model-
            grid slices from the moving one (brains never line up slice for slice).
        whole_brain_tissues: label-driven subjects may use every slice (they are other people);
            templates always keep to the SPM train slabs, so the avg152 test slab stays unseen.
        validation_tissues: parcel maps kept out of training (also out of ``tissues: [all]``)
            and used as a *validation brain*: inter-subject pairs of it (two anatomies, full-
            strength poses) are scored by tissue Dice in ``val.csv`` (``synth_dice*``). It is
            the brain settings are chosen on; the held-out test brains are never used for that.
        anatomy, render, appearance: the three groups above.
    """

    templates: tuple[str, ...] = ("avg152", "oldnorm")
    tissues: tuple[str, ...] = ("all",)
    p_tissues: float = 0.5
    p_same_subject: float = 0.5
    slice_offset: int = 2
    whole_brain_tissues: bool = True
    validation_tissues: tuple[str, ...] = ()
    anatomy: AnatomyConfig = field(default_factory=AnatomyConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)

    def __post_init__(self) -> None:
        for name, cls in (("anatomy", AnatomyConfig), ("render", RenderConfig),
                          ("appearance", AppearanceConfig)):
            value = getattr(self, name)
            if isinstance(value, dict) or value is None:
                object.__setattr__(self, name, from_dict(cls, value))
            elif not isinstance(value, cls):
                raise ConfigError(f"synthesis.{name} must be a mapping, got {value!r}")
        for name in ("templates", "tissues", "validation_tissues"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"synthesis.{name} must be a list of names, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        for name in ("p_tissues", "p_same_subject"):
            _check_range("", name, getattr(self, name), 0, 1)
        if not isinstance(self.slice_offset, int) or not 0 <= self.slice_offset <= 20:
            raise ConfigError(f"synthesis.slice_offset must be an int in [0, 20], got {self.slice_offset!r}")
        if not isinstance(self.whole_brain_tissues, bool):
            raise ConfigError(f"synthesis.whole_brain_tissues must be true or false, got "
                              f"{self.whole_brain_tissues!r}")
        if self.p_tissues < 1 and not self.templates:
            raise ConfigError("synthesis.templates is empty but synthesis.p_tissues < 1")
        if self.p_tissues > 0 and not self.tissues:
            raise ConfigError("synthesis.tissues is empty but synthesis.p_tissues > 0")
        both = sorted(set(self.tissues) & set(self.validation_tissues))
        if both:
            raise ConfigError(f"synthesis: {both} both in tissues (training) and validation_tissues")

    def to_dict(self) -> dict[str, Any]:
        from firereg.config import to_dict

        out = to_dict(self)
        for name in ("anatomy", "render", "appearance"):
            out[name] = to_dict(getattr(self, name))
        return out
