"""Choose the image-space affine stage's settings on the VALIDATION slices.

Usage: python tools/choose_image_affine.py [--images 3] [--transforms 5] [--threads 2]
       [--grid 1:0.01:64,2:0.01:64,1:0.02:64,2:0.02:64,2:0.01:32] [--refine]

Registers the demo experiment's pairs (configs/experiments/demo_brain_2d_t1_t2.yaml: shipped model
t1-t2-2d, T1 -> T2, the paper's random transforms) built from the SPM brain's *validation* slices
(never its test slices, and no held-out brain), with the network's affine refined on the images
(firereg.inference.image_affine, mutual information) for every ``steps_scale:lr:bins`` of the
grid (``steps_scale`` multiplies the default steps per level), and prints the mean Dice and time
per pair of each next to FIRE-affine without the stage; with ``--refine``, also with the network's
non-rigid fields and the feature-space refinement after it (method fire_refine_image). The
defaults of ImageAffineConfig were chosen from this table (docs/refinement.md).
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
    parser.add_argument("--grid", default="1:0.01:64,2:0.01:64,1:0.02:64,2:0.02:64,2:0.01:32",
                        help="comma-separated steps_scale:lr:bins settings")
    parser.add_argument("--refine", action="store_true", help="also score each with fire_refine_image")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from validation_slices import validation_pairs

    from firereg.evaluation.runner import score
    from firereg.inference.image_affine import ImageAffineConfig
    from firereg.inference.refine import RefineConfig

    config, runner, cases = validation_pairs(args.images, args.transforms)
    print(f"{'steps x':>7} {'lr':>6} {'bins':>5} {'affine Dice %':>14} {'s/pair':>7} "
          f"{'+refine Dice %':>15} {'s/pair':>7} {'kept %':>7}")
    default = ImageAffineConfig()
    settings = [None] + [tuple(float(v) for v in item.split(":")) for item in args.grid.split(",")]
    for setting in settings:
        stage = None if setting is None else ImageAffineConfig(
            metric="mi", steps=tuple(round(s * setting[0]) for s in default.steps), lr=setting[1],
            bins=int(setting[2]))
        columns = []
        kept = []
        for affine_only, refine in [(True, None)] + ([(False, RefineConfig())] if args.refine else []):
            dice, seconds = [], []
            for case in cases:
                start = time.perf_counter()
                run = runner._fire(case, affine_only=affine_only, name="choose", refine=refine,
                                   image_affine=stage)
                seconds.append(time.perf_counter() - start)
                dice.append(score(case, run, config.label_table)["mean_dice"])
                if stage is not None and affine_only:
                    kept.append(run.extra["image_affine"]["kept"])
            columns.append(f"{100 * statistics.mean(dice):>14.2f} {statistics.mean(seconds):>7.3f}")
        label = ("none", "-", "-") if setting is None else (f"{setting[0]:g}", f"{setting[1]:g}",
                                                             f"{setting[2]:g}")
        kept_text = f"{100 * statistics.mean(kept):>7.0f}" if kept else f"{'-':>7}"
        print(f"{label[0]:>7} {label[1]:>6} {label[2]:>5} {' '.join(columns)} {kept_text}", flush=True)


if __name__ == "__main__":
    main()
