"""``firereg train``."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

__all__ = ["run_train"]


def run_train(args: argparse.Namespace) -> int:
    from firereg.training.experiment import load_experiment
    from firereg.training.loop import TrainingDivergedError, train

    config = load_experiment(args.config)
    if args.iterations is not None:
        if args.iterations < 1:
            raise ValueError(f"--iterations must be >= 1, got {args.iterations}")
        config = dataclasses.replace(config, train=dataclasses.replace(config.train,
                                                                       iterations=args.iterations))
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    try:
        result = train(config, out, resume=args.resume, progress=not args.no_progress,
                       device=args.device)
    except TrainingDivergedError as exc:  # not a mistake in the input: its own exit status, 3
        from firereg.cli.main import CommandFailedError

        raise CommandFailedError(str(exc)) from exc
    except OSError as exc:  # a full disk, a read-only folder: one line, not a traceback
        from firereg.training.checkpoint import LATEST

        where = exc.filename if exc.filename else out
        try:
            resumable = (out / LATEST).is_file()
        except OSError:
            resumable = False
        hint = "; its checkpoints are complete: --resume continues from the last one" if resumable else ""
        raise ValueError(f"{where}: {exc.strerror or exc}{hint}") from exc
    if not result.is_main:
        return 0
    val = result.last_validation
    line = f"firereg train: {result.steps} steps in {result.seconds:.0f} s, checkpoints in {out}"
    if val:
        line += (f"; validation Dice {val['dice']:.3f} (affine {val['dice_affine']:.3f}, "
                 f"unaligned {val['dice_unaligned']:.3f})")
    print(line)
    return 0
