"""``firereg register`` and ``firereg apply``: thin wrappers over :mod:`firereg.inference`."""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager, suppress
from pathlib import Path

__all__ = ["run_register", "run_register_series", "run_apply", "output_lock"]

DEFAULT_PAIR_SPACING = 1.28  # mm, the paper's model grid, for a checkpoint without a card
DEFAULT_SERIES_SPACING = 1.5  # mm, for a cine checkpoint without a card


@contextmanager
def output_lock(out_dir: Path):
    """Hold ``out_dir/.firereg.lock`` while writing; refuse if another run holds it.

    A lock left by a run that died on this host is taken over, with a note on stderr
    (:mod:`firereg.locking`).

    Any OSError while the lock is held (a full disk, a folder that turned read-only) becomes one
    line naming ``out_dir``; a folder this call created is removed again when the run fails and
    left it empty. Staging folders of killed runs are cleared once the lock is held.
    """
    from firereg.atomic import remove_stale_staging
    from firereg.locking import LockHeldError, create_lock

    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ValueError(f"{out_dir}: exists and is not a folder") from None
    except OSError as exc:
        raise ValueError(f"{out_dir}: cannot create the output folder ({exc.strerror or exc})") from None
    lock = out_dir / ".firereg.lock"

    def taken_over(pid: int) -> None:
        print(f"firereg: {out_dir}: removed the lock of a run that died (pid {pid} on this host)",
              file=sys.stderr)

    try:
        create_lock(lock, on_stale=taken_over)
    except LockHeldError as held:
        raise ValueError(f"{out_dir}: another firereg run is writing here ({held.holder}; remove "
                         f"{lock.name} if that run is dead)") from None
    except OSError as exc:
        raise ValueError(f"{out_dir}: cannot write here ({exc.strerror})") from None
    failed = True
    try:
        remove_stale_staging(out_dir)
        yield
        failed = False
    except (OSError, ValueError) as exc:
        # an OSError, or an ImageFileError from one (firereg.data.io names the staging file)
        cause = exc if isinstance(exc, OSError) else exc.__cause__
        if not isinstance(cause, OSError):
            raise
        raise ValueError(f"{out_dir}: could not write the outputs ({cause.strerror or cause}); the "
                         "folder was left as it was") from exc
    finally:
        lock.unlink(missing_ok=True)
        if failed and created:
            with suppress(OSError):
                out_dir.rmdir()  # only if empty



def _selection_report(selection) -> dict:
    """What report.json says about the model and how it was chosen."""
    return {"model": selection.model,
            "model_card": selection.card.to_dict() if selection.card is not None else None,
            "direction": selection.direction, "selection": selection.how}


def _require_some_model(model: str | None) -> None:
    """Refuse early (before reading images) when nothing could be chosen."""
    from firereg.pretrained.registry import NO_MODELS, ModelSelectionError, list_models

    if model is None and not list_models():
        raise ModelSelectionError(NO_MODELS)


