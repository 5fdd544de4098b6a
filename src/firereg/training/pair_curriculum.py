"""Two-stage fitting of one pair: synthesis on the aligned pair first, then registration.

A single pair is ambiguous for FIRE: a decoder can learn a constant shift as easily as T can, so
fitting the misaligned pair from scratch lets the synthesis absorb the misalignment. DESIGN.md
reports the same on real slices: synthesis only starts when aligned pairs come first. Stage 1
shows the pair with B on A's geometry, so F learns the contrast mapping with no shift; stage 2
shows the misaligned pair with the synthesis learning rate lowered, so the transformation
networks carry the alignment. Used by the demo and by the end-to-end test.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from firereg.model import FireModel
from firereg.training.optimizers import FireOptimizers
from firereg.training.step import training_step

__all__ = ["fit_pair"]

StepCallback = Callable[[str, int, dict[str, float]], None]


def fit_pair(
    model: FireModel,
    optimizers: FireOptimizers,
    x_a: Tensor,
    x_b: Tensor,
    x_b_aligned: Tensor,
    *,
    synthesis_steps: int,
    registration_steps: int,
    registration_synthesis_lr: float = 1e-5,
    on_step: StepCallback | None = None,
) -> dict[str, list[dict[str, float]]]:
    """Fit ``model`` to one pair in two stages and return every step's loss terms per stage.

    Args:
        x_a, x_b: ``(N, C, *S)`` the pair to register, A onto B.
        x_b_aligned: ``(N, C, *S)`` modality B on A's geometry (stage 1 only).
        synthesis_steps, registration_steps: steps of stage 1 and stage 2.
        registration_synthesis_lr: learning rate of G and F during stage 2; the original rate is
            restored when the function returns.
        on_step: called as ``on_step(stage, step, terms)`` after every step, stage being
            ``"synthesis"`` or ``"registration"``.
    """
    if synthesis_steps < 0 or registration_steps < 0:
        raise ValueError("fit_pair: step counts must be >= 0")
    history: dict[str, list[dict[str, float]]] = {"synthesis": [], "registration": []}
    stages = (("synthesis", x_b_aligned, synthesis_steps), ("registration", x_b, registration_steps))
    original = [group["lr"] for group in optimizers.synthesis.param_groups]
    try:
        for stage, target, steps in stages:
            if stage == "registration":
                for group in optimizers.synthesis.param_groups:
                    group["lr"] = registration_synthesis_lr
            for step in range(steps):
                terms = training_step(model, optimizers, x_a, target)
                history[stage].append(terms)
                if on_step is not None:
                    on_step(stage, step, terms)
    finally:
        for group, lr in zip(optimizers.synthesis.param_groups, original, strict=True):
            group["lr"] = lr
    return history
