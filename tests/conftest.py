"""Shared test settings: deterministic, and at most 2 threads as on CI; a toy synthesis bank."""

import numpy as np
import pytest
import torch

from firereg.data.synthesis.bank import ModelGridBank


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    yield


SHAPE = (24, 28, 24)
STATS = {"T1": {0: (0.05, 0.01), 1: (0.5, 0.02), 2: (0.75, 0.03), 3: (0.25, 0.02)},
         "T2": {0: (0.05, 0.01), 1: (0.6, 0.02), 2: (0.35, 0.03), 3: (0.9, 0.02)}}


def _classes(shift: float = 0.0) -> torch.Tensor:
    """Tissue classes of an ellipsoid "brain": CSF rim (3), grey (1), white core (2)."""
    x, y, z = np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij")
    r = (((x - 11.5 - shift) / 9) ** 2 + ((y - 13.5) / 11) ** 2 + ((z - 11.5) / 9) ** 2)
    out = np.zeros(SHAPE, np.int64)
    out[r <= 1.0] = 3
    out[r <= 0.8] = 1
    out[r <= 0.4] = 2
    return torch.from_numpy(out)


def toy_bank(modalities: tuple[str, str] = ("T1", "T2")) -> ModelGridBank:
    """Two "templates" (ellipsoids with T1-/T2-like contrasts, one shifted) and one parcel map on
    a 24 x 28 x 24 grid: the synthesizer's tests need no cache."""
    templates, labels = [], _classes()
    for shift in (0.0, 1.5):
        cls = _classes(shift)
        stack = []
        for m in modalities:
            table = torch.tensor([STATS[m][c][0] for c in range(4)], dtype=torch.float32)
            stack.append(table[cls] * 2 - 1)
        templates.append(torch.stack(stack))
    parcels = _classes(-1.0)
    slices = list(range(6, 18))
    return ModelGridBank(
        modalities=modalities, template_names=["a", "b"], templates=torch.stack(templates),
        tissue_names=["p"], parcels=parcels[None, None], classes=parcels[None, None],
        template_labels=labels[None], parcel_class=torch.arange(4),
        stats={m: STATS[m] for m in modalities}, template_slices=[slices, slices], tissue_slices=[slices],
        affine=np.diag([2.0, 2.0, 2.0, 1.0]), files=[])


@pytest.fixture
def synth_bank_toy() -> ModelGridBank:
    return toy_bank()
