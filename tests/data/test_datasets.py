"""Datasets and loaders: what they yield, on tiny synthetic NIfTI cases written in the tests."""

import nibabel as nib
import numpy as np
import pytest
import torch

from firereg.data.datasets import BrainPairDataset, CinePairDataset, collate_pairs, make_loader
from firereg.data.preprocessing import PreprocessConfig
from firereg.data.records import Case, CineCase
from firereg.data.volume_store import VolumeStore

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def _brain_case(tmp_path, name="b1", split=None, meta=None, shape=(24, 28, 30)):
    idx = np.stack(np.meshgrid(*(np.arange(s) for s in shape), indexing="ij"), -1)
    centre = (np.asarray(shape) - 1) / 2
    r = np.sqrt((((idx - centre) / (np.asarray(shape) * 0.35)) ** 2).sum(-1))
    labels = (r < 1).astype(np.int16) + (r < 0.5)
    images = {}
    for modality, values in (("T1", (0.0, 60.0, 100.0)), ("T2", (0.0, 100.0, 30.0))):
        data = np.asarray(values, dtype=np.float32)[labels] + np.random.default_rng(0).random(shape)
        path = tmp_path / f"{name}_{modality}.nii.gz"
        nib.save(nib.Nifti1Image(data.astype(np.float32), AFFINE), path)
        images[modality] = path
    nib.save(nib.Nifti1Image(labels, AFFINE), tmp_path / f"{name}_labels.nii.gz")
    return Case(name=name, images=images, labels=tmp_path / f"{name}_labels.nii.gz", split=split,
                meta=meta or {})


def _cine_case(tmp_path, frames=4, slices=3, shape=(26, 26)):
    data = np.zeros((*shape, slices, frames), dtype=np.float32)
    labels = np.zeros((*shape, slices, frames), dtype=np.int16)
    yy, xx = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    for t in range(frames):
        radius = 8 - 1.5 * t
        inside = (yy - 13) ** 2 + (xx - 13) ** 2 < radius**2
        ring = ((yy - 13) ** 2 + (xx - 13) ** 2 < (radius + 3) ** 2) & ~inside
        for z in range(slices):
            data[..., z, t] = 20 + 80 * inside + 40 * ring
            labels[..., z, t] = 3 * inside + 2 * ring
    affine = np.diag([1.5, 1.5, 8.0, 1.0])
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "p_4d.nii.gz")
    gt = {}
    for t in (0, frames - 1):
        nib.save(nib.Nifti1Image(labels[..., t], affine), tmp_path / f"p_frame{t + 1:02d}_gt.nii.gz")
        gt[t] = tmp_path / f"p_frame{t + 1:02d}_gt.nii.gz"
    return CineCase(name="p", cine=tmp_path / "p_4d.nii.gz", ed=0, es=frames - 1, frame_labels=gt,
                    meta={"num_frames": frames, "shape": (*shape, slices)})


def test_brain_slices_are_aligned_pairs_with_labels(tmp_path):
    case = _brain_case(tmp_path)
    store = VolumeStore(PreprocessConfig(spacing=2.0))
    ds = BrainPairDataset([case], "T1", "T2", dims=2, store=store)
    sample = ds[len(ds) // 2]
    assert sample.x_a.shape == sample.x_b.shape and sample.x_a.dim() == 3
    assert sample.x_a.shape[1:] == (24, 28) and sample.labels_a.shape == (1, 24, 28)
    assert sample.x_a.min() >= -1 and sample.x_a.max() <= 1
    # T1 is brighter in the core (label 2), T2 darker: the contrasts differ on the same anatomy
    core = sample.labels_a[0] == 2
    assert sample.x_a[0][core].mean() > sample.x_b[0][core].mean()
    assert torch.equal(sample.labels_a, sample.labels_b)
    # slices without labels (above and below the head) are skipped
    assert 0 < len(ds) < 32


def test_region_split_of_one_brain_is_disjoint(tmp_path):
    meta = {"slabs": {"train": [(0, 9), (20, 29)], "test": [(13, 16)]}}
    case = _brain_case(tmp_path, meta=meta)
    store = VolumeStore(PreprocessConfig(spacing=2.0))
    train = BrainPairDataset([case], "T1", "T2", dims=2, split="train", store=store, min_label_voxels=1)
    test = BrainPairDataset([case], "T1", "T2", dims=2, split="test", store=store, min_label_voxels=1)
    train_k = {item[1] for item in train.items}
    test_k = {item[1] for item in test.items}
    # 30 native slices sit centred in the 32 of the model grid: native z is model k - 1
    assert test_k == {14, 15, 16, 17} and not train_k & test_k
    assert train_k <= set(range(1, 11)) | set(range(21, 31))
    volumes = BrainPairDataset([case], "T1", "T2", dims=3, split="train", store=store)
    assert len(volumes) == 2 and all(s.x_a.shape[-1] % 4 == 0 for s in volumes)


def test_brain_cases_filter_by_split_and_batch(tmp_path):
    cases = [_brain_case(tmp_path, "b1", split="train"), _brain_case(tmp_path, "b2", split="test")]
    store = VolumeStore(PreprocessConfig(spacing=2.0))
    ds = BrainPairDataset(cases, "T1", "T2", dims=3, split="test", store=store)
    assert len(ds) == 1 and ds[0].meta["case"] == "b2"
    batch = collate_pairs([ds[0], ds[0]])
    assert batch["x_a"].shape == (2, 1, 24, 28, 32) and batch["labels_a"].dtype == torch.int64
    with pytest.raises(ValueError, match="no PD image"):
        BrainPairDataset(cases, "PD", "T2", store=store)


def test_cine_training_pairs_cover_every_phase_but_ed(tmp_path):
    case = _cine_case(tmp_path)
    store = VolumeStore(PreprocessConfig(spacing=1.5))
    train = CinePairDataset([case], mode="train", dims=2, store=store)
    assert len(train) == 3 * 3  # 3 slices x 3 non-ED phases
    assert {s.meta["moving_frame"] for s in train} == {1, 2, 3}
    assert all(s.meta["fixed_frame"] == 0 for s in train)
    test = CinePairDataset([case], mode="test", dims=2, store=store)
    assert len(test) == 3
    sample = test[0]
    assert sample.labels_a is not None and sample.labels_b is not None
    # ES has a smaller LV (label 3) than ED
    assert (sample.labels_a == 3).sum() < (sample.labels_b == 3).sum()
    coarse = VolumeStore(PreprocessConfig(spacing=4.0))
    volumes = CinePairDataset([case], mode="test", dims=3, store=coarse)
    assert volumes[0].x_a.dim() == 4


def test_loader_is_seeded_and_works_with_workers(tmp_path):
    case = _brain_case(tmp_path)
    ds = BrainPairDataset([case], "T1", "T2", dims=2, store=VolumeStore(PreprocessConfig(spacing=2.0)))
    names = lambda loader: [n for batch in loader for n in batch["names"]]  # noqa: E731
    first = names(make_loader(ds, batch_size=4, shuffle=True, seed=3))
    again = names(make_loader(ds, batch_size=4, shuffle=True, seed=3, num_workers=2))
    other = names(make_loader(ds, batch_size=4, shuffle=True, seed=4))
    assert first == again and first != other and sorted(first) == sorted(s.name for s in ds)