def run_register(args: argparse.Namespace) -> int:
    from firereg.data.io import read_image, read_labels
    from firereg.data.preprocessing import PreprocessConfig
    from firereg.inference.finetune import FinetuneDivergedError
    from firereg.inference.outputs import write_pair_outputs
    from firereg.inference.register_pair import register_pair
    from firereg.pretrained.registry import select_model
    from firereg.runtime import resolve_device

    start = time.perf_counter()
    refine, finetune = _refine_configs(args)  # flag mistakes first, before reading any file
    _require_some_model(args.model)
    moving = read_image(args.moving)
    ndim = moving.ndim
    selection = select_model(args.model, ndim=ndim, moving_modality=args.moving_modality,
                             fixed_modality=args.fixed_modality, direction=args.direction,
                             intra_modal=refine is not None or finetune is not None,
                             prefer_diffeomorphic=getattr(args, "diffeomorphic", False))
    fixed = read_image(args.fixed, ndim=ndim)
    labels = read_labels(args.moving_labels, ndim=ndim) if args.moving_labels else None
    model = selection.load()
    if getattr(args, "diffeomorphic", False) and refine is None and not model.config.diffeomorphic \
            and finetune is None:
        raise ValueError(f"--diffeomorphic: model {selection.model} was not trained with diffeomorphic "
                         "fields; add --refine to make the warp diffeomorphic by per-pair refinement")
    spacing = args.spacing if args.spacing is not None else (
        selection.card.spacing_mm if selection.card is not None else DEFAULT_PAIR_SPACING)
    load_s = time.perf_counter() - start
    out = Path(args.out)
    with output_lock(out):
        try:
            result = register_pair(model, moving, fixed, direction=selection.direction,
                                   moving_labels=labels, preprocess_config=PreprocessConfig(spacing=spacing),
                                   affine_only=args.affine_only, device=resolve_device(args.device),
                                   refine=refine, finetune=finetune,
                                   image_affine=_image_affine_config(args, selection, refine, finetune))
        except FinetuneDivergedError as exc:  # before any write; the lock and a new --out go
            from firereg.cli.main import CommandFailedError

            raise CommandFailedError(str(exc)) from exc
        result.report["timings"]["load_s"] = load_s
        paths = write_pair_outputs(result, out, fixed_affine=fixed.affine, moving_affine=moving.affine,
                                   extra_report={**_selection_report(selection), "spacing_mm": spacing,
                                                 "moving": str(args.moving), "fixed": str(args.fixed)})
    r = result.report
    print(f"firereg register: {selection.how}")
    print(f"firereg register: wrote {', '.join(p.name for p in paths.values())} into {out}")
    print(f"  folding {r['folding_percent']:.3f}% of voxels, inverse consistency "
          f"{r['inverse_consistency_mm']:.3f} mm, network {r['timings']['network_s']:.2f} s")
    if r.get("finetune"):
        ft = r["finetune"]
        print(f"  network fine-tuned on the pair for {ft['steps']} steps ({ft['seconds']:.1f} s): Eq. 1 "
              f"{ft['loss_first_step']:.4f} -> {ft['loss_last_step']:.4f}")
    if r.get("image_affine"):
        ia = r["image_affine"]
        verdict = "kept" if ia["kept"] else "not better: the network's affine kept"
        print(f"  affine refined on the images ({ia['metric']}, {r['timings']['image_affine_s']:.2f} s): "
              f"{ia['score_before']:.4f} -> {ia['score_after']:.4f}, {verdict}")
    if r.get("refine"):
        ref = r["refine"]
        print(f"  refined in {ref['steps']} steps ({r['timings']['refine_s']:.2f} s): objective "
              f"{ref['objective_before']['total']:.4f} -> {ref['objective_after']['total']:.4f}")
    return 0


def _image_affine_config(args: argparse.Namespace, selection, refine, finetune):
    """The image-space affine stage's settings, or None: ``--image-affine`` / ``--no-image-affine``,
    else on with ``--refine``. Its metric is the correlation when the pair is of one modality (the
    given modalities, else the model's sides in the chosen direction), else mutual information."""
    wanted = getattr(args, "image_affine", None)
    if wanted is None:
        wanted = refine is not None or finetune is not None
    if not wanted:
        return None
    from firereg.inference.image_affine import ImageAffineConfig, metric_for

    moving, fixed = args.moving_modality, args.fixed_modality
    card = selection.card
    if card is not None:
        sides = ((card.modality_a, card.modality_b) if selection.direction == "ab"
                 else (card.modality_b, card.modality_a))
        moving, fixed = moving or sides[0], fixed or sides[1]
    return ImageAffineConfig(metric=metric_for(moving, fixed))


def _refine_configs(args: argparse.Namespace):
    """``(RefineConfig or None, FinetuneConfig or None)`` asked for by ``--refine [N]`` and
    ``--refine-mode``."""
    steps = getattr(args, "refine", None)
    mode = getattr(args, "refine_mode", "features")
    image_term = getattr(args, "refine_image_term", False)
    synthesis = getattr(args, "refine_synthesis", False)
    synthesis_weight = getattr(args, "refine_synthesis_weight", None)
    if synthesis_weight is not None and not synthesis_weight >= 0:
        raise ValueError(f"--refine-synthesis-weight must be >= 0, got {synthesis_weight}")
    if steps is None:
        for flag, given in (("--refine-image-term", image_term), ("--refine-synthesis", synthesis),
                            ("--refine-synthesis-weight", synthesis_weight is not None),
                            ("--refine-mode network", mode == "network")):
            if given:
                raise ValueError(f"{flag} needs --refine")
        return None, None
    if mode == "network":
        if image_term or getattr(args, "diffeomorphic", False) or synthesis_weight is not None:
            raise ValueError("--refine-image-term, --refine-synthesis-weight and --diffeomorphic apply to "
                             "--refine-mode features")
        from firereg.inference.finetune import FinetuneConfig

        return None, FinetuneConfig(steps=steps, train_synthesis=synthesis)
    if synthesis:
        raise ValueError("--refine-synthesis applies to --refine-mode network")
    from firereg.inference.refine import RefineConfig

    weights = {} if synthesis_weight is None else {"synthesis_weight": synthesis_weight}
    return RefineConfig(max_steps=steps, image_term=image_term,
                        diffeomorphic=getattr(args, "diffeomorphic", False), **weights), None


