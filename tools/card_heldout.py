"""Write a shipped model's held-out figures into its card, from `firereg evaluate` result folders.

    python tools/card_heldout.py t1-t2-2d runs/eval/cross_brain_2d_t1_t2 ...

For each folder (its name is the experiment's key in the card), every method's mean Dice over
structures (``dice,mean``) and, for an unlabelled individual, its NCC and endpoint error, are read
from ``results.csv`` and stored as ``{"<method> dice": ..., "<method> NCC": ..., "<method> EPE mm":
...}``. The card is rewritten in place (the other keys unchanged).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from firereg.pretrained.card import CARD_NAME, ModelCard
from firereg.pretrained.registry import model_path

WANTED = {("dice", "mean"): "dice", ("similarity", "NCC in the mask"): "NCC",
          ("similarity", "endpoint error (mm)"): "EPE mm"}


def figures(folder: Path) -> dict[str, float]:
    with (folder / "results.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {f"{r['column']} {WANTED[(r['table'], r['row'])]}": round(float(r["mean"]), 4)
            for r in rows if (r["table"], r["row"]) in WANTED and r["mean"] not in ("", "nan")}


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = model_path(argv[0]) / CARD_NAME
    card = ModelCard.load(path)
    heldout = dict(card.heldout)
    for folder in map(Path, argv[1:]):
        heldout[folder.name] = figures(folder)
    ModelCard.from_dict({**card.to_dict(), "heldout": heldout}).save(path)
    print(f"{path}: heldout figures of {', '.join(Path(a).name for a in argv[1:])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
