"""The configuration of one evaluation experiment (``firereg evaluate --config NAME.yaml``).

One YAML file, every key checked: an unknown key, method, kind or out-of-range value is refused by
name (:class:`~firereg.config.ConfigError`, a ``ValueError``). Example (the demo's)::

    name: demo_brain_2d_t1_t2
    kind: brain                  # brain (SPM avg152 layout) | cardiac (ACDC layout) | individual
    model: t1-t2-2d              # a shipped model's name, a checkpoint folder or a run folder
    modality_moving: T1
    modality_fixed: T2
    dims: 2
    split: test
    protocol:
      transforms_per_image: 20   # the paper's 20 random transforms of each test image (§4.1)
      seed: 0
      max_images: 4              # spread evenly over the split's images; null = all
      augmentation: {...}        # AugmentationConfig ranges: those the model was trained with
    methods: [unaligned, ants_affine, fire_affine, ants_syn, fire]
    ants: {threads: 2}
    device: cpu

Defaults that depend on the kind (:meth:`EvaluationConfig.transforms`,
:meth:`EvaluationConfig.label_table`, :meth:`EvaluationConfig.syn_metric`): brain images get 20
transforms each and are scored on the paper's three structures (brain stem, cerebellum, white
matter); cardiac pairs are ES -> ED with no added transform, scored on the LV cavity and the
myocardium (Table 3). ANTs SyN uses mutual information when the modalities differ and
cross-correlation when they are the same.

Kind ``individual`` (:mod:`firereg.evaluation.individual`): one held-out individual's T1
(``individual: ds000240-sub-01``), no labels; moving = its slice or volume under a known random
transform, fixed = the same image untransformed; scored by NCC and endpoint error (and Dice of
its brain or head mask).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from firereg.config import ConfigError, from_dict

__all__ = ["METHODS", "METHOD_LABELS", "KINDS", "ProtocolConfig", "AntsConfig", "EvaluationConfig",
           "config_from_dict", "load_config"]

METHODS = ("unaligned", "ants_affine", "fire_affine", "ants_syn", "fire", "fire_refine",
           "fire_refine_diffeo", "fire_refine_network", "fire_affine_image", "fire_refine_image")
"""Every method: the paper's Table 2 columns, then FIRE with per-pair refinement
(``register --refine``, ``--refine --diffeomorphic`` and ``--refine --refine-mode network``;
docs/refinement.md), then the image-space affine stage (:mod:`firereg.inference.image_affine`):
alone on the network's affine (``fire_affine_image``, the counterpart of ANTs-affine), and before
the network's non-rigid fields and the feature-space refinement (``fire_refine_image``)."""

METHOD_LABELS = {"unaligned": "unaligned", "ants_affine": "ANTs-affine", "fire_affine": "FIRE-affine",
                 "ants_syn": "ANTs-SyN", "fire": "FIRE", "fire_refine": "FIRE+refine",
                 "fire_refine_diffeo": "FIRE+refine (diffeo)", "fire_refine_network": "FIRE+refine (network)",
                 "fire_affine_image": "FIRE-affine+image", "fire_refine_image": "FIRE+refine (image affine)"}
KINDS = ("brain", "cardiac", "individual")
DEVICES = ("cpu", "cuda", "auto")
SPLITS = ("train", "val", "test")
REGIONS = ("slabs", "whole")
BRAIN_TRANSFORMS = 20

# the paper's structures (§4.1: BS, CE, WHM; §4.2 Table 3: LVe, Myo), in firereg's label values
_BRAIN_LABELS = {8: "brain stem", 7: "cerebellum", 3: "white matter"}
_CARDIAC_LABELS = {3: "LV cavity", 2: "myocardium"}
_INDIVIDUAL_LABELS = {1: "brain/head mask"}  # the scoring mask, carried as a label map

# keyword arguments of the ANTs baselines a config may set (the rest is fixed by the runner)
_ANTS_FIXED = {"moving", "fixed", "moving_labels", "threads", "seed", "work_dir", "metric"}


