"""Training subjects made from few: deformed templates, label-driven renderings, appearance.

The registries hold few real people, so training makes its own (docs/training.md): a bank of
co-registered templates and individual parcel maps (``synth_bank``, :mod:`.bank`), random smooth
anatomy deformations (:mod:`.fields`), rendering of parcel maps in a modality (:mod:`.render`),
per-image appearance (:mod:`.appearance`), and the pairs with their known relative geometry
(:mod:`.pairs`), all batched in torch on the training device.
"""

from firereg.data.synthesis.config import AnatomyConfig, AppearanceConfig, RenderConfig, SynthesisConfig
from firereg.data.synthesis.pairs import SynthBatch, SynthPairSource

__all__ = ["AnatomyConfig", "AppearanceConfig", "RenderConfig", "SynthesisConfig", "SynthBatch",
           "SynthPairSource"]
