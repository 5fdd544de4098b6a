"""Score a model on a training config's validation pairs: the SPM val slab and the validation brain.

    python tools/validation_brain.py configs/models/t1_t2_2d_synth.yaml t1-t2-2d-avg152

Prints the mean Dice (unaligned, after phi_af, full) on exactly the pairs `firereg train` validates
that config on (``val.csv``): the SPM val-slab pairs and, for ``data.source: synth`` with
``synthesis.validation_tissues``, the validation brain's inter-subject pairs. MODEL is a shipped
model's name or a run/checkpoint folder. Use it to compare a model trained otherwise on the same
validation pairs; it never touches a held-out brain.
"""

from __future__ import annotations

import sys

import torch

from firereg.training.experiment import load_experiment
from firereg.training.loop import _validation_samples, default_augmenter, validate
from firereg.training.sources import build_datasets
from firereg.training.synth_source import validation_brain_samples


def _load(model: str):
    from pathlib import Path

    if Path(model).exists():
        from firereg.training.checkpoint import latest_checkpoint, load_model

        folder = latest_checkpoint(Path(model)) or Path(model)
        return load_model(folder)
    from firereg.pretrained.registry import load_pretrained

    return load_pretrained(model)[0]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    config = load_experiment(argv[0])
    model = _load(argv[1])
    device = torch.device("cpu")
    val = build_datasets(config.data, splits=("val",))["val"]
    spm = _validation_samples(val, config.train.validation_pairs, config.train.seed,
                              default_augmenter(config))
    print("SPM val slab:", validate(model, spm, device))
    brain = validation_brain_samples(config) if config.data.source == "synth" else []
    if brain:
        print("validation brain:", validate(model, brain, device))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