def _ants_keywords(function_name: str) -> set[str]:
    from firereg.evaluation import ants_baselines

    signature = inspect.signature(getattr(ants_baselines, function_name))
    return {name for name in signature.parameters if name not in _ANTS_FIXED}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ProtocolConfig:
    """How the test pairs are made (§4.1).

    Attributes:
        transforms_per_image: random transforms of each moving image (None: 20 for brain, 1 for
            cardiac, whose misalignment is the heart's own motion; cardiac allows only 1).
        seed: base seed; image ``i`` uses ``derive_seed(seed, i, 3)`` and its transform ``j``
            ``derive_seed(that, j, 2)`` (``RandomPairAugmenter.test_protocol``).
        max_images: use at most this many images of the split, spread evenly over it (first and
            last included); None: all.
        augmentation: :class:`~firereg.data.augmentation.AugmentationConfig` fields of the random
            transforms (brain only; None: its defaults). Use the model's training ranges.
    """

    transforms_per_image: int | None = None
    seed: int = 0
    max_images: int | None = None
    augmentation: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.transforms_per_image is not None and (
                not _is_int(self.transforms_per_image) or self.transforms_per_image < 1):
            raise ConfigError(f"protocol.transforms_per_image must be an int >= 1, got "
                              f"{self.transforms_per_image!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ConfigError(f"protocol.seed must be an int >= 0, got {self.seed!r}")
        if self.max_images is not None and (not _is_int(self.max_images) or self.max_images < 1):
            raise ConfigError(f"protocol.max_images must be an int >= 1 or null, got {self.max_images!r}")
        if self.augmentation is not None:
            if not isinstance(self.augmentation, dict):
                raise ConfigError("protocol.augmentation must be a mapping of AugmentationConfig fields")
            self.augmentation_config()  # validates (unknown keys, ranges)

    def augmentation_config(self):
        """The :class:`~firereg.data.augmentation.AugmentationConfig` of the random transforms."""
        from firereg.data.augmentation import AugmentationConfig

        try:
            return from_dict(AugmentationConfig, self.augmentation)
        except ConfigError as exc:
            raise ConfigError(f"protocol.augmentation: {exc}") from None
        except ValueError as exc:
            raise ConfigError(f"protocol.augmentation: {exc}") from None


@dataclass(frozen=True)
class AntsConfig:
    """Settings of the ANTs baselines.

    Attributes:
        threads: ITK threads of every ANTs call (run in a worker process started with
            ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``); None: ITK's default in this process.
        syn_metric: "mi" (Mattes mutual information) or "cc" (cross-correlation); None: "mi" when
            the modalities differ, "cc" when they are the same.
        seed: ANTs' random seed.
        affine, syn: further keyword arguments of :func:`~firereg.evaluation.ants_baselines.ants_affine`
            and :func:`~firereg.evaluation.ants_baselines.ants_syn` (e.g. ``aff_iterations``,
            ``reg_iterations``); by default antspyx's own defaults.
    """

    threads: int | None = None
    syn_metric: str | None = None
    seed: int = 0
    affine: dict[str, Any] = field(default_factory=dict)
    syn: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.threads is not None and (not _is_int(self.threads) or self.threads < 1):
            raise ConfigError(f"ants.threads must be an int >= 1 or null, got {self.threads!r}")
        if self.syn_metric not in (None, "mi", "cc"):
            raise ConfigError(f"ants.syn_metric must be 'mi', 'cc' or null, got {self.syn_metric!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ConfigError(f"ants.seed must be an int >= 0, got {self.seed!r}")
        for name, function in (("affine", "ants_affine"), ("syn", "ants_syn")):
            value = getattr(self, name)
            if not isinstance(value, dict):
                raise ConfigError(f"ants.{name} must be a mapping of {function} keyword arguments")
            allowed = _ants_keywords(function)
            unknown = sorted(set(value) - allowed)
            if unknown:
                raise ConfigError(f"ants.{name}: unknown key(s) {unknown}; known keys are {sorted(allowed)}")


@dataclass(frozen=True)
class EvaluationConfig:
    """One evaluation experiment (module docstring).

    Attributes:
        name: the experiment's name (used in reports).
        kind: "brain" (modality pairs of the SPM avg152 layout) or "cardiac" (ES -> ED of ACDC-layout
            cines; the prepared phantom is synthetic).
        model: a shipped model's name (``firereg models``), a checkpoint folder or a run folder.
        modality_moving, modality_fixed: brain: e.g. T1 and T2 (required); cardiac: "cine" (default).
        dims: 2 (slices) or 3 (volumes).
        split: which split's images to test on ("test").
        labels: label value -> structure name to score (None: the paper's structures of the kind).
        spacing: model-grid spacing in mm (None: the model card's; a checkpoint without a card
            needs it).
        data_root: the dataset folder (None: the prepared one in the cache, ``$FIREREG_CACHE``):
            brain: a folder in the layout of ``<cache>/datasets/spm_avg152``; cardiac: an ACDC
            folder (``training/patientNNN``).
        protocol, methods, ants: see :class:`ProtocolConfig`, :data:`METHODS`, :class:`AntsConfig`.
        device: FIRE's device, "cpu" (the paper's CPU timings), "cuda" or "auto".
        torch_threads: torch's CPU threads during the run (e.g. equal to ``ants.threads`` for a
            like-for-like time comparison); None: torch's default (all cores).
        moving_brain: brain only: take the moving image from a second brain (``icbm152_2009a``, or a
            folder in its layout) and score grey and white matter
            (:mod:`firereg.evaluation.cross_brain`); None: the moving image is the SPM brain's.
        gpu_timing: when FIRE runs on the CPU and a CUDA device is present, also time FIRE-affine
            and FIRE on the GPU (Table 4's FIRE-GPU columns); the scores are the CPU run's.
        fixed_brain_only: with ``moving_brain`` only: set the fixed SPM image to 0 outside its brain
            (grey + white + CSF >= 0.5), as the skull-stripped moving brain is
            (:func:`firereg.evaluation.cross_brain.fixed_brain_only`).
        region: kind brain, dims 3: "slabs" (the split's slabs, the paper's protocol) or "whole"
            (the whole volume, one image; ``split`` is then unused). A whole avg152 volume holds
            the 2D/3D models' SPM *training* slabs too, so it is a held-out test only for a model
            that never saw avg152 (the synthesized-subject 3D models, docs/training.md).
        individual: kind individual only: the held-out individual, a name of
            ``<cache>/datasets/heldout_individuals`` (e.g. ``ds000240-sub-01``) or a folder holding
            ``t1.nii.gz`` (and optionally ``brain_mask.nii.gz``). ``data_root`` then names the
            folder of the individuals (None: the prepared one).
    """

    name: str
    kind: str
    model: str
    modality_moving: str | None = None
    modality_fixed: str | None = None
    dims: int = 2
    split: str = "test"
    labels: dict[int, str] | None = None
    spacing: float | None = None
    data_root: str | None = None
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    methods: tuple[str, ...] = METHODS
    ants: AntsConfig = field(default_factory=AntsConfig)
    device: str = "cpu"
    torch_threads: int | None = None
    moving_brain: str | None = None
    gpu_timing: bool = True
    individual: str | None = None
    region: str = "slabs"
    fixed_brain_only: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"name must be a non-empty string, got {self.name!r}")
        if self.kind not in KINDS:
            raise ConfigError(f"kind must be one of {list(KINDS)}, got {self.kind!r}")
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(f"model must be a shipped model's name or a checkpoint path, got "
                              f"{self.model!r}")
        if self.kind == "individual":
            for key in ("modality_moving", "modality_fixed"):
                value = getattr(self, key)
                if value is None:
                    object.__setattr__(self, key, "T1")
                elif not isinstance(value, str) or value.casefold() != "t1":
                    raise ConfigError(f"{key} must be 'T1' (or absent) for kind individual: the held-out "
                                      f"individuals have a T1 only, got {value!r}")
            if not isinstance(self.individual, str) or not self.individual.strip():
                raise ConfigError("individual is required for kind individual: a name of the prepared "
                                  "heldout_individuals (ds000240-sub-01, robex-ref) or a folder")
        elif self.individual is not None:
            raise ConfigError("individual is for kind individual only")
        if self.kind == "brain":
            for key in ("modality_moving", "modality_fixed"):
                if not isinstance(getattr(self, key), str) or not getattr(self, key).strip():
                    raise ConfigError(f"{key} is required for kind brain (e.g. T1, T2, PD)")
        elif self.kind == "cardiac":
            for key in ("modality_moving", "modality_fixed"):
                value = getattr(self, key)
                if value is None:
                    object.__setattr__(self, key, "cine")
                elif not isinstance(value, str) or value.casefold() != "cine":
                    raise ConfigError(f"{key} must be 'cine' (or absent) for kind cardiac, got {value!r}")
        if self.dims not in (2, 3) or isinstance(self.dims, bool):
            raise ConfigError(f"dims must be 2 or 3, got {self.dims!r}")
        if self.split not in SPLITS:
            raise ConfigError(f"split must be one of {list(SPLITS)}, got {self.split!r}")
        if self.labels is not None:
            if not isinstance(self.labels, dict) or not self.labels:
                raise ConfigError("labels must be a non-empty mapping of label value -> structure name")
            labels = {}
            for key, name in self.labels.items():
                try:
                    value = int(key)
                except (TypeError, ValueError):
                    raise ConfigError(f"labels: {key!r} is not an integer label value") from None
                if value <= 0 or not isinstance(name, str) or not name.strip():
                    raise ConfigError(f"labels: {key!r}: {name!r} must map a label value > 0 to a name")
                labels[value] = name
            object.__setattr__(self, "labels", labels)
        if self.spacing is not None and (isinstance(self.spacing, bool) or not isinstance(
                self.spacing, int | float) or not 0.1 <= float(self.spacing) <= 20):
            raise ConfigError(f"spacing must be between 0.1 and 20 mm or null, got {self.spacing!r}")
        if self.data_root is not None and (not isinstance(self.data_root, str) or not self.data_root):
            raise ConfigError(f"data_root must be a folder path or null, got {self.data_root!r}")
        methods = self.methods
        if isinstance(methods, str) or not isinstance(methods, list | tuple) or not methods:
            raise ConfigError(f"methods must be a non-empty list, a subset of {list(METHODS)}")
        bad = [m for m in methods if m not in METHODS]
        if bad:
            raise ConfigError(f"methods: unknown method(s) {bad}; choose from {list(METHODS)}")
        if len(set(methods)) != len(methods):
            raise ConfigError(f"methods: a method is listed twice in {list(methods)}")
        object.__setattr__(self, "methods", tuple(m for m in METHODS if m in methods))
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {list(DEVICES)}, got {self.device!r}")
        if self.torch_threads is not None and (not _is_int(self.torch_threads) or self.torch_threads < 1):
            raise ConfigError(f"torch_threads must be an int >= 1 or null, got {self.torch_threads!r}")
        if not isinstance(self.protocol, ProtocolConfig) or not isinstance(self.ants, AntsConfig):
            raise ConfigError("protocol and ants must be mappings")
        if not isinstance(self.gpu_timing, bool):
            raise ConfigError(f"gpu_timing must be true or false, got {self.gpu_timing!r}")
        if self.region not in REGIONS:
            raise ConfigError(f"region must be one of {list(REGIONS)}, got {self.region!r}")
        if self.region == "whole" and (self.kind != "brain" or self.dims != 3):
            raise ConfigError("region: whole is for kind brain with dims 3 (a whole brain volume)")
        if not isinstance(self.fixed_brain_only, bool):
            raise ConfigError(f"fixed_brain_only must be true or false, got {self.fixed_brain_only!r}")
        if self.fixed_brain_only and self.moving_brain is None:
            raise ConfigError("fixed_brain_only is for cross-brain pairs (set moving_brain)")
        if self.moving_brain is not None:
            if self.kind != "brain":
                raise ConfigError("moving_brain is for kind brain (cross-brain pairs)")
            if not isinstance(self.moving_brain, str) or not self.moving_brain.strip():
                raise ConfigError(f"moving_brain must be a prepared dataset's name (icbm152_2009a) or a "
                                  f"folder, got {self.moving_brain!r}")
        if self.kind == "cardiac":
            if self.protocol.transforms_per_image not in (None, 1):
                raise ConfigError("protocol.transforms_per_image must be 1 for kind cardiac: its pairs "
                                  "are ES -> ED, misaligned by the heart's own motion")
            if self.protocol.augmentation is not None:
                raise ConfigError("protocol.augmentation is for kind brain; cardiac pairs get no "
                                  "added transform")

    @property
    def transforms(self) -> int:
        """Transforms per image: the configured count, else 20 (brain, individual) or 1 (cardiac)."""
        if self.protocol.transforms_per_image is not None:
            return self.protocol.transforms_per_image
        return 1 if self.kind == "cardiac" else BRAIN_TRANSFORMS

    @property
    def label_table(self) -> dict[int, str]:
        """Label value -> name of the structures scored."""
        if self.labels is not None:
            return dict(self.labels)
        if self.moving_brain is not None:
            from firereg.evaluation.cross_brain import CROSS_BRAIN_LABELS

            return dict(CROSS_BRAIN_LABELS)
        if self.kind == "individual":
            return dict(_INDIVIDUAL_LABELS)
        return dict(_BRAIN_LABELS if self.kind == "brain" else _CARDIAC_LABELS)

    @property
    def syn_metric(self) -> str:
        """ANTs SyN's metric: the configured one, else "mi" across modalities and "cc" within one."""
        if self.ants.syn_metric is not None:
            return self.ants.syn_metric
        same = self.modality_moving.casefold() == self.modality_fixed.casefold()
        return "cc" if same else "mi"

    @property
    def uses_fire(self) -> bool:
        return any(m.startswith("fire") for m in self.methods)

    @property
    def uses_ants(self) -> bool:
        return any(m.startswith("ants") for m in self.methods)

    def with_overrides(self, *, max_images: int | None = None, transforms: int | None = None,
                       device: str | None = None, torch_threads: int | None = None) -> EvaluationConfig:
        """A copy with the command line's overrides applied (None: unchanged), validated."""
        protocol = self.protocol
        if max_images is not None:
            protocol = replace(protocol, max_images=max_images)
        if transforms is not None:
            protocol = replace(protocol, transforms_per_image=transforms)
        threads = self.torch_threads if torch_threads is None else torch_threads
        return replace(self, protocol=protocol, device=device or self.device, torch_threads=threads)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (as YAML would hold it), with the kind-dependent defaults resolved."""
        return {
            "name": self.name, "kind": self.kind, "model": self.model,
            "modality_moving": self.modality_moving, "modality_fixed": self.modality_fixed,
            "dims": self.dims, "split": self.split,
            "labels": {str(k): v for k, v in self.label_table.items()},
            "spacing": self.spacing, "data_root": self.data_root,
            "protocol": {"transforms_per_image": self.transforms, "seed": self.protocol.seed,
                         "max_images": self.protocol.max_images,
                         "augmentation": (None if self.kind == "cardiac" else
                                          _plain(self.protocol.augmentation_config()))},
            "methods": list(self.methods),
            "ants": {"threads": self.ants.threads, "syn_metric": self.syn_metric, "seed": self.ants.seed,
                     "affine": dict(self.ants.affine), "syn": dict(self.ants.syn)},
            "device": self.device, "torch_threads": self.torch_threads,
            "moving_brain": self.moving_brain, "gpu_timing": self.gpu_timing,
            "individual": self.individual, "region": self.region,
            "fixed_brain_only": self.fixed_brain_only,
        }


def _plain(config: Any) -> dict[str, Any]:
    from firereg.config import to_dict

    return to_dict(config)


def _build(cls: type, data: dict[str, Any] | None, section: str | None) -> Any:
    """``from_dict`` whose unknown-key message names the YAML section, not the class."""
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        message = str(exc)
        prefix = f"{cls.__name__}: "
        if message.startswith(prefix):
            message = (f"{section}: " if section else "") + message[len(prefix):]
        raise ConfigError(message) from None


def config_from_dict(data: dict[str, Any] | None, where: str = "config") -> EvaluationConfig:
    """Build an :class:`EvaluationConfig` from a mapping (a parsed YAML file); unknown keys refused."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values")
    data = dict(data)
    try:
        if "protocol" in data:
            if data["protocol"] is not None and not isinstance(data["protocol"], dict):
                raise ConfigError("protocol must be a mapping")
            data["protocol"] = _build(ProtocolConfig, data["protocol"], "protocol")
        if "ants" in data:
            if data["ants"] is not None and not isinstance(data["ants"], dict):
                raise ConfigError("ants must be a mapping")
            data["ants"] = _build(AntsConfig, data["ants"], "ants")
        missing = [k for k in ("name", "kind", "model") if k not in data]
        if missing:
            raise ConfigError(f"missing key(s) {missing}")
        return _build(EvaluationConfig, data, None)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except TypeError as exc:  # a value of the wrong shape reached a dataclass
        raise ConfigError(f"{where}: {exc}") from None


def load_config(path: str | Path) -> EvaluationConfig:
    """Read an experiment YAML file (see the module docstring)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such experiment config") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    return config_from_dict(data, str(path))
