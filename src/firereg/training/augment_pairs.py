"""The training-time pair augmenter: the paper's random transforms (§4.1) under a curriculum."""

from __future__ import annotations

import dataclasses
from typing import Any

from firereg.config import from_dict
from firereg.data.augmentation import (
    AugmentationConfig,
    RandomPairAugmenter,
    apply,
    derive_seed,
    sample_params,
)
from firereg.data.datasets import PairSample

__all__ = ["make_pair_augmenter"]


def make_pair_augmenter(augmentation: dict[str, Any], ndim: int):
    """An ``augment(sample, *, seed, strength, aligned) -> sample`` callable.

    ``strength`` in [0, 1] scales the configured ranges (and change window); ``aligned=True``
    gives both images of the pair the *same* transform, so a co-registered pair stays aligned
    while its geometry still varies (the curriculum's first stage). Otherwise the moving and fixed
    images get independent transforms, each with its labels, as in §4.1.
    """
    base = from_dict(AugmentationConfig, augmentation)

    def augment(sample: PairSample, *, seed: int, strength: float, aligned: bool) -> PairSample:
        config = dataclasses.replace(base, strength=base.strength * float(strength))
        if config.strength == 0.0:
            return sample
        if not aligned:
            return RandomPairAugmenter(config, seed)(0, sample)
        params = sample_params(ndim, config, derive_seed(seed, 0, 0), size=sample.x_a.shape[1:])

        def one(x, labels):
            out, out_labels = apply(params, x[None], None if labels is None else labels[None])
            return out[0], None if out_labels is None else out_labels[0]

        x_a, labels_a = one(sample.x_a, sample.labels_a)
        x_b, labels_b = one(sample.x_b, sample.labels_b)
        meta = {**sample.meta, "augmentation": {"aligned": True, "params": params.to_dict()}}
        return dataclasses.replace(sample, x_a=x_a, x_b=x_b, labels_a=labels_a, labels_b=labels_b,
                                   meta=meta)

    return augment
