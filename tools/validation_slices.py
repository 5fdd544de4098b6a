"""The demo experiment's pairs on the SPM brain's VALIDATION slices, for the tools that choose
refinement settings (choose_refine_weights.py, choose_image_affine.py). Never the test slices, and
no held-out brain."""

from __future__ import annotations

import dataclasses

import torch


def validation_pairs(images: int, transforms: int):
    """``(config, runner, cases)``: the demo experiment (configs/experiments/demo_brain_2d_t1_t2.yaml,
    shipped ``t1-t2-2d``, T1 -> T2) on ``images`` validation slices x ``transforms`` random
    transforms, with a MethodRunner holding the loaded model. Prints a one-line header."""
    from firereg.evaluation.cases import build_cases
    from firereg.evaluation.evaluate import resolve_model
    from firereg.evaluation.experiment_config import load_config
    from firereg.evaluation.runner import MethodRunner

    config = load_config("configs/experiments/demo_brain_2d_t1_t2.yaml")
    config = dataclasses.replace(config.with_overrides(max_images=images, transforms=transforms),
                                 split="val", gpu_timing=False)
    selection, spacing = resolve_model(config)
    runner = MethodRunner(config, model=selection.load(), selection=selection, spacing=spacing)
    cases = build_cases(config)
    print(f"# {len(cases)} validation pairs ({images} slices x {transforms} transforms), model "
          f"{selection.model}, {torch.get_num_threads()} torch threads")
    return config, runner, cases
