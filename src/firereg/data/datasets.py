"""Torch datasets of registration pairs: 2D slices and 3D volumes of brains, and cine phase pairs.

Every dataset yields :class:`PairSample` objects ``(x_a, x_b, labels_a, labels_b)``: ``x_a`` is
the moving image (modality A), ``x_b`` the fixed one (modality B), both ``(C, *S)`` in [-1, 1] on
a model grid; labels are ``(1, *S)`` int64 or None. Brain pairs come aligned (the modalities of a
case are co-registered) and are misaligned by an augmenter; cine pairs are misaligned by the
heart's own motion. ``augment(index, sample) -> sample`` is applied last, with the item index so
that it can be seeded per item (see :mod:`firereg.data.augmentation`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from firereg.data.records import Case, CineCase
from firereg.data.volume_store import VolumeStore, slices_in_slabs
from firereg.model import MIN_SIZE

__all__ = ["PairSample", "BrainPairDataset", "CinePairDataset", "collate_pairs", "make_loader",
           "Augment"]


@dataclass
class PairSample:
    """One registration pair on a model grid (see the module docstring for shapes)."""

    x_a: Tensor
    x_b: Tensor
    labels_a: Tensor | None = None
    labels_b: Tensor | None = None
    name: str = ""
    meta: dict = field(default_factory=dict)


Augment = Callable[[int, PairSample], PairSample]


def _cases_of_split(cases: Sequence, split: str | None, dims: int, caller: str) -> list:
    """The cases in ``split`` (or with no split), checking ``dims`` and ``split`` first."""
    if dims not in (2, 3):
        raise ValueError(f"{caller}: dims must be 2 or 3, got {dims}")
    if split not in (None, "train", "val", "test"):
        raise ValueError(f"{caller}: split must be None, 'train', 'val' or 'test', got {split!r}")
    chosen = [c for c in cases if split is None or c.split in (None, split)]
    if not chosen:
        raise ValueError(f"{caller}: no case in split {split!r}")
    return chosen


def _crop_axis(length: int, first: int, last: int) -> tuple[int, int]:
    """A window of a multiple of 4 (at least MIN_SIZE) slices covering ``first..last``, inside
    ``0..length-1`` where possible."""
    size = max(MIN_SIZE, int(np.ceil((last - first + 1) / 4) * 4))
    size = min(size, length - length % 4)
    start = max(0, min((first + last + 1 - size) // 2, length - size))
    return start, start + size


class BrainPairDataset(Dataset):
    """Pairs ``modality_a -> modality_b`` of co-registered brain cases, as 2D axial slices or 3D.

    A case takes part when its ``split`` is the requested one, or when it has none. A case with
    ``meta["slabs"]`` (inclusive native axial slab ranges ``[first, last]`` of its own region, or a
    mapping split -> such ranges) contributes only the slices (2D) or the sub-volumes (3D, one per
    slab, cropped to a multiple of 4 slices) of its region: how one brain is split by region.
    """

    def __init__(self, cases: Sequence[Case], modality_a: str, modality_b: str, *, dims: int = 2,
                 split: str | None = None, store: VolumeStore | None = None,
                 augment: Augment | None = None, min_label_voxels: int = 50) -> None:
        self.cases = _cases_of_split(cases, split, dims, "BrainPairDataset")
        self.modalities = (modality_a, modality_b)
        self.dims, self.split, self.augment = dims, split, augment
        self.store = store or VolumeStore()
        self.items: list[tuple[int, slice | int | None]] = []
        for i, case in enumerate(self.cases):
            volume = self.store.brain(case, self.modalities)
            slabs = case.meta.get("slabs")
            if isinstance(slabs, dict):  # split -> slabs, for a case shared by every split
                slabs = slabs.get(split) if split else None
            if dims == 2:
                ks = slices_in_slabs(volume, slabs, min_label_voxels=min_label_voxels)
                self.items += [(i, k) for k in ks]
            elif slabs is None:
                self.items.append((i, None))
            else:
                depth = volume.images[modality_a].shape[-1]
                for lo, hi in slabs:
                    ks = slices_in_slabs(volume, [(lo, hi)], min_label_voxels=0)
                    if ks:
                        start, stop = _crop_axis(depth, ks[0], ks[-1])
                        self.items.append((i, slice(start, stop)))
        if not self.items:
            raise ValueError(f"BrainPairDataset: no {dims}D pair with labelled content in split "
                             f"{split!r}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> PairSample:
        i, where = self.items[index]
        case = self.cases[i]
        volume = self.store.brain(case, self.modalities)
        a, b = (volume.images[m] for m in self.modalities)
        labels = volume.labels
        if isinstance(where, int | slice):
            a, b = a[..., where], b[..., where]
            labels = labels[..., where] if labels is not None else None
        sample = PairSample(x_a=a.clone(), x_b=b.clone(), labels_a=None if labels is None else labels.clone(),
                            labels_b=None if labels is None else labels.clone(),
                            name=f"{case.name}" + (f":z{where}" if isinstance(where, int) else ""),
                            meta={"case": case.name, "where": str(where)})
        return self.augment(index, sample) if self.augment else sample


class CinePairDataset(Dataset):
    """Phase pairs of cardiac cines: every phase -> ED (``mode="train"``), or ES -> ED with
    labels (``mode="test"``), as 2D short-axis slices (``dims=2``) or 3D volumes."""

    def __init__(self, cases: Sequence[CineCase], *, mode: str = "train", dims: int = 2,
                 split: str | None = None, store: VolumeStore | None = None,
                 augment: Augment | None = None) -> None:
        if mode not in ("train", "test"):
            raise ValueError(f"CinePairDataset: mode must be 'train' or 'test', got {mode!r}")
        self.cases = _cases_of_split(cases, split, dims, "CinePairDataset")
        self.mode, self.dims, self.augment = mode, dims, augment
        self.store = store or VolumeStore()
        self.items: list[tuple[int, int | None, int]] = []  # (case, slice or None, moving frame)
        for i, case in enumerate(self.cases):
            if mode == "test" and (case.es not in case.frame_labels or case.ed not in case.frame_labels):
                raise ValueError(f"{case.name}: test pairs need labels at ED and ES")
            frames = self._num_frames(case)
            moving = [t for t in range(frames) if t != case.ed] if mode == "train" else [case.es]
            slices = range(self._num_slices(case)) if dims == 2 else [None]
            self.items += [(i, z, t) for z in slices for t in moving]

    def _num_frames(self, case: CineCase) -> int:
        return int(case.meta.get("num_frames") or self._volume(case, 0).images["cine"].shape[0])

    def _num_slices(self, case: CineCase) -> int:
        shape = case.meta.get("shape")
        if shape:
            return int(shape[2])
        import nibabel as nib

        return int(nib.load(str(case.cine)).shape[2])

    def _volume(self, case: CineCase, z: int | None):
        return self.store.cine_slice(case, z) if z is not None else self.store.cine_volume(case)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> PairSample:
        i, z, t = self.items[index]
        case = self.cases[i]
        volume = self._volume(case, z)
        frames, labels = volume.images["cine"], volume.labels
        has = set(case.frame_labels)
        sample = PairSample(
            x_a=frames[t][None].clone(), x_b=frames[case.ed][None].clone(),
            labels_a=labels[t][None].clone() if t in has else None,
            labels_b=labels[case.ed][None].clone() if case.ed in has else None,
            name=f"{case.name}:t{t}->t{case.ed}" + (f":z{z}" if z is not None else ""),
            meta={"case": case.name, "moving_frame": t, "fixed_frame": case.ed, "slice": z})
        return self.augment(index, sample) if self.augment else sample


def collate_pairs(samples: Sequence[PairSample]) -> dict:
    """Stack samples into ``{"x_a": (N, C, *S), "x_b", "labels_a", "labels_b", "names"}``.

    Labels are stacked when every sample has them, else None. All samples must share one shape:
    for batches mixing cases of different sizes, give the preprocessing a fixed ``shape``.
    """
    shapes = {tuple(s.x_a.shape) for s in samples} | {tuple(s.x_b.shape) for s in samples}
    if len(shapes) != 1:
        raise ValueError(f"collate_pairs: samples of different shapes {sorted(shapes)} cannot be "
                         "batched; set a fixed model-grid shape in the preprocessing config")

    def stack(attr: str) -> Tensor | None:
        values = [getattr(s, attr) for s in samples]
        return None if any(v is None for v in values) else torch.stack(values)

    return {"x_a": stack("x_a"), "x_b": stack("x_b"), "labels_a": stack("labels_a"),
            "labels_b": stack("labels_b"), "names": [s.name for s in samples]}


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    import random

    random.seed(seed)


def make_loader(dataset: Dataset, *, batch_size: int = 1, shuffle: bool = False, num_workers: int = 0,
                seed: int = 0, drop_last: bool = False) -> DataLoader:
    """A ``DataLoader`` with :func:`collate_pairs`, seeded shuffling and seeded workers."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      collate_fn=collate_pairs, generator=generator, worker_init_fn=_seed_worker,
                      drop_last=drop_last, persistent_workers=num_workers > 0)


