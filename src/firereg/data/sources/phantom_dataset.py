"""The prepared SYNTHETIC cardiac cine dataset: the phantom written once into the cache.

``<cache>/datasets/cardiac_phantom/`` holds :data:`SUBJECTS` synthetic cines in the ACDC layout
(:func:`~firereg.data.sources.cardiac_phantom.write_acdc_phantom`, default config, seed
:data:`SEED`), built atomically with a ``done.json`` marker like the brain datasets, so
``firereg data prepare`` builds it once and the cardiac configs find it without a ``root``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from firereg.data.sources.cache import atomic_folder, dataset_status, datasets_dir, reporter, write_done
from firereg.data.sources.cardiac_phantom import PhantomConfig, write_acdc_phantom

__all__ = ["DATASET_NAME", "SUBJECTS", "SEED", "phantom_dataset_dir", "expected_marker",
           "build_phantom_dataset", "CONFIG"]

DATASET_NAME = "cardiac_phantom"
SUBJECTS = 20
SEED = 0
CONFIG = PhantomConfig()
BUILDER_VERSION = 1


def phantom_dataset_dir(cache: str | Path | None = None) -> Path:
    return datasets_dir(cache) / DATASET_NAME


def expected_marker() -> dict:
    return {"dataset": DATASET_NAME, "builder_version": BUILDER_VERSION, "subjects": SUBJECTS,
            "seed": SEED, "config": CONFIG.to_dict()}


def build_phantom_dataset(cache: str | Path | None = None, *, force: bool = False,
                          progress: bool | Callable[[str], None] = True) -> Path:
    """Write the synthetic cine tree into the cache unless an identical build is there."""
    say = reporter(progress)
    final = phantom_dataset_dir(cache)
    ok, why = dataset_status(final, expected_marker())
    if ok and not force:
        say(f"{DATASET_NAME}: {why}, nothing to do")
        return final
    say(f"{DATASET_NAME}: writing {SUBJECTS} SYNTHETIC cines (about 5 s each)")
    with atomic_folder(final) as out:
        cases = write_acdc_phantom(out, SUBJECTS, CONFIG, seed=SEED,
                                   on_subject=lambda c: say(f"{DATASET_NAME}: {c.name} written"))
        summary = {"subjects": len(cases), "synthetic": True,
                   "frames": sorted({c.meta["num_frames"] for c in cases}),
                   "lv_ef": [round(c.meta["lv_ef"], 3) for c in cases]}
        write_done(out, {**expected_marker(), "summary": summary})
    say(f"{DATASET_NAME}: built in {final}")
    return final
