"""``data.source: synth``: the synthesizer of :mod:`firereg.data.synthesis` as a training source."""

from __future__ import annotations

from dataclasses import replace

import torch

from firereg.config import from_dict
from firereg.data.augmentation import AugmentationConfig
from firereg.data.datasets import PairSample
from firereg.data.preprocessing import PreprocessConfig
from firereg.data.sources.heldout import refuse_heldout
from firereg.data.synthesis.bank import model_grid_bank
from firereg.data.synthesis.config import SynthesisConfig
from firereg.data.synthesis.pairs import SynthPairSource
from firereg.training.experiment import ExperimentConfig

__all__ = ["build_synth_source", "validation_brain_samples"]

VALIDATION_STEP = 10**6  # the validation pairs are the "batch" of this step, never a training one


def build_synth_source(config: ExperimentConfig, device: torch.device) -> SynthPairSource:
    """The pair source of a run, its bank on ``device``.

    Raises:
        ConfigError: a file of the bank is (a copy of) a held-out brain.
        ValueError: the bank is not built, or lacks a requested subject, modality or intensity.
    """
    data = config.data
    synthesis = from_dict(SynthesisConfig, config.synthesis)
    bank = model_grid_bank(synthesis, (data.modality_a, data.modality_b),
                           PreprocessConfig(spacing=data.spacing, shape=data.shape), cache=data.cache,
                           ndim=data.dims)
    refuse_heldout(bank.files, "data.source synth")
    return SynthPairSource(bank.to(device), synthesis, from_dict(AugmentationConfig, config.augmentation),
                           data.dims, config.train.seed)


def validation_brain_samples(config: ExperimentConfig) -> list[PairSample]:
    """The fixed validation pairs of ``synthesis.validation_tissues`` (empty list: none): pairs of
    two anatomies of the validation brain(s), rendered in A and B, at full pose strength, with
    their tissue classes as labels, on the CPU."""
    synthesis = from_dict(SynthesisConfig, config.synthesis)
    if not synthesis.validation_tissues:
        return []
    data = config.data
    val = replace(synthesis, tissues=synthesis.validation_tissues, validation_tissues=(), p_tissues=1.0,
                  p_same_subject=1.0, anatomy=replace(synthesis.anatomy, p=1.0, p_same=0.0))
    bank = model_grid_bank(val, (data.modality_a, data.modality_b),
                           PreprocessConfig(spacing=data.spacing, shape=data.shape), cache=data.cache,
                           ndim=data.dims)
    refuse_heldout(bank.files, "synthesis.validation_tissues")
    source = SynthPairSource(bank, val, from_dict(AugmentationConfig, config.augmentation), data.dims,
                             config.train.seed)
    batch = source.batch(VALIDATION_STEP, config.train.validation_pairs)
    return [PairSample(x_a=batch.x_a[i], x_b=batch.x_b[i], labels_a=batch.labels_a[i],
                       labels_b=batch.labels_b[i], name=f"validation brain pair {i}")
            for i in range(batch.x_a.shape[0])]
