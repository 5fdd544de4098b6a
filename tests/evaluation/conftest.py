"""Synthetic data for the evaluation tests, built here (no cache, no download).

``synthetic_brain``: a small two-contrast "brain" in the layout of ``<cache>/datasets/spm_avg152``
(3D volumes, a ``split.json`` with a test slab, 2D slice folders, a ``done.json`` that says it is
synthetic), with the label values of the SPM table: 3 white matter, 7 cerebellum, 8 brain stem.
``tiny_model_run``: an untrained width-4 FIRE model saved as a training run folder.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from firereg.data.image import Image
from firereg.data.io import write_image, write_labels
from firereg.data.sources.spm import slice_affine

SHAPE = (40, 44, 5)  # voxels, 2 mm: 80 x 88 x 10 mm
TEST_SLICES = [1, 2, 3]
AFFINE = np.array([[-2.0, 0, 0, 40.0], [0, 2.0, 0, -44.0], [0, 0, 2.0, -4.0], [0, 0, 0, 1]])


def _phantom(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """T1-like and T2-like intensities and labels of axial slice ``k`` (they change with k)."""
    x, y = np.meshgrid(np.arange(SHAPE[0]), np.arange(SHAPE[1]), indexing="ij")
    cx, cy = 19.5 + 0.4 * k, 21.5
    r = ((x - cx) / 17.0) ** 2 + ((y - cy) / 19.0) ** 2
    labels = np.zeros(SHAPE[:2], dtype=np.int32)
    labels[r <= 1.0] = 1  # grey matter
    labels[((x - cx) / 11.0) ** 2 + ((y - cy - 3) / 9.0) ** 2 <= 1.0] = 3  # white matter
    labels[((x - cx) / 9.0) ** 2 + ((y - cy + 11) / 5.0) ** 2 <= 1.0] = 7  # cerebellum
    labels[((x - cx) / 3.0) ** 2 + ((y - cy + 3) / 3.0) ** 2 <= 1.0] = 8  # brain stem
    t1_of = {0: 0.0, 1: 0.45, 3: 0.9, 7: 0.6, 8: 0.75}
    t2_of = {0: 0.0, 1: 0.6, 3: 0.3, 7: 0.5, 8: 0.2}
    t1 = np.vectorize(t1_of.get)(labels).astype(np.float32)
    t2 = np.vectorize(t2_of.get)(labels).astype(np.float32)
    texture = 0.05 * np.sin(x / 2.3) * np.cos(y / 3.1) * (labels > 0)
    return t1 + texture.astype(np.float32), t2 - texture.astype(np.float32), labels


@pytest.fixture(scope="session")
def synthetic_brain(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic_brain")
    volumes = {"t1": np.zeros(SHAPE, np.float32), "t2": np.zeros(SHAPE, np.float32)}
    labels = np.zeros(SHAPE, np.int32)
    for k in range(SHAPE[2]):
        volumes["t1"][..., k], volumes["t2"][..., k], labels[..., k] = _phantom(k)
    for name, data in volumes.items():
        write_image(Image(data, AFFINE, 3), root / f"{name}.nii.gz")
    write_labels(Image(labels, AFFINE, 3), root / "labels.nii.gz")
    for k in range(SHAPE[2]):
        folder = root / "slices" / f"k{k:03d}"
        folder.mkdir(parents=True)
        a = slice_affine(AFFINE, k)
        for name, data in volumes.items():
            write_image(Image(data[..., k], a, 2), folder / f"{name}.nii.gz")
        write_labels(Image(labels[..., k], a, 2), folder / "labels.nii.gz")
    split = {"axis": 2, "regions": {"train": [[0, 0]], "val": [[4, 4]], "test": [[1, 3]]},
             "slices_2d": {"train": [0], "val": [4], "test": TEST_SLICES}, "gaps": []}
    (root / "split.json").write_text(json.dumps(split))
    (root / "done.json").write_text(json.dumps({"dataset": "synthetic_test_brain", "synthetic": True}))
    return root


@pytest.fixture(scope="session")
def tiny_model_run(tmp_path_factory):
    import torch

    from firereg.config import ModelConfig
    from firereg.model import FireModel
    from firereg.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("tiny_run")
    save_checkpoint(run, FireModel(ModelConfig(ndim=2, width=4)), 1, save_rng=False)
    return run


@pytest.fixture
def brain_experiment(synthetic_brain):
    """A function giving an experiment dict on the synthetic brain, with overrides."""
    def make(**overrides) -> dict:
        data = {"name": "synthetic_test", "kind": "brain", "model": "t1-t2-2d", "modality_moving": "T1",
                "modality_fixed": "T2", "dims": 2, "data_root": str(synthetic_brain), "spacing": 2.0,
                "protocol": {"transforms_per_image": 3, "seed": 5}}
        data.update(overrides)
        return data

    return make
