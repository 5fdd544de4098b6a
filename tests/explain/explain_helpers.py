"""Helpers of the ``firereg explain`` tests: a tiny width-4 checkpoint, small synthetic NIfTI pairs,
and the command run in-process."""

import argparse
from pathlib import Path

import numpy as np
import torch

from firereg.cli.explain import add_explain_parser, run_explain
from firereg.config import ModelConfig
from firereg.data.image import Image
from firereg.data.io import write_image, write_labels
from firereg.model import FireModel
from firereg.training.checkpoint import save_checkpoint


def blob(shape, centre, radii) -> np.ndarray:
    """A soft ellipsoid in [0, 1] (voxel units)."""
    idx = np.indices(shape, dtype=np.float64)
    r = np.sqrt(sum(((i - c) / s) ** 2 for i, c, s in zip(idx, centre, radii, strict=True)))
    return 1.0 / (1.0 + np.exp((r - 1.0) * 6.0))


def write_pair(folder: Path, shape, *, shift: int = 2, spacing: float = 2.0) -> dict[str, Path]:
    """moving.nii.gz / fixed.nii.gz (two 'contrasts' of one phantom, the fixed one shifted along
    axis 0) and their label maps (1: body, 2: an inner blob)."""
    ndim = len(shape)
    n = np.asarray(shape, dtype=np.float64)
    body = blob(shape, (n - 1) / 2, n / 3)
    inner = blob(shape, (n - 1) / 2 + n / 10, n / 8)
    affine = np.diag([spacing] * 3 + [1.0])
    affine[:3, 3] = [-10.0, 5.0, 3.0]
    images = {"moving": body + inner, "fixed": np.roll(body * 0.6 + (1 - inner) * body * 0.4, shift, 0)}
    labels = {"moving": (body > 0.5).astype(np.int32) + (inner > 0.5),
              "fixed": np.roll((body > 0.5).astype(np.int32) + (inner > 0.5), shift, 0)}
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key in ("moving", "fixed"):
        image = Image(images[key].astype(np.float32), affine, ndim)
        paths[key] = write_image(image, folder / f"{key}.nii.gz")
        paths[f"{key}_labels"] = write_labels(image.with_data(labels[key]), folder / f"{key}_labels.nii.gz")
    return paths


def tiny_checkpoint(folder: Path, ndim: int, *, perturb: float = 0.0) -> Path:
    """A width-4 model saved as a training run; ``perturb`` > 0 gives T's (zero-initialised) last
    layers small random weights so that the transform depends on the images."""
    torch.manual_seed(0)
    model = FireModel(ModelConfig(ndim=ndim, width=4))
    if perturb:
        with torch.no_grad():
            for net in (model.transform_ab, model.transform_ba):
                net.affine.dense[-1].weight.normal_(0.0, perturb)
                net.nonrigid.head.weight.normal_(0.0, perturb)
    save_checkpoint(folder, model, step=3)
    return folder


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_explain_parser(sub)
    args = parser.parse_args(["explain", *argv])
    return run_explain(args)
