"""``firereg models``: list the shipped models, and (for maintainers) package a training run as one."""

from __future__ import annotations

import argparse

from firereg.atomic import json_text

__all__ = ["run_models", "run_package", "format_table"]


def _dice(validation: dict) -> str:
    keys = ("dice_unaligned", "dice_affine", "dice")
    if not all(k in validation for k in keys):
        return "-"
    text = " -> ".join(f"{validation[k]:.3f}" for k in keys)
    return f"{text} ({int(validation['pairs'])} pairs)" if "pairs" in validation else text


def format_table(cards: list) -> str:
    """The cards as a table, each followed by its training command."""
    header = ("name", "modalities", "dims", "spacing", "iterations",
              "validation Dice (unaligned -> affine -> full)")
    rows = [(c.name, c.modalities, f"{c.ndim}D", f"{c.spacing_mm:g} mm", f"{c.iterations:,}",
             _dice(c.validation)) for c in cards]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]

    out = [line(header)]
    for card, row in zip(cards, rows, strict=True):
        out.append(line(row))
        out.append(f"    trained with: {card.command}")
        if card.diffeomorphic:
            out.append("    diffeomorphic fields (velocity + scaling and squaring); "
                       "`register --diffeomorphic` chooses it")
    return "\n".join(out)


def run_models(args: argparse.Namespace) -> int:
    from firereg.pretrained.registry import list_models, pretrained_root

    cards = list_models()
    if args.json:
        print(json_text([c.to_dict() for c in cards], indent=2))
        return 0
    if not cards:
        print(f"No trained models are shipped with this install (none in {pretrained_root()}). "
              "Register with --model PATH: a checkpoint folder, or a run folder of firereg train.")
        return 0
    print(format_table(cards))
    return 0


def run_package(args: argparse.Namespace) -> int:
    from firereg.pretrained.package import package_run

    path = package_run(args.run, args.name, modality_a=args.modality_a, modality_b=args.modality_b,
                       dataset=args.dataset, config=args.config, command=args.train_command,
                       machine=args.machine, notes=args.notes, spacing_mm=args.spacing,
                       diffeomorphic=args.diffeomorphic, overwrite=args.force, recipe=args.recipe)
    print(f"firereg models package: wrote {', '.join(sorted(p.name for p in path.iterdir()))} into "
          f"{path}")
    return 0
