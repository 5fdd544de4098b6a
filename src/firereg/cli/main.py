"""The ``firereg`` command. Thin: parse arguments, call the library, print, exit.

Imports of torch and the library happen inside each command so ``firereg --help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

# = firereg.inference.refine.DEFAULT_REFINE_STEPS and DEFAULT_SYNTHESIS_WEIGHT, kept here so the
# parser imports no torch (a test keeps them equal)
DEFAULT_REFINE_STEPS = 100
DEFAULT_SYNTHESIS_WEIGHT = 0.05

__all__ = ["main", "build_parser", "UserError", "CommandFailedError", "EXIT_USER_ERROR", "EXIT_DIVERGED",
           "EXIT_CLOSED_STDOUT"]


EXIT_USER_ERROR = 2  # a mistake in the input: argparse's status too
EXIT_DIVERGED = 3  # a computation went NaN or infinite (training, network refinement)
EXIT_CLOSED_STDOUT = 141  # 128 + SIGPIPE, as a shell reports a program killed by a closed pipe


class UserError(Exception):
    """A mistake in the user's input: reported as one line, exit status 2."""


class CommandFailedError(Exception):
    """Not the user's mistake, but a failure the command explains in one line, without a
    traceback, with its own exit status (``status``; default 3, a computation that diverged)."""

    def __init__(self, message: str, status: int = EXIT_DIVERGED) -> None:
        super().__init__(message)
        self.status = status


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("firereg")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _cmd_info(args: argparse.Namespace) -> int:
    from firereg.cli.info import model_summary

    print(model_summary(ndim=args.ndim, width=args.width, size=args.size))
    return 0


def _lazy(module: str, function: str):
    """A command that imports ``module`` only when it runs, then calls ``function(args)``."""
    def run(args: argparse.Namespace) -> int:
        from importlib import import_module

        return getattr(import_module(module), function)(args)

    return run


_cmd_demo = _lazy("firereg.cli.demo", "run")
_cmd_evaluate = _lazy("firereg.cli.evaluate", "run_evaluate")
_cmd_register = _lazy("firereg.cli.register", "run_register")
_cmd_register_series = _lazy("firereg.cli.register", "run_register_series")
_cmd_apply = _lazy("firereg.cli.register", "run_apply")
_cmd_train = _lazy("firereg.cli.train", "run_train")
_cmd_models = _lazy("firereg.cli.models", "run_models")
_cmd_models_package = _lazy("firereg.cli.models", "run_package")


