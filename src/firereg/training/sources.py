"""Turn a :class:`~firereg.training.experiment.DataConfig` into train and validation datasets."""

from __future__ import annotations

from pathlib import Path

from firereg.data.datasets import BrainPairDataset, CinePairDataset
from firereg.data.preprocessing import PreprocessConfig
from firereg.data.volume_store import VolumeStore
from firereg.training.experiment import DataConfig

__all__ = ["build_datasets"]


def _phantom_root(config: DataConfig) -> Path:
    if config.root:
        return Path(config.root)
    from firereg.data.sources.cache import datasets_dir

    return datasets_dir(config.cache) / "cardiac_phantom"


def build_datasets(config: DataConfig, *, splits=("train", "val")):
    """``{split: dataset}`` of pairs for the requested splits, sharing one volume store.

    Brain sources give aligned modality pairs (misaligned later by augmentation); cardiac sources
    give phase pairs: every phase -> ED for "train", ES -> ED with labels otherwise. The
    synthesized source has no "train" dataset (:mod:`firereg.training.synth_source` makes its
    pairs); its validation pairs are the SPM avg152 ones.
    """
    store = VolumeStore(PreprocessConfig(spacing=config.spacing, shape=config.shape))
    if config.source == "synth":  # trains on synthesized pairs; validates on the SPM val slab
        splits = tuple(s for s in splits if s != "train")
    if config.source in ("spm", "mrbrains", "synth"):
        if config.source in ("spm", "synth"):
            from firereg.data.sources.spm import spm_cases

            cases = spm_cases(Path(config.root) if config.root else _spm_root(config))
        else:
            from firereg.data.sources.mrbrains import mrbrains_cases, paper_split

            cases = paper_split(mrbrains_cases(config.root))
        return {s: BrainPairDataset(cases, config.modality_a, config.modality_b, dims=config.dims,
                                    split=s, store=store) for s in splits}
    from firereg.data.sources.acdc import acdc_cases, paper_split

    root = Path(config.root) if config.source == "acdc" else _phantom_root(config)
    cases = paper_split(acdc_cases(root, subset="training") if config.source == "acdc"
                        else acdc_cases(root))
    return {s: CinePairDataset(cases, mode="train" if s == "train" else "test", dims=config.dims,
                               split=s, store=store) for s in splits}


def _spm_root(config: DataConfig) -> Path:
    from firereg.data.sources.spm import spm_dataset_dir

    root = spm_dataset_dir(config.cache)
    if not (root / "split.json").exists():
        raise ValueError(f"{root}: the offline brain data are not built; run `firereg data prepare`")
    return root
