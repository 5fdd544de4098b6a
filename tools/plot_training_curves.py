"""Plot validation Dice against wall-clock time for training runs, and print the table behind it.

    python tools/plot_training_curves.py runs/ablations/synth_full runs/ablations/synth_no_known \\
        --out docs/figures/ablation.png

Each run folder needs ``val.csv`` and ``log.csv`` (written by ``firereg train``). The time of a
validation row is the ``seconds`` of the last ``log.csv`` row at or before its step (training
time, without the validation itself). Two panels: the SPM val-slab pairs (``dice``) and, where
the run has one, the validation brain (``synth_dice``), each after the full transform (solid)
and after ``phi_af`` alone (dashed).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def curve(run: Path) -> list[dict[str, float]]:
    """``[{step, seconds, dice, dice_affine, synth_dice, ...}]`` of one run, by validation step."""
    log = [(int(r["step"]), float(r["seconds"])) for r in _rows(run / "log.csv")]
    out = []
    for row in _rows(run / "val.csv"):
        step = int(row["step"])
        seconds = max((s for k, s in log if k <= step), default=0.0)
        values = {k: float(v) for k, v in row.items() if v not in ("", None) and k != "step"}
        out.append({"step": step, "seconds": seconds, **values})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--title", default="validation Dice against training time")
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {run.name: curve(run) for run in args.runs}
    has_brain = any("synth_dice" in c[0] for c in curves.values() if c)
    fig, axes = plt.subplots(1, 2 if has_brain else 1, figsize=(11 if has_brain else 6, 4), squeeze=False)
    panels = [("dice", "SPM avg152 val slab")] + ([("synth_dice", "validation brain (donor-9861)")]
                                                    if has_brain else [])
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        for name, rows in curves.items():
            rows = [r for r in rows if key in r]
            if not rows:
                continue
            minutes = [r["seconds"] / 60 for r in rows]
            (line,) = ax.plot(minutes, [r[key] for r in rows], marker="o", ms=3, label=name)
            affine = key.replace("dice", "dice_affine")
            ax.plot(minutes, [r[affine] for r in rows], ls="--", color=line.get_color(), lw=0.8)
            ax.axhline(rows[0][key.replace("dice", "dice_unaligned")], color="grey", lw=0.5)
        ax.set_xlabel("training time (min)")
        ax.set_ylabel("mean Dice")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(args.title, fontsize=11)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print("| run | step | minutes | SPM val Dice (affine / full) | validation brain Dice (affine / full) |")
    print("|---|---:|---:|---|---|")
    for name, rows in curves.items():
        for r in rows:
            brain = (f"{r['synth_dice_affine']:.3f} / {r['synth_dice']:.3f}" if "synth_dice" in r else "-")
            print(f"| {name} | {r['step']} | {r['seconds'] / 60:.1f} | {r['dice_affine']:.3f} / "
                  f"{r['dice']:.3f} | {brain} |")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