def _add_models_parser(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser(
        "models", help="list the trained models shipped with firereg",
        description="List the models shipped inside the package: name, modality pair, dimensions, "
        "model-grid spacing, training iterations, validation Dice (unaligned -> affine -> full) and "
        "the exact training command. `firereg register --model NAME` uses one; without --model, "
        "register picks one by modality pair (see docs/registration.md).")
    models.add_argument("--json", action="store_true", help="print the model cards as JSON")
    models.set_defaults(func=_cmd_models)
    models_sub = models.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
    pkg = models_sub.add_parser(
        "package", help="(maintainers) ship a training run's latest checkpoint as a model",
        description="Copy RUN's latest checkpoint (model.safetensors and checkpoint.json only, no "
        "optimizer or RNG state) into the package's pretrained folder as NAME, with a card.json "
        "holding the modalities, dimensions, spacing, iterations, validation Dice and how it was "
        "trained. See docs/models.md.")
    pkg.add_argument("run", metavar="RUN", help="a training run folder written by firereg train")
    pkg.add_argument("--name", required=True, help="model name, e.g. t1-t2-2d (moving-fixed, dims)")
    pkg.add_argument("--modality-a", required=True, help="the run's modality A, e.g. T1")
    pkg.add_argument("--modality-b", required=True, help="the run's modality B, e.g. T2")
    pkg.add_argument("--dataset", required=True, help="what it was trained on")
    pkg.add_argument("--config", required=True, help="repository path of the training config")
    pkg.add_argument("--command", required=True, dest="train_command", metavar="COMMAND",
                     help="the exact training command")
    pkg.add_argument("--machine", required=True, help="where it was trained")
    pkg.add_argument("--notes", default="", help="anything a user should know")
    pkg.add_argument("--recipe", default="", help="how it was trained, in a few words (docs/training.md)")
    pkg.add_argument("--spacing", type=float, help="model-grid spacing in mm (default: the run's "
                     "config.yaml data.spacing)")
    pkg.add_argument("--diffeomorphic", action="store_true",
                     help="the model's transforms are diffeomorphic by construction")
    pkg.add_argument("--force", action="store_true", help="replace a model of the same name")
    pkg.set_defaults(func=_cmd_models_package)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="firereg",
        description="FIRE: unsupervised, inverse-consistent affine + non-rigid registration.",
    )
    parser.add_argument("--version", action="version", version=f"firereg {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    info = sub.add_parser("info", help="describe a FIRE architecture: parameters and grids",
                          description="Print the parameter count of every part of a FIRE model "
                          "(G, F_AB, F_BA, T_af, T_nr), the three optimizer groups, the feature "
                          "grid and lambda of Eq. (13) for an input size.")
    info.add_argument("--ndim", type=int, choices=(2, 3), default=2)
    info.add_argument("--width", type=int, default=64, help="base channels (paper: 64)")
    info.add_argument("--size", type=int, nargs="+", default=None,
                      help="input size, one int per axis (default 96 112 [96])")
    info.set_defaults(func=_cmd_info)

    demo = sub.add_parser(
        "demo", help="FIRE's shipped T1->T2 model against ANTs on the real SPM brain (CPU, minutes)",
        description="Prepare the offline SPM avg152 data if missing (firereg data prepare, SPM only), "
        "then evaluate the shipped t1-t2-2d model against ANTs on 4 test slices x 20 synthetic random "
        "transforms (configs/experiments/demo_brain_2d_t1_t2.yaml): print the Dice table and the time "
        "per pair of each method, and write results.md, results.csv, cases.json and report.html into "
        "--out (replacing earlier demo files there). With --synthetic: the core demo instead, fitting a "
        "small FIRE model to one SYNTHETIC phantom pair with a known translation (demo.png, demo.json).")
    demo.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    demo.add_argument("--synthetic", action="store_true",
                      help="run the synthetic-pair demo (the options below apply to it only)")
    demo.add_argument("--size", type=int, default=None, help="--synthetic: image side, multiple of 4 "
                      "(default 32)")
    demo.add_argument("--width", type=int, default=None, help="--synthetic: base channels (default 8)")
    demo.add_argument("--synthesis-steps", type=int, default=None, help="--synthetic: default 150")
    demo.add_argument("--registration-steps", type=int, default=None, help="--synthetic: default 150")
    demo.add_argument("--seed", type=int, default=None, help="--synthetic: default 0")
    demo.add_argument("--no-curriculum", action="store_true",
                      help="--synthetic: train the misaligned pair directly (shows why the curriculum "
                      "exists)")
    demo.set_defaults(func=_cmd_demo)

    reg = sub.add_parser(
        "register", help="register a moving NIfTI image onto a fixed one",
        description="Preprocess both images, run G and T (no decoders) in both directions, and "
        "write into --out: warped.nii.gz (moving on the fixed grid), warped_labels.nii.gz, "
        "affine.mat + warp.nii.gz (ITK/ANTs: antsApplyTransforms -r fixed -i moving -t warp.nii.gz "
        "-t affine.mat), inverse_affine.mat + inverse_warp.nii.gz, and report.json.")
    reg.add_argument("--moving", required=True, help="moving image (.nii / .nii.gz)")
    reg.add_argument("--fixed", required=True, help="fixed image (.nii / .nii.gz)")
    reg.add_argument("--out", required=True, help="output folder")
    reg.add_argument("--moving-labels", help="label map on the moving grid, warped label-aware")
    reg.add_argument("--model", metavar="NAME|PATH",
                     help="a shipped model (firereg models), a checkpoint folder, or a training run "
                     "folder (its latest); default: the shipped model for the modality pair")
    reg.add_argument("--moving-modality", metavar="MOD",
                     help="the moving image's modality, e.g. T1 (picks the model and direction)")
    reg.add_argument("--fixed-modality", metavar="MOD",
                     help="the fixed image's modality, e.g. T2 (picks the model and direction)")
    reg.add_argument("--direction", choices=("ab", "ba"), default=None,
                     help="ab: moving is the model's modality A; ba: modality B (default: from the "
                     "modalities, else ab)")
    reg.add_argument("--affine-only", action="store_true", help="use phi_af only")
    reg.add_argument("--spacing", type=float, default=None,
                     help="model-grid spacing in mm (default: the shipped model's, else 1.28)")
    reg.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    reg.add_argument("--refine", type=int, nargs="?", const=DEFAULT_REFINE_STEPS, default=None, metavar="N",
                     help="refine both directions on this pair in G's feature space for at most N Adam "
                     f"steps (default {DEFAULT_REFINE_STEPS}, adaptive stop); docs/refinement.md. Also "
                     "allows intra-modal pairs (T1 -> T1) with a model that has that modality on one side")
    reg.add_argument("--refine-mode", choices=("features", "network"), default="features",
                     help="features (default): optimise the transforms in G's feature space; network: "
                     "fine-tune a copy of T_AB/T_BA on the pair with Eq. 1 for N training steps (slower: "
                     "about 0.4 s a step in 2D on 2 CPU cores; use a GPU in 3D)")
    reg.add_argument("--refine-synthesis", action="store_true",
                     help="with --refine-mode network, let G and the decoders learn too")
    reg.add_argument("--refine-image-term", action="store_true",
                     help="add Eq. 7 through the frozen decoders to the refinement objective (slower)")
    reg.add_argument("--refine-synthesis-weight", type=float, default=None, metavar="W",
                     help="weight of the refinement's synthesis term, the moving image rendered in the "
                     f"fixed modality and compared at image resolution (default {DEFAULT_SYNTHESIS_WEIGHT}; "
                     "0: G's feature terms alone); docs/refinement.md")
    reg.add_argument("--diffeomorphic", action="store_true",
                     help="non-rigid part as a stationary velocity field (scaling and squaring): needs "
                     "--refine, or a model trained with model.diffeomorphic")
    reg.add_argument("--image-affine", action=argparse.BooleanOptionalAction, default=None,
                     help="refine the network's affine on the images (mutual information, or correlation "
                     "when both modalities are the same), coarse to fine, before the non-rigid part; on "
                     "by default with --refine, off without it; docs/refinement.md")
    reg.set_defaults(func=_cmd_register)

    ser = sub.add_parser(
        "register-series", help="register every phase of a 4D cine to a reference phase",
        description="Register every frame of a 4D cine (X, Y, Z, T) onto the reference frame in "
        "one batched pass per slice (2D model) or per volume (3D model). Writes warped_4d.nii.gz "
        "(every frame on the reference's geometry), warps/warp_tNN.nii.gz (frame NN, 0-based: a "
        "displacement field in LPS mm, reference point -> frame point, usable with "
        "antsApplyTransforms -r reference -i frame -t warp_tNN.nii.gz) and report.json.")
    ser.add_argument("--cine", required=True, help="4D NIfTI (X, Y, Z, T)")
    ser.add_argument("--reference", default="ED",
                     help="ED (read from an ACDC Info.cfg beside the cine, else frame 0) or a "
                     "0-based frame index")
    ser.add_argument("--out", required=True, help="output folder")
    ser.add_argument("--model", metavar="NAME|PATH",
                     help="a shipped model (firereg models), a checkpoint folder, or a training run "
                     "folder (its latest); default: the shipped 2D cine model")
    ser.add_argument("--spacing", type=float, default=None,
                     help="model-grid spacing in mm (default: the shipped model's, else 1.5)")
    ser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ser.set_defaults(func=_cmd_register_series)

    app = sub.add_parser(
        "apply", help="apply a registration's transforms to another image",
        description="Resample --input onto --reference through the warp.nii.gz and affine.mat "
        "written by firereg register (or the inverse ones with --inverse).")
    app.add_argument("--transforms", required=True, help="a firereg register output folder")
    app.add_argument("--input", required=True, help="image (or label map) on the moving grid")
    app.add_argument("--reference", required=True, help="image whose grid the output takes")
    app.add_argument("--out", required=True, help="output .nii / .nii.gz")
    app.add_argument("--labels", action="store_true", help="the input is a label map")
    app.add_argument("--inverse", action="store_true",
                     help="use inverse_warp.nii.gz and inverse_affine.mat")
    app.set_defaults(func=_cmd_apply)

    from firereg.cli.explain import add_explain_parser

    add_explain_parser(sub)

    tr = sub.add_parser(
        "train", help="train a FIRE model from a config (configs/*.yaml)",
        description="Run the paper's training (§3.9: three Adam optimizers, every term of Eq. 1, "
        "random affine + non-rigid augmentation of both images) on the data the config names. "
        "Writes checkpoints (safetensors + config), log.csv (every loss term), val.csv (Dice) and "
        "summary.json into --out. Multi-process: torchrun --nproc_per_node=K -m firereg train ...")
    tr.add_argument("--config", required=True,
                    help="a training config YAML, e.g. configs/spm_2d_t1_t2_cpu.yaml")
    tr.add_argument("--out", help="run folder (default runs/<config name>)")
    tr.add_argument("--resume", action="store_true", help="continue the run in --out")
    tr.add_argument("--iterations", type=int, help="override train.iterations")
    tr.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    tr.add_argument("--no-progress", action="store_true")
    tr.set_defaults(func=_cmd_train)

    ev = sub.add_parser(
        "evaluate", help="evaluate FIRE against ANTs: the paper's tables from an experiment config",
        description="Run every method of an experiment (configs/experiments/NAME.yaml): unaligned, "
        "ANTs affine (MI), FIRE-affine, ANTs SyN (MI or CC), FIRE, on every test pair (brain: each test "
        "slice or slab under N random transforms of the paper's protocol, registered onto the other "
        "modality; cardiac: ES -> ED). Writes into --out: results.md and results.csv (Dice per "
        "structure as in Table 2/3; HD95, folding, log-Jacobian SD, inverse consistency; time per pair "
        "as in Table 4), cases.json (every per-case value, every method's settings, the machine) and a "
        "self-contained report.html. See docs/evaluation.md.")
    ev.add_argument("--config", required=True, help="experiment YAML, e.g. "
                    "configs/experiments/brain_2d_t1_t2.yaml")
    ev.add_argument("--out", required=True, help="output folder (must be empty or new)")
    ev.add_argument("--overwrite", action="store_true",
                    help="write into a non-empty --out, replacing the result files there")
    ev.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    ev.add_argument("--max-images", type=int, metavar="K",
                    help="quick run: at most K test images, spread over the split")
    ev.add_argument("--transforms", type=int, metavar="N",
                    help="quick run: N random transforms per image instead of the config's")
    ev.add_argument("--torch-threads", type=int, metavar="T",
                    help="torch's CPU threads for FIRE instead of the config's torch_threads")
    ev.set_defaults(func=_cmd_evaluate)

    _add_models_parser(sub)

    from firereg.cli.data import add_data_parser

    add_data_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``firereg ARGV``; returns the exit status.

    A closed stdout (``firereg ... | head -0``) ends any command quietly with status 141: the
    outputs a command writes to files are complete by the time it prints, and what it would have
    printed is dropped (stdout is flushed here, so the failure cannot surface at interpreter exit
    as a traceback instead).
    """
    try:
        try:
            return _main(argv)
        finally:
            if sys.stdout is not None:
                sys.stdout.flush()
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        _drop_stdout()
        return EXIT_CLOSED_STDOUT


def _stdout_closed() -> bool:
    """Whether stdout is a pipe (or socket) whose reader has gone: the BrokenPipeError was ours to
    expect, not one of another pipe (a subprocess's) to report."""
    import select

    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture)
        return False


