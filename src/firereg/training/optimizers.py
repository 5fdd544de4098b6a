"""The three Adam optimizers of §3.9, over disjoint parameter groups."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from firereg.config import OptimConfig
from firereg.model import FireModel

__all__ = ["FireOptimizers", "build_optimizers"]


@dataclass
class FireOptimizers:
    """One Adam per group: ``affine`` (T_af of both directions), ``nonrigid`` (T_nr of both) and
    ``synthesis`` (G, F_AB, F_BA)."""

    affine: torch.optim.Adam
    nonrigid: torch.optim.Adam
    synthesis: torch.optim.Adam

    def items(self) -> list[tuple[str, torch.optim.Adam]]:
        return [("affine", self.affine), ("nonrigid", self.nonrigid), ("synthesis", self.synthesis)]

    def zero_grad(self) -> None:
        for _, opt in self.items():
            opt.zero_grad(set_to_none=True)

    def step(self) -> None:
        for _, opt in self.items():
            opt.step()

    def state_dict(self) -> dict[str, dict]:
        return {name: opt.state_dict() for name, opt in self.items()}

    def load_state_dict(self, state: dict[str, dict]) -> None:
        missing = {name for name, _ in self.items()} - set(state)
        if missing:
            raise ValueError(f"FireOptimizers.load_state_dict: missing optimizer state(s) "
                             f"{sorted(missing)}")
        for name, opt in self.items():
            opt.load_state_dict(state[name])


def build_optimizers(model: FireModel, config: OptimConfig | None = None) -> FireOptimizers:
    """Adam for T_af at ``lr_affine`` (1e-5), T_nr at ``lr_nonrigid`` (5e-5) and G/F at
    ``lr_synthesis`` (1e-4), the paper's rates by default."""
    config = config or OptimConfig()
    groups = model.parameter_groups()
    rates = {"affine": config.lr_affine, "nonrigid": config.lr_nonrigid,
             "synthesis": config.lr_synthesis}
    return FireOptimizers(**{
        name: torch.optim.Adam(groups[name], lr=rates[name], betas=config.betas)
        for name in ("affine", "nonrigid", "synthesis")
    })
