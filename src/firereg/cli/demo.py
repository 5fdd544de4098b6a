"""``firereg demo``: the real-data demo (FIRE's shipped model against ANTs on the SPM brain), or with
``--synthetic`` the core demo on one synthetic pair."""

from __future__ import annotations

import argparse

__all__ = ["run", "SYNTHETIC_DEFAULTS"]

# the options of `firereg demo --synthetic`, and their defaults
SYNTHETIC_DEFAULTS = {"size": 32, "width": 8, "synthesis_steps": 150, "registration_steps": 150, "seed": 0,
                      "no_curriculum": False}


def _synthetic(args: argparse.Namespace) -> int:
    from firereg.demo import run_phantom_demo
    from firereg.model import MIN_SIZE

    values = {k: (getattr(args, k) if getattr(args, k) not in (None, False) else d)
              for k, d in SYNTHETIC_DEFAULTS.items()}
    if values["size"] % 4 or values["size"] < MIN_SIZE:
        raise ValueError(f"--size must be a multiple of 4 and at least {MIN_SIZE}, got {values['size']}")
    if values["width"] < 1 or values["synthesis_steps"] < 0 or values["registration_steps"] < 0:
        raise ValueError("--width must be >= 1 and step counts >= 0")
    print("firereg demo: FIRE on one SYNTHETIC two-contrast phantom pair with a known shift.")
    r = run_phantom_demo(size=values["size"], width=values["width"],
                         synthesis_steps=values["synthesis_steps"],
                         registration_steps=values["registration_steps"], seed=values["seed"],
                         curriculum=not values["no_curriculum"],
                         out_dir=args.out, progress=not args.no_progress)
    fmt = lambda v: "(" + ", ".join(f"{x:+.3f}" for x in v) + ")"  # noqa: E731
    print(f"  translation of phi_AB, true    {fmt(r.true_translation)} (normalized units)")
    print(f"  translation of phi_AB, learned {fmt(r.learned_translation)}")
    print(f"  mean label Dice: unaligned {r.dice_unaligned:.3f}, FIRE-affine {r.dice_affine:.3f}, "
          f"FIRE {r.dice_fire:.3f}")
    print(f"  L_reg,acc {r.first_terms.get('l_reg_acc', float('nan')):.3f} at the first step, "
          f"{r.final_terms.get('l_reg_acc', float('nan')):.3f} at the last"
          + ("" if r.curriculum else " (no curriculum)"))
    print(f"  {r.seconds:.1f} s of training on {r.threads} CPU threads")
    print(f"  wrote {r.figure} and {args.out}/demo.json")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.synthetic:
        return _synthetic(args)
    given = [f"--{k.replace('_', '-')}" for k in SYNTHETIC_DEFAULTS if getattr(args, k) not in (None, False)]
    if given:
        raise ValueError(f"{', '.join(given)} only apply to the synthetic demo; add --synthetic")
    from firereg.cli.evaluate import print_outcome
    from firereg.demo.brain_demo import run_brain_demo

    print("firereg demo: FIRE (shipped model t1-t2-2d) against ANTs, T1 -> T2 on the SPM avg152 brain:")
    print("  real MRI templates, misaligned by SYNTHETIC random transforms (the paper's protocol, §4.1).")
    outcome = run_brain_demo(args.out, progress=not args.no_progress)
    print_outcome(outcome, out=args.out)
    return 0