def _drop_stdout() -> None:
    """Point stdout's file descriptor at /dev/null, so that Python's own flush at exit succeeds."""
    import os

    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


# The range of every numeric option, by argparse dest: (flag, low, high, what). A value outside it
# (NaN and infinities included) is refused in one line before anything runs: each one accepted
# before gave exit 0 and a useless result (a 1e6 mm model grid wrote an all-zero image; an infinite
# refinement weight made refinement a no-op and wrote Infinity into report.json).
NUMERIC_OPTIONS = {
    "spacing": ("--spacing", 0.0, 20.0, "mm, above 0"),  # data.spacing's range; finer is checked in
    # preprocessing against the model grid's voxel count
    "refine": ("--refine", 1, 100_000, "steps"),
    "refine_synthesis_weight": ("--refine-synthesis-weight", 0.0, 100.0, ""),
    "iterations": ("--iterations", 1, 10**9, ""),
    "max_images": ("--max-images", 1, 10**6, ""),
    "transforms": ("--transforms", 1, 10**5, ""),
    "torch_threads": ("--torch-threads", 1, 4096, ""),
    "width": ("--width", 1, 1024, "channels"),
    "size": ("--size", 1, 100_000, "voxels"),
    "synthesis_steps": ("--synthesis-steps", 1, 10**7, ""),
    "registration_steps": ("--registration-steps", 1, 10**7, ""),
    "seed": ("--seed", 0, 2**32 - 1, ""),
    "subjects": ("--subjects", 1, 10**5, ""),
    "phases": ("--phases", 1, 1000, ""),
    "slices": ("--slices", 1, 1000, ""),
    "pixel_spacing": ("--pixel-spacing", 0.0, 20.0, "mm, above 0"),
}


def _check_numbers(args: argparse.Namespace) -> None:
    """Refuse a numeric option outside its range (:data:`NUMERIC_OPTIONS`), NaN or infinite."""
    import math

    for dest, (flag, low, high, unit) in NUMERIC_OPTIONS.items():
        given = getattr(args, dest, None)
        values = given if isinstance(given, list | tuple) else [given]
        for value in values:
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            above_zero = unit.endswith("above 0")
            ok = math.isfinite(value) and (value > low if above_zero else value >= low) and value <= high
            if not ok:
                what = unit.removesuffix(", above 0").removesuffix("above 0").strip()
                span = f"({low:g}, {high:g}]" if above_zero else f"[{low:g}, {high:g}]"
                raise UserError(f"{flag} must be a finite number in {span}{' ' + what if what else ''}, "
                                f"got {value!r}")


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        _check_numbers(args)
        return int(args.func(args))
    except (UserError, ValueError) as exc:
        print(f"firereg {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except CommandFailedError as exc:
        print(f"firereg {args.command}: error: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print(f"firereg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
