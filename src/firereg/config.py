"""Frozen, validated configuration of the model and its optimisation, with YAML in and out.

Configs travel inside checkpoints, so they are plain data: dataclasses of numbers, strings and
tuples, checked on construction. Unknown keys are refused rather than silently ignored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

__all__ = ["ConfigError", "ModelConfig", "OptimConfig", "from_dict", "to_dict", "load_yaml",
           "save_yaml"]

PAPER_WIDTH = 64
# Output channels of T_af's three convolutions at the paper's width (our reading of §3.3).
PAPER_AFFINE_CHANNELS = (8, 16, 20)
PAPER_AFFINE_KERNELS = (7, 5, 2)
PAPER_AFFINE_HIDDEN = 32


class ConfigError(ValueError):
    """A configuration value or key is invalid."""


def _scaled(value: int, width: int, minimum: int) -> int:
    return max(minimum, round(value * width / PAPER_WIDTH))


AFFINE_POOLINGS = ("mean", "moments")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a FIRE model (§3.1-3.3).

    Attributes:
        ndim: spatial dimensions, 2 or 3 (a 4D cine is registered as pairs of 2D/3D frames).
        in_channels: channels of each input image (1 for MR).
        width: base channel count C. G has C, 2C, 4C channels; the paper uses 64.
        synthesis_channels: channels of the decoders' 7^d block before the 1x1 output conv
            (3 in the paper, inherited from CycleGAN's RGB output).
        affine_channels: output channels of T_af's three convolutions; default scales the
            paper's (8, 16, 20) by ``width / 64`` (at least 4 each).
        affine_kernels: kernel sizes of T_af's three stride-2 convolutions (7, 5, 2 in §3.3).
        affine_hidden: units of T_af's first dense layer; default scales 32 by ``width / 64``.
        padding_mode: padding of G and F's convolutions ("reflect" as in CycleGAN, or "zeros").
        affine_pooling: how T_af turns its last feature map into a vector. "mean" is the paper's
            global average pooling; "moments" adds the coordinate-weighted means
            ``mean(f * x_i)`` per axis, which tell the dense layers *where* features are (needed
            for rotation and scaling; see docs/design.md).
        diffeomorphic: T_nr's output is a stationary velocity field, integrated by scaling and
            squaring (``firereg.spatial.velocity``) into ``phi_nr``; a model trained this way says
            so in its checkpoint's config.
        stem_kernel: kernel of the two full-resolution conv blocks: G's first block and each
            decoder's block before its 1x1 output conv (7 in the paper). An odd int. They run on
            every image voxel, so their cost grows as ``stem_kernel^d`` (in 3D 343 taps at 7
            against 27 at 3); a smaller kernel also sees a smaller neighbourhood. Measured
            training speed: docs/benchmarks.md, "Training throughput".
        res_blocks: residual blocks of G at 1/4 resolution (4 by default; the decoders keep
            their four). Each costs two 3^d convolutions of ``4 * width`` channels
            (``2 * 3^d * (4 * width)^2`` weights) per pass of G, which runs on 8 images per
            training pair; fewer blocks make G shallower, with a smaller receptive field.
    """

    ndim: int = 2
    in_channels: int = 1
    width: int = PAPER_WIDTH
    synthesis_channels: int = 3
    affine_channels: tuple[int, int, int] | None = None
    affine_kernels: tuple[int, int, int] = PAPER_AFFINE_KERNELS
    affine_hidden: int | None = None
    padding_mode: str = "reflect"
    affine_pooling: str = "mean"
    diffeomorphic: bool = False
    stem_kernel: int = 7
    res_blocks: int = 4

    def __post_init__(self) -> None:
        if self.ndim not in (2, 3):
            raise ConfigError(f"ModelConfig.ndim must be 2 or 3, got {self.ndim!r}")
        for name in ("in_channels", "width", "synthesis_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"ModelConfig.{name} must be a positive int, got {value!r}")
        for name in ("affine_channels", "affine_kernels"):
            value = getattr(self, name)
            if value is None:
                continue
            value = tuple(value)
            object.__setattr__(self, name, value)
            if len(value) != 3 or any(not isinstance(v, int) or v < 1 for v in value):
                raise ConfigError(f"ModelConfig.{name} must be 3 positive ints, got {value!r}")
        if (not isinstance(self.stem_kernel, int) or isinstance(self.stem_kernel, bool)
                or self.stem_kernel < 1 or self.stem_kernel % 2 == 0):
            raise ConfigError(f"ModelConfig.stem_kernel must be an odd positive int (the blocks keep "
                              f"the image size), got {self.stem_kernel!r}")
        if (not isinstance(self.res_blocks, int) or isinstance(self.res_blocks, bool)
                or self.res_blocks < 0):
            raise ConfigError(f"ModelConfig.res_blocks must be a non-negative int, got "
                              f"{self.res_blocks!r}")
        if self.affine_hidden is not None and (
            not isinstance(self.affine_hidden, int) or self.affine_hidden < 1
        ):
            raise ConfigError(f"ModelConfig.affine_hidden must be a positive int, got "
                              f"{self.affine_hidden!r}")
        if not isinstance(self.diffeomorphic, bool):
            raise ConfigError(f"ModelConfig.diffeomorphic must be true or false, got {self.diffeomorphic!r}")
        if self.affine_pooling not in AFFINE_POOLINGS:
            raise ConfigError(f"ModelConfig.affine_pooling must be one of {AFFINE_POOLINGS}, got "
                              f"{self.affine_pooling!r}")
        if self.padding_mode not in ("reflect", "zeros", "replicate"):
            raise ConfigError(f"ModelConfig.padding_mode must be 'reflect', 'zeros' or "
                              f"'replicate', got {self.padding_mode!r}")

    @property
    def feature_channels(self) -> int:
        """Channels of G's output, ``4 * width`` (256 in the paper)."""
        return 4 * self.width

    @property
    def resolved_affine_channels(self) -> tuple[int, int, int]:
        if self.affine_channels is not None:
            return self.affine_channels
        return tuple(_scaled(c, self.width, 4) for c in PAPER_AFFINE_CHANNELS)  # type: ignore[return-value]

    @property
    def resolved_affine_hidden(self) -> int:
        if self.affine_hidden is not None:
            return self.affine_hidden
        return _scaled(PAPER_AFFINE_HIDDEN, self.width, 8)


# Adam moves every weight by about lr per step whatever the gradient's scale, and the networks'
# weights start at about 1/sqrt(fan-in) (0.01 to 0.1): above 0.1 each step moves a weight by more
# than its own size, and training diverges within a few steps. The paper's rates are 1e-5 to 1e-4,
# the shipped configs' at most 1e-3; 0.1 is a hundred times that.
MAX_LR = 0.1


@dataclass(frozen=True)
class OptimConfig:
    """The three Adam optimizers of §3.9 (learning rates in the paper's values by default)."""

    lr_affine: float = 1e-5
    lr_nonrigid: float = 5e-5
    lr_synthesis: float = 1e-4
    betas: tuple[float, float] = field(default=(0.9, 0.999))

    def __post_init__(self) -> None:
        for name in ("lr_affine", "lr_nonrigid", "lr_synthesis"):
            value = getattr(self, name)
            if (not isinstance(value, int | float) or isinstance(value, bool)
                    or not 0.0 < float(value) <= MAX_LR):
                raise ConfigError(f"OptimConfig.{name} must be a float in (0, {MAX_LR}], got {value!r}")
            object.__setattr__(self, name, float(value))
        betas = tuple(self.betas)
        object.__setattr__(self, "betas", betas)
        if len(betas) != 2 or any(not 0.0 <= float(b) < 1.0 for b in betas):
            raise ConfigError(f"OptimConfig.betas must be two floats in [0, 1), got {betas!r}")


T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any] | None) -> T:
    """Build the dataclass ``cls`` from a mapping, refusing unknown keys by name."""
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__}: expected a mapping of keys to values, got "
                          f"{type(data).__name__} {data!r:.60}")
    data = dict(data or {})
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown key(s) {unknown}; known keys are {sorted(known)}")
    return cls(**data)


def to_dict(config: Any) -> dict[str, Any]:
    """A plain, YAML-safe dict of a config dataclass (tuples become lists)."""
    def plain(v: Any) -> Any:
        return list(v) if isinstance(v, tuple) else v
    return {k: plain(v) for k, v in dataclasses.asdict(config).items()}


def save_yaml(config: Any, path: str | Path) -> None:
    """Write a config dataclass as YAML."""
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def load_yaml(cls: type[T], path: str | Path) -> T:
    """Read a YAML file written by :func:`save_yaml` (or by hand) into ``cls``."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values")
    return from_dict(cls, data)
