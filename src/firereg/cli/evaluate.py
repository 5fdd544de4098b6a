"""``firereg evaluate``: run an evaluation experiment (configs/experiments/*.yaml) and print its tables."""

from __future__ import annotations

import argparse

__all__ = ["run_evaluate", "print_outcome"]


def print_outcome(outcome, *, out: str) -> None:
    """The first table (Dice; NCC and endpoint error for kind individual), the time per pair of
    each method, and where the files are."""
    from firereg.evaluation.experiment_config import METHOD_LABELS
    from firereg.evaluation.tables import to_text

    print(f"  data: {outcome.data.description}")
    for line in outcome.summary:
        print(f"  {line}")
    print()
    print(to_text(outcome.tables[0]))
    for note in outcome.tables[0].notes:
        print(f"  {note}")
    print()
    metrics = {name: cells for name, cells in next(t for t in outcome.tables if t.key == "metrics").rows}
    columns = [METHOD_LABELS[m] for m in outcome.config.methods]
    print("time per pair (s), mean (SD): registration | total")
    width = max(len(c) for c in columns)
    for i, column in enumerate(columns):
        print(f"  {column.ljust(width)}  {metrics['registration time per pair (s)'][i]:>16} | "
              f"{metrics['total time per pair (s)'][i]}")
    print()
    print(f"wrote {', '.join(outcome.paths)} into {out} ({outcome.seconds:.1f} s in all)")


def run_evaluate(args: argparse.Namespace) -> int:
    from firereg.evaluation.evaluate import run_evaluation
    from firereg.evaluation.experiment_config import load_config

    for name in ("max_images", "transforms", "torch_threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    config = load_config(args.config)
    try:  # the overrides are validated like the file's values
        config = config.with_overrides(max_images=args.max_images, transforms=args.transforms,
                                       torch_threads=args.torch_threads)
    except ValueError as exc:
        raise ValueError(f"{args.config} with the command line's overrides: {exc}") from None
    print(f"firereg evaluate: {config.name} ({args.config})")
    outcome = run_evaluation(config, args.out, overwrite=args.overwrite, progress=not args.no_progress,
                             config_path=str(args.config))
    print_outcome(outcome, out=args.out)
    return 0