def run_apply(args: argparse.Namespace) -> int:
    from firereg.data.io import read_image, read_labels, write_image, write_labels
    from firereg.inference.apply import apply_transforms, transform_files

    warp, affine = transform_files(args.transforms, inverse=args.inverse)
    reference = read_image(args.reference)
    reader = read_labels if args.labels else read_image
    image = reader(args.input, ndim=reference.ndim)
    result = apply_transforms(image, reference, warp, affine, labels=args.labels)
    writer = write_labels if args.labels else write_image
    path = writer(result, args.out)
    print(f"firereg apply: wrote {path}")
    return 0


def _reference_frame(text: str, cine_path: Path) -> tuple[int, str]:
    """0-based reference frame from ``--reference`` (an index, or "ED")."""
    if text.upper() != "ED":
        try:
            return int(text), "given"
        except ValueError:
            raise ValueError(f"--reference must be ED or a 0-based frame index, got {text!r}") from None
    info = cine_path.parent / "Info.cfg"
    if info.exists():
        from firereg.data.sources.acdc import read_info_cfg

        values = {k.upper(): v for k, v in read_info_cfg(info).items()}
        if "ED" in values:
            raw = values["ED"].strip()
            try:
                number = float(raw)
            except ValueError:
                number = float("nan")
            if not (number.is_integer() and number >= 1):
                raise ValueError(f"{info}: ED must be a 1-based frame number (ACDC counts frames from 1), "
                                 f"got {raw!r}; or pass --reference with a 0-based frame index")
            return int(number) - 1, f"ED from {info} (1-based {raw})"
    return 0, "ED taken as the first frame (no Info.cfg beside the cine)"


def run_register_series(args: argparse.Namespace) -> int:

    import numpy as np

    from firereg.atomic import atomic_write_text, json_text, staged_files
    from firereg.data.image import Image
    from firereg.data.io import read_image, write_displacement_field, write_image
    from firereg.data.preprocessing import PreprocessConfig
    from firereg.inference.register_series import register_series
    from firereg.pretrained.registry import select_series_model
    from firereg.runtime import resolve_device

    selection = select_series_model(args.model)
    cine = read_image(args.cine, allow_series=True)
    if not cine.is_series:
        raise ValueError(f"{args.cine}: a single {cine.ndim}D image, not a cine (X, Y, Z, T) or a "
                         "one-slice cine (X, Y, 1, T)")
    if cine.ndim == 2:  # a one-slice cine (X, Y, 1, T): a stack of one slice, its own plane kept
        cine = Image(data=cine.data[:, :, None, :], affine=cine.affine, ndim=3, source=cine.source)
    reference, how = _reference_frame(args.reference, Path(args.cine))
    model = selection.load()
    spacing = args.spacing if args.spacing is not None else (
        selection.card.spacing_mm if selection.card is not None else DEFAULT_SERIES_SPACING)
    out = Path(args.out)
    with output_lock(out):
        result = register_series(model, cine, reference,
                                 preprocess_config=PreprocessConfig(spacing=spacing),
                                 device=resolve_device(args.device))
        import nibabel as nib

        step = float(nib.load(str(args.cine)).header.get_zooms()[3])
        with staged_files(out) as stage:  # all or nothing
            write_image(result.warped, stage / "warped_4d.nii.gz",
                        time_step_s=step if step > 0 else None)
            (stage / "warps").mkdir()
            for t in range(cine.num_frames):
                write_displacement_field(result.displacements[t], cine.affine,
                                         stage / "warps" / f"warp_t{t:02d}.nii.gz")
            report = {**result.report, "reference_how": how, **_selection_report(selection),
                      "spacing_mm": spacing, "cine": str(args.cine),
                      "max_displacement_mm": float(np.abs(result.displacements).max())}
            atomic_write_text(stage / "report.json", json_text(report, indent=2))
    print(f"firereg register-series: {selection.how}")
    print(f"firereg register-series: {cine.num_frames} frames onto frame {reference} ({how}); wrote "
          f"warped_4d.nii.gz, warps/warp_tNN.nii.gz and report.json into {out}")
    return 0
