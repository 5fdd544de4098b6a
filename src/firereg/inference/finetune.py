"""Per-pair fine-tuning of the network (``register --refine-mode network``).

A copy of the model is trained on the one pair with the full objective of Eq. 1 (every term, the
three optimizers of §3.9) for a few steps; only the transformation networks T_AB and T_BA learn
unless ``train_synthesis`` also lets G and the decoders move. The caller's model is never changed.
Slower than feature-space refinement (:mod:`firereg.inference.refine`): each step is a full
training step of the network (forward and backward through G, both T and both F), so on a CPU it
suits 2D pairs; use a GPU in 3D.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

from torch import Tensor

from firereg.config import OptimConfig
from firereg.model import FireModel

__all__ = ["FinetuneConfig", "FinetuneDivergedError", "finetune_pair"]


class FinetuneDivergedError(FloatingPointError):
    """The objective went NaN or infinite while fine-tuning; the message says at which step and
    which term. ``terms``: every term of that step."""

    def __init__(self, message: str, terms: dict[str, float]) -> None:
        super().__init__(message)
        self.terms = terms


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of :func:`finetune_pair`: Adam steps and one learning rate for every group."""

    steps: int = 30
    lr: float = 1e-4
    train_synthesis: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"network refinement: steps must be an int >= 1, got {self.steps!r}")
        from firereg.config import MAX_LR

        if not 0 < self.lr <= MAX_LR:
            raise ValueError(f"network refinement: lr must be in (0, {MAX_LR}], got {self.lr!r}")


def finetune_pair(model: FireModel, moving: Tensor, fixed: Tensor, direction: str,
                  config: FinetuneConfig | None = None) -> tuple[FireModel, dict]:
    """A copy of ``model`` fitted to one pair with Eq. 1, and a report.

    Args:
        moving, fixed: ``(1, C, *S)`` preprocessed images on the model grid.
        direction: "ab" when ``moving`` is modality A (then x^A = moving, x^B = fixed).

    Returns:
        ``(tuned model in eval mode, {"steps", "loss_before", "loss_after", "seconds", ...})``.
    """
    from firereg.training.optimizers import build_optimizers
    from firereg.training.step import NonFiniteLossError, training_step

    config = config or FinetuneConfig()
    if direction not in ("ab", "ba"):
        raise ValueError(f"finetune_pair: direction must be 'ab' or 'ba', got {direction!r}")
    start = time.perf_counter()
    tuned = copy.deepcopy(model).train()
    if not config.train_synthesis:
        for p in tuned.parameter_groups()["synthesis"]:
            p.requires_grad_(False)
    optimizers = build_optimizers(tuned, OptimConfig(lr_affine=config.lr, lr_nonrigid=config.lr,
                                                     lr_synthesis=config.lr))
    x_a, x_b = (moving, fixed) if direction == "ab" else (fixed, moving)
    x_a, x_b = x_a.detach().clone(), x_b.detach().clone()
    history = []
    for step in range(config.steps):
        try:
            history.append(training_step(tuned, optimizers, x_a, x_b)["total"])
        except NonFiniteLossError as exc:
            raise FinetuneDivergedError(
                f"--refine-mode network: Eq. 1 went non-finite at fine-tuning step {step + 1} of "
                f"{config.steps} ({exc.term} = {exc.value}); nothing was written (this model cannot be "
                "fine-tuned on this pair: register without --refine-mode network)", exc.terms) from exc
    for p in tuned.parameters():
        p.requires_grad_(True)
    report = {"steps": config.steps, "lr": config.lr, "train_synthesis": config.train_synthesis,
              "loss_first_step": history[0], "loss_last_step": history[-1],
              "seconds": time.perf_counter() - start}
    return tuned.eval(), report
