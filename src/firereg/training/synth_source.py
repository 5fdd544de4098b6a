"""``data.source: synth``: the synthesizer of :mod:`firereg.data.synthesis` as a training source."""

from __future__ import annotations

import torch

from firereg.config import from_dict
from firereg.data.augmentation import AugmentationConfig
from firereg.data.preprocessing import PreprocessConfig
from firereg.data.synthesis.bank import model_grid_bank
from firereg.data.synthesis.config import SynthesisConfig
from firereg.data.synthesis.pairs import SynthPairSource
from firereg.training.experiment import ExperimentConfig

__all__ = ["build_synth_source"]


def build_synth_source(config: ExperimentConfig, device: torch.device) -> SynthPairSource:
    """The pair source of a run, its bank on ``device``.

    Raises:
        ConfigError: a file of the bank is (a copy of) a held-out brain.
        ValueError: the bank is not built, or lacks a requested subject, modality or intensity.
    """
    from firereg.data.sources.heldout import refuse_heldout

    data = config.data
    synthesis = from_dict(SynthesisConfig, config.synthesis)
    bank = model_grid_bank(synthesis, (data.modality_a, data.modality_b),
                           PreprocessConfig(spacing=data.spacing, shape=data.shape), cache=data.cache,
                           ndim=data.dims)
    refuse_heldout(bank.files, "data.source synth")
    return SynthPairSource(bank.to(device), synthesis, from_dict(AugmentationConfig, config.augmentation),
                           data.dims, config.train.seed)
