"""Choose the refinement's synthesis and smoothness weights on the VALIDATION slices.

Usage: python tools/choose_refine_weights.py [--images 3] [--transforms 5] [--threads 2]
       [--grid 0:1,0:100,0.02:100,0.05:100,0.1:100,0.05:30,0.05:300,0.1:300,0.2:300]
       [--steps 100,200] [--patience 10,20]

Registers the demo experiment's pairs (configs/experiments/demo_brain_2d_t1_t2.yaml: shipped model
t1-t2-2d, T1 -> T2, the paper's random transforms) built from the SPM brain's *validation* slices
(never the test slices the results are reported on), with FIRE + refinement for every
``synthesis_weight:smooth_weight`` pair of the grid, and prints the mean Dice, folding and time per
pair of each, plus FIRE without refinement. The defaults of firereg.inference.refine were chosen
from this table (docs/refinement.md).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3, help="validation slices, spread evenly")
    parser.add_argument("--transforms", type=int, default=5, help="random transforms per slice")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--grid", default="0:1,0:100,0.02:100,0.05:100,0.1:100,0.05:30,0.05:300,0.1:300,"
                        "0.2:300", help="comma-separated synthesis_weight:smooth_weight pairs")
    parser.add_argument("--steps", default="100", help="comma-separated max_steps values to try")
    parser.add_argument("--patience", default="10", help="comma-separated patience values to try")
    parser.add_argument("--lr-scale", default="1", help="comma-separated multipliers of both step sizes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from validation_slices import validation_pairs

    from firereg.evaluation.runner import score
    from firereg.inference.refine import RefineConfig

    config, runner, cases = validation_pairs(args.images, args.transforms)
    print(f"{'synthesis':>9} {'smooth':>7} {'steps':>5} {'patience':>8} {'lr x':>5} {'mean Dice %':>12} "
          f"{'folding %':>10} {'s/pair':>8}")
    weights = [tuple(float(v) for v in item.split(":")) for item in args.grid.split(",")]
    settings = [None] + [(*w, int(n), int(p), float(lr)) for w in weights for n in args.steps.split(",")
                         for p in args.patience.split(",") for lr in args.lr_scale.split(",")]
    default = RefineConfig()
    for setting in settings:
        refine = None if setting is None else RefineConfig(synthesis_weight=setting[0],
                                                           smooth_weight=setting[1], max_steps=setting[2],
                                                           patience=setting[3],
                                                           lr_affine=default.lr_affine * setting[4],
                                                           lr_field=default.lr_field * setting[4])
        dice, folding, seconds = [], [], []
        for case in cases:
            start = time.perf_counter()
            run = runner._fire(case, affine_only=False, name="choose", refine=refine)
            seconds.append(time.perf_counter() - start)
            scores = score(case, run, config.label_table)
            dice.append(scores["mean_dice"])
            folding.append(scores["folding_percent"])
        label = ("FIRE", "-", "-", "-", "-") if setting is None else tuple(f"{v:g}" for v in setting)
        print(f"{label[0]:>9} {label[1]:>7} {label[2]:>5} {label[3]:>8} {label[4]:>5} "
              f"{100 * statistics.mean(dice):>12.2f} "
              f"{statistics.mean(folding):>10.3f} {statistics.mean(seconds):>8.3f}", flush=True)


if __name__ == "__main__":
    main()
