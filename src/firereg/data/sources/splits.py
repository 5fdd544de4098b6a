"""Deterministic, stratified train / val / test splits shared by every data source."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from fractions import Fraction

__all__ = ["PAPER_SPLIT_SEED", "SPLITS", "apply_split", "resolve_split", "stratified_split"]

SPLITS = ("train", "val", "test")

PAPER_SPLIT_SEED = 0
"""Seed of the fixed shuffle used by the sources' ``paper_split`` functions."""


def _largest_remainder(total: int, weights: Sequence[Fraction | int]) -> list[int]:
    """Integers proportional to ``weights`` that sum to ``total`` (ties go to the earlier entry)."""
    norm = sum(weights)
    ideal = [Fraction(total) * Fraction(w) / norm for w in weights]
    counts = [int(x) for x in ideal]  # floor, ideal >= 0
    order = sorted(range(len(weights)), key=lambda i: (-(ideal[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def stratified_split(
    names: Sequence[str],
    groups: Sequence[str],
    weights: Mapping[str, int],
    *,
    seed: int = PAPER_SPLIT_SEED,
) -> dict[str, str]:
    """Assign each name to a split, in proportions ``weights``, stratified by ``groups``.

    The rule (deterministic; independent of the input order):

    1. Split sizes: ``len(names)`` shared in proportion to ``weights`` by largest remainder
       (exact when the proportions divide, e.g. 60/10/30 of 100, 8/1/3 of 12).
    2. Per group, for each split but the first in ``weights`` (e.g. "test", then "val" for
       weights ordered train/val/test, taken from the last): the group's share
       ``group size * split size / n`` rounded down, the leftover places given one at a time to
       the groups with the largest fractional part (ties: group name) that still have members
       left; the first split takes what remains in each group.
    3. Within a group, names are sorted, shuffled by ``random.Random(f"{seed}/{group}")``, and
       dealt in that order: the last split's share first, then the one before, and so on.

    Returns:
        name -> split.
    """
    if len(names) != len(groups):
        raise ValueError(f"stratified_split: {len(names)} names but {len(groups)} groups")
    if len(set(names)) != len(names):
        raise ValueError("stratified_split: names must be unique")
    splits = list(weights)
    if not splits or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"stratified_split: weights must be non-negative with a positive sum, got "
                         f"{dict(weights)}")
    n = len(names)
    sizes = dict(zip(splits, _largest_remainder(n, [weights[s] for s in splits]), strict=True))
    members: dict[str, list[str]] = {}
    for name, group in zip(names, groups, strict=True):
        members.setdefault(group, []).append(name)
    order = sorted(members)
    room = {g: len(members[g]) for g in order}
    share: dict[str, dict[str, int]] = {g: {} for g in order}
    for split in reversed(splits[1:]):
        ideal = {g: Fraction(len(members[g]) * sizes[split], n) for g in order}
        for g in order:
            share[g][split] = min(int(ideal[g]), room[g])
            room[g] -= share[g][split]
        left = sizes[split] - sum(share[g][split] for g in order)
        ranked = sorted(order, key=lambda g: (-(ideal[g] - int(ideal[g])), g))
        while left > 0:
            progressed = False
            for g in ranked:
                if left == 0:
                    break
                if room[g] > 0:
                    share[g][split] += 1
                    room[g] -= 1
                    left -= 1
                    progressed = True
            if not progressed:  # pragma: no cover - the sizes sum to n, so room always remains
                raise RuntimeError("stratified_split: no room left")
    for g in order:
        share[g][splits[0]] = room[g]
    result: dict[str, str] = {}
    for g in order:
        shuffled = sorted(members[g])
        random.Random(f"{seed}/{g}").shuffle(shuffled)
        start = 0
        for split in reversed(splits):
            for name in shuffled[start:start + share[g][split]]:
                result[name] = split
            start += share[g][split]
    return result


def apply_split(cases: Sequence, split: Mapping[str, str] | Mapping[str, Sequence[str]]) -> list:
    """The cases with ``split`` set from a mapping, in their order.

    ``split`` is either case name -> "train"/"val"/"test", or "train"/"val"/"test" -> case names.
    Cases it does not name keep ``split = None``. Works for :class:`CineCase` and ``Case``.

    Raises:
        ValueError: an unknown split name, a case named twice, or a name that is not a case.
    """
    if split and all(not isinstance(v, str) for v in split.values()):
        by_name: dict[str, str] = {}
        for part, names in split.items():
            for name in names:
                if name in by_name:
                    raise ValueError(f"split: case {name!r} is in both {by_name[name]!r} and {part!r}")
                by_name[name] = part
    else:
        by_name = dict(split)  # type: ignore[arg-type]
    bad = sorted({v for v in by_name.values() if v not in SPLITS})
    if bad:
        raise ValueError(f"split: unknown split name(s) {bad}; expected {list(SPLITS)}")
    known = {c.name for c in cases}
    unknown = sorted(set(by_name) - known)
    if unknown:
        shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise ValueError(f"split: {len(unknown)} name(s) are not among the cases: {shown}")
    return [replace(c, split=by_name.get(c.name)) for c in cases]


def resolve_split(cases: Sequence, split, paper: Callable[[Sequence], list],
                  error: type[ValueError] = ValueError) -> list:
    """The cases with a split applied: None (unchanged), "paper" (``paper(cases)``) or a mapping
    (:func:`apply_split`). Anything else raises ``error``."""
    if split is None:
        return list(cases)
    if isinstance(split, str):
        if split != "paper":
            raise error(f"split must be None, 'paper' or a mapping, got {split!r}")
        return paper(cases)
    return apply_split(cases, split)
