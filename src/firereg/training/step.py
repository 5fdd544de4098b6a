"""One training step of FIRE: compute L (Eq. 1) and step the three optimizers (§3.9).

The circular graph of §3.9. ``L_reg`` (and ``R_reg``) feed images warped by T's output back into
G, so G both produces T's input and consumes T's output. As an autograd graph this is still a DAG:
G appears at several nodes with shared weights, and one ``backward()`` of the total L
accumulates, into every parameter, the gradient through every path, including the path
G -> T -> warp -> G -> F. We keep all paths (no ``detach``), compute L once, call ``backward``
once, and then let each of the three optimizers step its own disjoint group, so each group moves
at its own learning rate along the gradient of the same L. See docs/design.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from firereg.losses import fire_objective, l_known
from firereg.model import FireModel
from firereg.training.optimizers import FireOptimizers

__all__ = ["training_step", "NonFiniteLossError", "KnownTargets", "AGGREGATE_TERMS", "PRECISIONS"]

PRECISIONS = ("fp32", "bf16")  # train.precision

KnownTargets = dict[str, Tensor]
"""``partner_b``, ``clean_b``, ``partner_a``, ``clean_a``, each ``(N, 1, *S)``: the targets of
:func:`firereg.losses.l_known` (a :class:`firereg.data.synthesis.SynthBatch` has them)."""


AGGREGATE_TERMS = ("l_syn", "l_reg", "r", "total", "objective")  # sums of the other terms


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the parameters were left untouched.

    Attributes:
        terms: every term of the failed step as a float, by name.
        term: the term to blame: the first non-finite one that is not a sum of others
            (``l_syn_acc`` rather than ``l_syn`` or ``total``), else the first non-finite one.
    """

    def __init__(self, message: str, terms: dict[str, float] | None = None) -> None:
        super().__init__(message)
        self.terms = dict(terms or {})
        bad = [k for k, v in self.terms.items() if not math.isfinite(v)]
        leaves = [k for k in bad if k not in AGGREGATE_TERMS]
        self.term = (leaves or bad or ["total"])[0]

    @property
    def value(self) -> float:
        """The blamed term's value (NaN or an infinity)."""
        return self.terms.get(self.term, float("nan"))


def training_step(model: FireModel, optimizers: FireOptimizers, x_a: Tensor, x_b: Tensor,
                  *, max_grad_norm: float | None = None,
                  after_backward: Callable[[], None] | None = None,
                  known: KnownTargets | None = None, known_weight: float = 0.0,
                  precision: str = "fp32") -> dict[str, float]:
    """Compute every term of Eq. (1) on a batch of pairs and update the model.

    Args:
        x_a, x_b: ``(N, C, *S)`` images of modality A and B, normalized to [-1, 1].
        known, known_weight: the targets of the known-transform term and its weight; the model
            then minimises ``total + known_weight * l_known`` (a departure from §3.9, see
            :mod:`firereg.losses.supervision`). Both terms are returned as ``l_known`` and
            ``objective``; ``total`` stays Eq. (1).
        precision: "fp32", or "bf16" to run the forward pass and the losses under
            ``torch.autocast(dtype=bfloat16)`` on the inputs' device (weights, gradients and the
            optimizers stay float32; docs/training.md measures what it costs).
        max_grad_norm: if given, clip the gradient norm of each optimizer's group to it.
        after_backward: called between ``backward`` and the optimizer steps (e.g. to average
            gradients across processes).

    Returns:
        Every loss term as a float, by name (see :data:`firereg.losses.TERM_NAMES`).

    Raises:
        NonFiniteLossError: if the total loss is NaN or infinite (no parameter is changed).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"training_step: precision must be one of {PRECISIONS}, got {precision!r}")
    model.train()
    optimizers.zero_grad()
    with torch.autocast(x_a.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = model(x_a, x_b)
        terms = fire_objective(out, x_a, x_b)
        total = terms["total"]
        if known is not None:
            terms["l_known"] = l_known(out.phi_ab, out.phi_ba, known["partner_b"], known["clean_b"],
                                       known["partner_a"], known["clean_a"])
            terms["known_weight"] = total.new_tensor(float(known_weight))
            if known_weight > 0:
                total = total + known_weight * terms["l_known"]
            terms["objective"] = total
    if not bool(torch.isfinite(total.detach())):
        floats = {k: float(v.detach()) for k, v in terms.items()}
        values = ", ".join(f"{k}={v:.4g}" for k, v in floats.items())
        raise NonFiniteLossError(
            f"training_step: the total loss is {float(total.detach())}; terms: {values}", floats)
    total.backward()
    if after_backward is not None:
        after_backward()
    if max_grad_norm is not None:
        for _, opt in optimizers.items():
            params = [p for group in opt.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizers.step()
    return {name: float(value.detach()) for name, value in terms.items()}
