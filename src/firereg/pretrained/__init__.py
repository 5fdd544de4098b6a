"""Trained FIRE models shipped inside the package, their cards, and how one is chosen.

Each shipped model is a folder ``firereg/pretrained/<name>/`` holding ``model.safetensors`` and
``checkpoint.json`` (a firereg checkpoint without optimizer or RNG state) and ``card.json`` (a
:class:`ModelCard`: modalities, dimensionality, grid spacing, how it was trained, its validation
Dice). :func:`select_model` turns ``--model`` and the images' modalities into a checkpoint and a
direction; :func:`package_run` builds such a folder from a training run.
"""

from firereg.pretrained.card import CardError, ModelCard
from firereg.pretrained.package import package_run
from firereg.pretrained.registry import (
    ModelSelectionError,
    Selection,
    list_models,
    load_pretrained,
    model_path,
    pretrained_root,
    select_model,
    select_series_model,
)

__all__ = ["CardError", "ModelCard", "ModelSelectionError", "Selection", "list_models",
           "load_pretrained", "model_path", "package_run", "pretrained_root", "select_model",
           "select_series_model"]
