"""A tiny end-to-end run: FIRE learns a known translation between two synthetic contrasts.

The pair is synthetic (:mod:`firereg.synthetic`): a blurred two-structure phantom rendered with
two intensity tables (modalities A and B), B shifted by a known offset. It is fitted with the
two-stage curriculum of :func:`firereg.training.fit_pair`.
"""

import torch

from firereg.config import ModelConfig, OptimConfig
from firereg.evaluation import mean_dice
from firereg.model import FireModel
from firereg.spatial import warp_labels
from firereg.synthetic import make_phantom_pair
from firereg.training import build_optimizers, fit_pair


def test_fire_learns_a_known_translation_on_a_synthetic_pair():
    pair = make_phantom_pair(size=32, shift=(0.2, -0.15))
    model = FireModel(ModelConfig(ndim=2, width=8))
    optim = OptimConfig(lr_affine=1e-3, lr_nonrigid=1e-3, lr_synthesis=2e-3)
    opts = build_optimizers(model, optim)

    def overlap() -> float:
        with torch.no_grad():
            reg = model.register(pair.x_a, pair.x_b, "ab")
        return mean_dice(warp_labels(pair.labels_a, reg.displacement), pair.labels_b, (1, 2))

    unaligned = mean_dice(pair.labels_a, pair.labels_b, (1, 2))
    dice_at_stage_2: list[float] = []

    def on_step(stage, step, _terms):
        if stage == "registration" and step == 0:
            dice_at_stage_2.append(overlap())

    history = fit_pair(model, opts, pair.x_a, pair.x_b, pair.x_b_aligned, synthesis_steps=150,
                       registration_steps=150, on_step=on_step)
    stage_2 = history["registration"]
    assert len(history["synthesis"]) == 150 and len(stage_2) == 150
    assert stage_2[-1]["l_reg_acc"] < 0.9 * stage_2[0]["l_reg_acc"]
    assert unaligned < 0.5 and abs(dice_at_stage_2[0] - unaligned) < 0.05
    dice_after = overlap()
    assert dice_after > 0.85, (unaligned, dice_after)
    with torch.no_grad():
        translation = model.register(pair.x_a, pair.x_b, "ab").affine[0, :, 2]
    torch.testing.assert_close(translation, pair.expected_translation, atol=0.04, rtol=0)
    # the learning rate of the synthesis group is restored after the curriculum
    assert opts.synthesis.param_groups[0]["lr"] == optim.lr_synthesis
