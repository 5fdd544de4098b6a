"""The real-data demo: the shipped T1 -> T2 model against ANTs on the SPM avg152 brain.

``firereg demo`` prepares the offline SPM data when missing (only that dataset, with the function
``firereg data prepare`` uses), then runs the evaluation experiment :data:`DEMO_EXPERIMENT` (the
same as ``configs/experiments/demo_brain_2d_t1_t2.yaml``): 4 test slices spread across the test
slab, each T1 slice under 20 random transforms of the paper's protocol, registered onto the
untransformed T2 slice by every method. The images are real MRI templates; the misalignment is
synthetic (random transforms).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from firereg.evaluation.evaluate import EvaluationOutcome
from firereg.evaluation.experiment_config import EvaluationConfig, config_from_dict

__all__ = ["DEMO_EXPERIMENT", "demo_config", "prepare_demo_data", "run_brain_demo"]

DEMO_EXPERIMENT: dict = {
    "name": "demo_brain_2d_t1_t2",
    "kind": "brain",
    "model": "t1-t2-2d",
    "modality_moving": "T1",
    "modality_fixed": "T2",
    "dims": 2,
    "split": "test",
    "protocol": {
        "transforms_per_image": 20,
        "seed": 0,
        "max_images": 4,
        # the ranges the shipped model was trained with (configs/models/t1_t2_2d.yaml)
        "augmentation": {"rotation": 10.0, "scaling": 0.15, "shear": 0.05, "translation": 0.1,
                         "nonrigid_max_displacement": 0.04, "min_change": 0.2, "max_change": 0.5},
    },
    "methods": ["unaligned", "ants_affine", "fire_affine", "ants_syn", "fire", "fire_refine",
                "fire_refine_image"],
    "ants": {"threads": 2},
    "device": "cpu",
    "torch_threads": 2,  # as many as ANTs gets: a like-for-like time per pair
}
"""The demo's experiment; ``configs/experiments/demo_brain_2d_t1_t2.yaml`` holds the same."""


def demo_config() -> EvaluationConfig:
    """:data:`DEMO_EXPERIMENT` as a validated config."""
    return config_from_dict(DEMO_EXPERIMENT, "firereg demo")


def prepare_demo_data(progress: bool | Callable[[str], None] = True) -> Path:
    """Build the SPM avg152 dataset into the cache unless it is there (``firereg data prepare``,
    SPM only); returns its folder."""
    from firereg.data.sources.prepare import prepare_data

    result = prepare_data(None, only=("spm_avg152",), progress=progress)
    return Path(result["datasets"]["spm_avg152"]["path"])


def run_brain_demo(out: str | Path = "runs/demo", *, progress: bool = True,
                   say: Callable[[str], None] | bool = True) -> EvaluationOutcome:
    """Prepare the data and run the demo experiment into ``out`` (its files are replaced)."""
    from firereg.evaluation.evaluate import run_evaluation

    prepare_demo_data(progress=say)
    return run_evaluation(demo_config(), out, overwrite=True, progress=progress,
                          config_path="firereg demo (configs/experiments/demo_brain_2d_t1_t2.yaml)")
