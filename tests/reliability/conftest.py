"""Fixtures of the reliability suite (helpers live in reliability_helpers.py)."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from reliability_helpers import save, smooth_volume, tiny_model, training_config


@pytest.fixture(autouse=True)
def _one_thread(_deterministic):
    """One torch thread, as the subprocesses here (OMP_NUM_THREADS=1): on a busy 2-core machine
    two threads make these tiny networks a hundred times slower, and one thread makes in-process
    and subprocess results comparable bit for bit."""
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """Tiny run folders: "3d" and "2d" (untrained: the identity), "3d_perturbed" (random
    weights, so the result depends on the images)."""
    root = tmp_path_factory.mktemp("models")
    return {"3d": tiny_model(root / "m3"), "2d": tiny_model(root / "m2", ndim=2),
            "3d_perturbed": tiny_model(root / "m3p", perturb=0.01, seed=3)}


@pytest.fixture(scope="session")
def pair(tmp_path_factory) -> dict[str, Path]:
    """A good 3D moving and fixed image (smooth, 2 mm)."""
    root = tmp_path_factory.mktemp("pair")
    return {"moving": save(root / "moving.nii.gz", smooth_volume(1)),
            "fixed": save(root / "fixed.nii.gz", smooth_volume(2))}


@pytest.fixture(scope="session")
def cine(tmp_path_factory) -> Path:
    """A small 2D+time cine, (X, Y, Z=2, T=5), for register-series."""
    frames = np.stack([smooth_volume(20 + t, (24, 26, 2)) for t in range(5)], axis=-1)
    return save(tmp_path_factory.mktemp("cine") / "cine.nii.gz", frames, np.diag([2.0, 2.0, 8.0, 1.0]))


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory) -> Path:
    """A small SYNTHETIC cardiac phantom in the ACDC layout (5 subjects: 3 train, 1 val, 1 test)."""
    from firereg.data.sources.cardiac_phantom import PhantomConfig, write_acdc_phantom

    root = tmp_path_factory.mktemp("phantom")
    write_acdc_phantom(root, 5, PhantomConfig(size=(72, 72), pixel_spacing_mm=2.7, num_slices=3,
                                              slice_spacing_mm=13.0, num_phases=20, supersample=1,
                                              through_plane_samples=1), seed=1)
    return root


@pytest.fixture(scope="session")
def phantom_config(tmp_path_factory, phantom_root) -> Path:
    """:func:`training_config` as a YAML file."""
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(yaml.safe_dump(training_config(phantom_root)))
    return path
