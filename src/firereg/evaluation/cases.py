"""The evaluation pairs of an experiment, as world-placed images with their label maps.

**Brain** (§4.1). The test images are the split's 2D axial slices (``dims: 2``) or its 3D slabs
(``dims: 3``) of a dataset in the layout of ``<cache>/datasets/spm_avg152`` (co-registered
modalities sharing one label map). For test image ``i`` and transform ``j``:

* moving = the moving-modality image under random transform ``j`` of
  :meth:`~firereg.data.augmentation.RandomPairAugmenter.test_protocol` (seed
  ``derive_seed(protocol.seed, i, 3)``), its labels warped by the same transform (label-aware);
* fixed = the fixed-modality image of the same slice or slab, untransformed, with its labels.

Both stay on the image's own grid and world placement; the transform changes the moving content
only. The case id ``<image>/tNN/seedS`` names (image, transform, seed); :func:`build_case` replays
one case from its image index and transform index alone.

**Cardiac** (§4.2, Table 3). For each subject of the split of an ACDC-layout folder (the prepared
phantom is **synthetic**): moving = the ES frame, fixed = the ED frame, each with its ground-truth
labels; 2D: one pair per short-axis slice whose ED labels hold a scored structure; 3D: the
volumes. No transform is added: the heart's motion is the misalignment.

2D slices are re-expressed in their own plane (:func:`in_plane`): the world is rotated so that the
plane is axial, a rigid motion that changes no distance, angle or what the model sees, and lets
ANTs (whose 2D images live in the x-y plane) register oblique cardiac slices.

**Individual** (held out, no labels; :mod:`firereg.evaluation.individual`): the individual's T1
on the model grid (axial slices or the volume), its brain or head mask as the label map; pairs
are made as for the brain kind, with moving and fixed the same untransformed image before the
transform.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from firereg.data.image import Image
from firereg.data.io import read_image, read_labels
from firereg.data.records import Case
from firereg.evaluation.experiment_config import EvaluationConfig

__all__ = ["SourceImage", "EvalCase", "DataInfo", "source_images", "selected_indices", "image_seed",
           "build_case", "build_cases", "describe_case", "in_plane"]


@dataclass(frozen=True)
class SourceImage:
    """One test image before any transform: the moving and fixed images and their labels."""

    name: str
    moving: Image
    fixed: Image
    moving_labels: Image
    fixed_labels: Image
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalCase:
    """One registration pair to evaluate (module docstring).

    Attributes:
        id: ``<image>/tNN/seedS`` (brain) or ``<image>/ES->ED`` (cardiac).
        image_index: index of the image in the split's full list (before ``max_images``).
        transform_index, seed: the protocol transform and base seed (None for cardiac).
        moving, fixed, moving_labels, fixed_labels: still images on their own grids.
        meta: the transform's parameters (``TransformParams.to_dict``), slice, frames...
    """

    id: str
    image_index: int
    image_name: str
    transform_index: int | None
    seed: int | None
    moving: Image
    fixed: Image
    moving_labels: Image
    fixed_labels: Image
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataInfo:
    """What the images are, for the reports.

    Attributes:
        dataset: e.g. "spm_avg152" or "cardiac_phantom"; root: its folder.
        synthetic_images: the images themselves are synthetic (the cardiac phantom).
        synthetic_transforms: the misalignment is made by random transforms (brain).
        description: one sentence for the reports, saying what is synthetic.
    """

    dataset: str
    root: str
    synthetic_images: bool
    synthetic_transforms: bool
    description: str


# --- geometry --------------------------------------------------------------------------------

def _plane_rotation(affine: np.ndarray) -> np.ndarray:
    """4x4 rotation of the world that makes a 2D image's plane axial, keeping the model's view."""
    from firereg.data.preprocessing import canonical_directions

    directions = canonical_directions(np.asarray(affine, dtype=np.float64), 2)[:3, :3]
    first = directions[:, 0] / np.linalg.norm(directions[:, 0])
    second = directions[:, 1] - first * float(first @ directions[:, 1])
    second /= np.linalg.norm(second)
    rotation = np.eye(4)
    rotation[:3, :3] = np.stack([first, second, np.cross(first, second)])  # rows: new x, y, z
    return rotation


def in_plane(*images: Image) -> tuple[Image, ...]:
    """2D images of one plane re-expressed with that plane axial (module docstring).

    The rotation is taken from the first image's grid and applied to all, so images that shared a
    world still do. A no-op for axial slices whose axes already point along +x and +y (RAS).
    """
    rotation = _plane_rotation(images[0].affine)
    if np.allclose(rotation, np.eye(4)):
        return images
    return tuple(Image(im.data, rotation @ im.affine, im.ndim, source=im.source) for im in images)


def _crop_k(image: Image, first: int, last: int) -> Image:
    from firereg.data.sources.spm import slice_affine

    return Image(np.ascontiguousarray(image.data[:, :, first:last + 1]), slice_affine(image.affine, first),
                 3, source=image.source)


def _slice(image: Image, z: int) -> Image:
    from firereg.data.sources.spm import slice_affine

    return Image(np.ascontiguousarray(image.data[:, :, z]), slice_affine(image.affine, z), 2,
                 source=f"{image.source}[z={z}]" if image.source else None)


# --- brain -----------------------------------------------------------------------------------

def _modality_path(images: dict[str, Path], modality: str, where: str) -> Path:
    for key, path in images.items():
        if key.casefold() == modality.casefold():
            return path
    raise ValueError(f"{where}: no {modality} image (has {', '.join(sorted(images))})")


def _brain_root(config: EvaluationConfig) -> Path:
    from firereg.data.sources.spm import spm_dataset_dir

    return Path(config.data_root).expanduser() if config.data_root else spm_dataset_dir()


def _brain_info(root: Path) -> DataInfo:
    from firereg.data.sources.cache import read_done

    record = read_done(root) or {}
    dataset = str(record.get("dataset") or root.name)
    if record.get("synthetic"):
        what = f"SYNTHETIC images ({dataset}) with synthetic random transforms of the moving image"
        return DataInfo(dataset, str(root), True, True, what)
    if dataset == "spm_avg152":
        what = ("real MRI templates (SPM avg152 T1/T2/PD: one average brain of 152 subjects, labels "
                "derived from the Neuromorphometrics atlas), misaligned by synthetic random affine + "
                "non-rigid transforms of the moving image (the paper's test protocol, §4.1)")
    else:
        what = (f"brain images of {dataset}, misaligned by synthetic random affine + non-rigid "
                "transforms of the moving image (§4.1)")
    return DataInfo(dataset, str(root), False, True, what)


def _brain_images(config: EvaluationConfig) -> tuple[list[SourceImage], DataInfo]:
    from firereg.data.sources.spm import spm_cases, spm_slice_cases

    root = _brain_root(config)
    records = (spm_slice_cases(root, split=config.split) if config.dims == 2
               else spm_cases(root, split=config.split))
    if config.region == "whole":  # one record, the whole volume (its meta's slabs are not used)
        records = [_whole_volume(records[0])]
    if config.moving_brain is not None:
        return _cross_brain_images(config, root, records)
    images = []
    for case in records:
        where = case.name
        moving_path = _modality_path(case.images, config.modality_moving, where)
        fixed_path = _modality_path(case.images, config.modality_fixed, where)
        if case.labels is None:
            raise ValueError(f"{where}: has no label map to score")
        if config.dims == 2:
            moving = read_image(moving_path, ndim=2)
            fixed = read_image(fixed_path, ndim=2)
            labels = read_labels(case.labels, ndim=2)
            moving, fixed, labels = in_plane(moving, fixed, labels)
            images.append(SourceImage(case.name, moving, fixed, labels, labels, {"k": case.meta.get("k")}))
            continue
        moving3, fixed3 = read_image(moving_path, ndim=3), read_image(fixed_path, ndim=3)
        labels3 = read_labels(case.labels, ndim=3)
        for first, last in case.meta.get("slabs") or [[0, moving3.spatial_shape[2] - 1]]:
            crop = [_crop_k(im, first, last) for im in (moving3, fixed3, labels3)]
            images.append(SourceImage(f"{case.name}_k{first:03d}-{last:03d}", crop[0], crop[1], crop[2],
                                      crop[2], {"slab": [first, last]}))
    if not images:
        raise ValueError(f"{root}: no {config.dims}D image in split {config.split!r}")
    return images, _brain_info(root)


def _whole_volume(case: Case) -> Case:
    """``case`` with no slabs: :func:`_brain_images` then takes its whole volume, named
    ``<dataset>_whole``."""
    dataset = case.name.rsplit("_", 1)[0]
    return replace(case, name=f"{dataset}_whole", meta={**case.meta, "slabs": None})


def _cross_brain_images(config: EvaluationConfig, root: Path,
                        records: list) -> tuple[list[SourceImage], DataInfo]:
    """Moving = the second brain (``moving_brain``), fixed = SPM; tissue labels on both
    (:mod:`firereg.evaluation.cross_brain`)."""
    from firereg.data.sources.icbm import icbm_cases
    from firereg.data.sources.spm import spm_cases
    from firereg.evaluation import cross_brain as cb

    moving_root = cb.moving_brain_root(config.moving_brain)
    moving_name = moving_root.name
    second = icbm_cases(moving_root)[0]
    moving3 = read_image(_modality_path(second.images, config.modality_moving, f"moving_brain {moving_root}"),
                         ndim=3)
    moving_labels3 = read_labels(second.labels, ndim=3)
    volume = spm_cases(root)[0]
    fixed3 = read_image(_modality_path(volume.images, config.modality_fixed, volume.name), ndim=3)
    if config.fixed_brain_only:
        fixed3 = cb.fixed_brain_only(fixed3, root)
    tissue3 = cb.fixed_tissue_labels(root)
    images = []
    for case in records:
        if config.dims == 2:
            k = int(case.meta["k"])
            index = cb.matching_slice(fixed3, k, moving3)
            moving, moving_labels = _slice(moving3, index), _slice(moving_labels3, index)
            fixed, fixed_labels = _slice(fixed3, k), _slice(tissue3, k)
            fixed, fixed_labels, moving, moving_labels = in_plane(fixed, fixed_labels, moving, moving_labels)
            images.append(SourceImage(f"{moving_name}_to_{case.name}", moving, fixed, moving_labels,
                                      fixed_labels, {"k": k, "moving_brain": moving_name}))
            continue
        for first, last in case.meta.get("slabs") or [[0, fixed3.spatial_shape[2] - 1]]:
            lo, hi = sorted(cb.matching_slice(fixed3, k, moving3) for k in (first, last))
            moving, moving_labels = _crop_k(moving3, lo, hi), _crop_k(moving_labels3, lo, hi)
            images.append(SourceImage(f"{moving_name}_to_{case.name}_k{first:03d}-{last:03d}", moving,
                                      _crop_k(fixed3, first, last), moving_labels,
                                      _crop_k(tissue3, first, last),
                                      {"slab": [first, last], "moving_brain": moving_name}))
    if not images:
        raise ValueError(f"{root}: no {config.dims}D image in split {config.split!r}")
    what = (f"cross-brain pairs: the {moving_name} brain's {config.modality_moving} (moving; a second, "
            f"independent real template) onto the SPM avg152 {config.modality_fixed} (fixed) at the same "
            "world slice, each further misaligned by synthetic random affine + non-rigid transforms "
            "of the moving image; scored on grey and white matter derived by one rule on both brains"
            + ("; the fixed image is brain-extracted by its tissue maps" if config.fixed_brain_only else "")
            + ("; whole volumes" if config.region == "whole" else ""))
    return images, DataInfo(f"{moving_name}->spm_avg152", str(root), False, True, what)


# --- cardiac ---------------------------------------------------------------------------------

def _cardiac_root(config: EvaluationConfig) -> Path:
    from firereg.data.sources.phantom_dataset import phantom_dataset_dir

    return Path(config.data_root).expanduser() if config.data_root else phantom_dataset_dir()


def _frame(case, t: int) -> Image:
    if t in case.frames:
        return read_image(case.frames[t], ndim=3)
    return read_image(case.cine, ndim=3, allow_series=True).frame(t)


def _cardiac_images(config: EvaluationConfig) -> tuple[list[SourceImage], DataInfo]:
    from firereg.data.sources.acdc import acdc_cases, acdc_test_pair, paper_split

    root = _cardiac_root(config)
    if not root.is_dir():
        raise ValueError(f"{root}: no cardiac data there; run `firereg data prepare` (it writes the "
                         "synthetic cine phantom) or set data_root to an ACDC folder")
    cases = [c for c in paper_split(acdc_cases(root, subset="training")) if c.split == config.split]
    if not cases:
        raise ValueError(f"{root}: no subject in split {config.split!r}")
    scored = np.asarray(sorted(config.label_table))
    synthetic = all(bool(c.meta.get("synthetic")) or c.meta.get("group") == "SYNTHETIC" for c in cases)
    images = []
    for case in cases:
        pair = acdc_test_pair(case)
        moving, fixed = _frame(case, pair.moving), _frame(case, pair.fixed)
        moving_labels = read_labels(pair.moving_labels, ndim=3)
        fixed_labels = read_labels(pair.fixed_labels, ndim=3)
        meta = {"subject": case.name, "moving_frame": pair.moving, "fixed_frame": pair.fixed}
        if config.dims == 3:
            images.append(SourceImage(f"{case.name}_ES-ED", moving, fixed, moving_labels, fixed_labels, meta))
            continue
        for z in range(fixed.spatial_shape[2]):
            if not np.isin(fixed_labels.data[:, :, z], scored).any():
                continue
            planes = in_plane(*(_slice(im, z) for im in (fixed, moving, moving_labels, fixed_labels)))
            fixed_z, moving_z, moving_labels_z, fixed_labels_z = planes
            images.append(SourceImage(f"{case.name}_z{z:02d}_ES-ED", moving_z, fixed_z, moving_labels_z,
                                      fixed_labels_z, {**meta, "slice": z}))
    name = "cardiac_phantom" if synthetic else root.name
    if synthetic:
        what = ("SYNTHETIC cardiac cines (firereg's phantom in the ACDC layout): ES -> ED of each test "
                "subject, misaligned by the phantom's own simulated motion")
    else:
        what = f"cardiac cines of {root} (ACDC layout): ES -> ED of each test subject"
    return images, DataInfo(name, str(root), synthetic, False, what)


# --- the cases -------------------------------------------------------------------------------

def source_images(config: EvaluationConfig,
                  spacing: float | None = None) -> tuple[list[SourceImage], DataInfo]:
    """Every image of the configured split (before ``max_images``), and what the data are.

    ``spacing``: the model grid's, in mm; kind individual resamples onto it (None: the config's).
    """
    if config.kind == "brain":
        return _brain_images(config)
    if config.kind == "individual":
        from firereg.evaluation.individual import individual_images

        return individual_images(config, spacing if spacing is not None else config.spacing)
    return _cardiac_images(config)


def selected_indices(count: int, max_images: int | None) -> list[int]:
    """``max_images`` indices of ``range(count)`` spread evenly, first and last included (all when
    None or enough)."""
    if max_images is None or max_images >= count:
        return list(range(count))
    if max_images == 1:
        return [(count - 1) // 2]
    return sorted({int(round(x)) for x in np.linspace(0, count - 1, max_images)})


def image_seed(seed: int, image_index: int) -> int:
    """The test-protocol seed of image ``image_index``: ``derive_seed(seed, image_index, 3)``."""
    from firereg.data.augmentation import derive_seed

    return derive_seed(seed, image_index, 3)


def _augmenter(config: EvaluationConfig, image_index: int):
    from firereg.data.augmentation import RandomPairAugmenter

    return RandomPairAugmenter(config.protocol.augmentation_config(),
                               seed=image_seed(config.protocol.seed, image_index))


def _brain_case(config: EvaluationConfig, index: int, source: SourceImage, j: int, params, moved,
                moved_labels) -> EvalCase:
    seed = config.protocol.seed
    moving = source.moving.with_data(moved[0, 0].numpy().astype(np.float32))
    labels = source.moving_labels.with_data(moved_labels[0, 0].numpy().astype(np.int32))
    return EvalCase(id=f"{source.name}/t{j:02d}/seed{seed}", image_index=index, image_name=source.name,
                    transform_index=j, seed=seed, moving=moving, fixed=source.fixed, moving_labels=labels,
                    fixed_labels=source.fixed_labels,
                    meta={**source.meta, "transform": params.to_dict()})


def _tensors(source: SourceImage) -> tuple[torch.Tensor, torch.Tensor]:
    return (source.moving.tensor(torch.float32),
            source.moving_labels.tensor(torch.int64))


def build_case(config: EvaluationConfig, images: list[SourceImage], image_index: int,
               transform_index: int | None = None) -> EvalCase:
    """Replay one case from its image index (in the full list) and transform index (brain)."""
    source = images[image_index]
    if config.kind == "cardiac":
        return EvalCase(id=f"{source.name}", image_index=image_index, image_name=source.name,
                        transform_index=None, seed=None, moving=source.moving, fixed=source.fixed,
                        moving_labels=source.moving_labels, fixed_labels=source.fixed_labels,
                        meta=dict(source.meta))
    from firereg.data.augmentation import apply, derive_seed, sample_params

    if transform_index is None or not 0 <= transform_index < config.transforms:
        raise ValueError(f"build_case: transform_index must be in 0..{config.transforms - 1}, got "
                         f"{transform_index!r}")
    augmenter = _augmenter(config, image_index)
    image, labels = _tensors(source)
    params = sample_params(image.dim() - 2, augmenter.config, derive_seed(augmenter.seed, transform_index, 2),
                           size=image.shape[2:])
    moved, moved_labels = apply(params, image, labels, padding_mode=augmenter.padding_mode,
                                label_method=augmenter.label_method)
    return _brain_case(config, image_index, source, transform_index, params, moved, moved_labels)


def build_cases(config: EvaluationConfig, images: list[SourceImage] | None = None) -> list[EvalCase]:
    """Every case of the experiment: the selected images (``max_images``) times their transforms."""
    if images is None:
        images, _ = source_images(config)
    cases = []
    for index in selected_indices(len(images), config.protocol.max_images):
        source = images[index]
        if config.kind == "cardiac":
            cases.append(build_case(config, images, index))
            continue
        image, labels = _tensors(source)
        protocol = _augmenter(config, index).test_protocol(image, labels, n=config.transforms)
        for j, (params, moved, moved_labels) in enumerate(protocol):
            cases.append(_brain_case(config, index, source, j, params, moved, moved_labels))
    return cases


def describe_case(case: EvalCase) -> dict[str, Any]:
    """The JSON-ready identity of a case (how to replay it), without its images."""
    return {"id": case.id, "image_index": case.image_index, "image": case.image_name,
            "transform_index": case.transform_index, "seed": case.seed,
            "meta": json.loads(json.dumps(case.meta, default=str))}
