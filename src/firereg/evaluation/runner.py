"""Run every method of an experiment on every case and score it.

Methods (columns of the paper's Table 2):

* ``unaligned``: the moving image and labels read at the same world points (no registration);
* ``ants_affine``: ANTs affine, Mattes mutual information
  (:func:`~firereg.evaluation.ants_baselines.ants_affine`);
* ``fire_affine``: FIRE with ``phi_af`` only, :func:`~firereg.inference.register_pair.register_pair`
  with ``affine_only=True`` (``firereg register --affine-only``);
* ``ants_syn``: ANTs SyN with MI (across modalities) or CC (within one);
* ``fire``: FIRE's full transform, :func:`~firereg.inference.register_pair.register_pair`
  (``firereg register``);
* ``fire_refine``, ``fire_refine_diffeo``: FIRE then per-pair refinement of the transforms in G's
  feature space (``register --refine``, with ``--diffeomorphic``);
* ``fire_refine_network``: a copy of the network fine-tuned on the pair with Eq. 1, then FIRE
  (``register --refine --refine-mode network``, its default 30 steps);
* ``fire_affine_image``: the network's affine, refined on the images by mutual information (or
  correlation within a modality; :mod:`firereg.inference.image_affine`), affine only;
* ``fire_refine_image``: that stage, the network's non-rigid fields predicted after its matrix,
  then ``fire_refine``'s feature-space refinement.

Each FIRE method is one ``register_pair`` call per pair, the path of ``firereg register``: ``G``
runs once on each image and ``T`` in both directions (for the inverse-consistency error); the
decoders never run (§3.4). The model is loaded once per experiment, outside the timings.

Per case and method (:func:`score`):

* **Dice** per structure between the warped moving labels and the fixed labels, on the fixed grid;
  a structure is scored in a case only when the fixed labels hold it (else null), and the case's
  mean Dice averages the scored structures;
* **HD95** per structure in mm (:func:`~firereg.evaluation.surface.hausdorff95_mm`), with the same
  rule; ``inf`` when the warped labels lost the structure;
* **folding %** and **log-Jacobian SD** of the *whole* transform (affine included) as one
  displacement in LPS mm on the fixed grid, computed the same way for every method
  (:mod:`firereg.evaluation.deformation`);
* **inverse-consistency error** in mm: FIRE's ``register_pair`` report (``phi_BA o phi_AB`` on
  the fixed model grid); null for ANTs and unaligned (not computed);
* **NCC** and **endpoint error** (mm), kind individual only: the moving image warped by the whole
  transform against the fixed (ground-truth aligned) image, and the transform against the known
  one, inside the fixed mask (:mod:`firereg.evaluation.individual`);
* **GPU timing**: when FIRE runs on the CPU, ``gpu_timing`` is on (the default) and a CUDA device
  is present, FIRE-affine and FIRE run a second time on the GPU, timed the same way
  (``gpu_timing`` in the case's scores; the scores themselves are the CPU run's), for Table 4's
  FIRE-CPU and FIRE-GPU columns in one run;
* **seconds**: ``registration`` is computing the transform (ANTs: the ``ants.registration`` call;
  FIRE: preprocessing both images + the network, + refinement or fine-tuning); ``total`` adds
  resampling the image and labels onto the fixed grid (ANTs: also composing its field; FIRE:
  also its folding and inverse-consistency report).

Before timing, every method runs once on the first case, untimed (warm-up: ANTs' worker process
start, first-call allocations in torch), so that the mean time per pair is the steady state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from firereg.config import to_dict
from firereg.data.image import Image
from firereg.evaluation.cases import EvalCase, describe_case
from firereg.evaluation.deformation import folding_percent, log_jacobian_std
from firereg.evaluation.experiment_config import EvaluationConfig
from firereg.evaluation.overlap import dice
from firereg.evaluation.surface import hausdorff95_mm
from firereg.inference.world import Grid, physical_from_voxel
from firereg.runtime import resolve_device

__all__ = ["MethodRun", "ExperimentRun", "MethodRunner", "score", "fire_displacement", "resolve_device",
           "run_experiment", "GPU_TIMED", "default_gpu_device", "gpu_note"]


@dataclass
class MethodRun:
    """One method's result on one case (see the module docstring).

    Attributes:
        warped_labels: the moving labels on the fixed grid.
        displacement: ``(*S_fixed, d)`` LPS mm: the whole transform ``T(x) = x + u(x)``.
        inverse_consistency_mm: None where not computed.
        registration_seconds, total_seconds: see the module docstring.
        extra: method-specific values for cases.json (e.g. FIRE's model-grid folding).
    """

    warped_labels: Image
    displacement: np.ndarray
    inverse_consistency_mm: float | None
    registration_seconds: float
    total_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)
    gpu_timing: dict[str, Any] | None = None


@dataclass
class ExperimentRun:
    """Everything an experiment produced, ready for :mod:`firereg.evaluation.tables`.

    Attributes:
        records: one dict per case: its identity (:func:`~firereg.evaluation.cases.describe_case`)
            and ``methods``: method -> scores (:func:`score`) or ``{"error": message}``.
        settings: method -> the exact settings used (ANTs' settings dicts, FIRE's model).
        example: the first case's images and each method's warped labels, for the report figure.
        seconds: wall time of the whole run (warm-up included).
    """

    records: list[dict[str, Any]]
    settings: dict[str, dict[str, Any]]
    example: dict[str, Any] | None
    seconds: float


def fire_displacement(affine: np.ndarray, warp: np.ndarray, fixed: Image) -> np.ndarray:
    """FIRE's whole transform ``T(x) = A (x + u(x))`` as a displacement ``T(x) - x`` (LPS mm) on
    the fixed grid, from a :class:`~firereg.inference.register_pair.PairResult`'s ``affine``
    ``(d+1, d+1)`` and ``warp`` ``(*S, d)``."""
    d = fixed.ndim
    m = physical_from_voxel(Grid(fixed.spatial_shape, fixed.affine))
    axes = [np.arange(s, dtype=np.float64) for s in fixed.spatial_shape]
    x = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1) @ m[:d, :d].T + m[:d, d]
    a = np.asarray(affine, dtype=np.float64)
    return (x + np.asarray(warp, dtype=np.float64)) @ a[:d, :d].T + a[:d, d] - x


def _finite_or_none(value: float | None) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def score(case: EvalCase, run: MethodRun, labels: dict[int, str]) -> dict[str, Any]:
    """The scores of one method on one case (module docstring); floats, ``inf`` and None."""
    warped = np.asarray(run.warped_labels.data)
    fixed = np.asarray(case.fixed_labels.data)
    if warped.shape != fixed.shape:
        raise ValueError(f"{case.id}: warped labels {warped.shape} are not on the fixed grid {fixed.shape}")
    present = {value for value in labels if (fixed == value).any()}
    overlap = dice(torch.as_tensor(warped), torch.as_tensor(fixed), sorted(present))
    spacing = case.fixed.spacing
    dice_by_name: dict[str, float | None] = {}
    hd95_by_name: dict[str, float | None] = {}
    for value, name in labels.items():
        if value in present:
            dice_by_name[name] = overlap[value]
            hd95_by_name[name] = hausdorff95_mm(warped == value, fixed == value, spacing)
        else:
            dice_by_name[name] = hd95_by_name[name] = None
    scored = [v for v in dice_by_name.values() if v is not None]
    grid = Grid(case.fixed.spatial_shape, case.fixed.affine)
    return {
        "dice": dice_by_name,
        "mean_dice": float(np.mean(scored)) if scored else None,
        "hd95_mm": hd95_by_name,
        "folding_percent": folding_percent(run.displacement, grid),
        "log_jacobian_std": _finite_or_none(log_jacobian_std(run.displacement, grid)),
        "inverse_consistency_mm": _finite_or_none(run.inverse_consistency_mm),
        "registration_seconds": float(run.registration_seconds),
        "total_seconds": float(run.total_seconds),
        **({"gpu_timing": run.gpu_timing} if run.gpu_timing else {}),
        **({"extra": run.extra} if run.extra else {}),
    }



GPU_TIMED = ("fire_affine", "fire")
"""The FIRE methods timed a second time on a GPU (Table 4's FIRE-GPU columns)."""


def _wants_gpu_timing(config: EvaluationConfig, device: str) -> bool:
    return config.gpu_timing and device == "cpu" and any(m in config.methods for m in GPU_TIMED)


def default_gpu_device(config: EvaluationConfig, device: str) -> str | None:
    """"cuda" when FIRE runs on the CPU, ``config.gpu_timing`` is on, a method of :data:`GPU_TIMED`
    is configured and a CUDA device is present."""
    return "cuda" if _wants_gpu_timing(config, device) and torch.cuda.is_available() else None


def gpu_note(config: EvaluationConfig, device: str) -> str | None:
    """What the timing table says when it has no FIRE-GPU columns (None: nothing to say)."""
    if _wants_gpu_timing(config, device) and not torch.cuda.is_available():
        return "FIRE on a GPU: not timed, no CUDA device on this machine"
    return None


class MethodRunner:
    """Runs the configured methods on a case; holds the model and the ANTs settings.

    Args:
        config: the experiment.
        model: the FIRE model (needed to run a FIRE method).
        selection: how the model was chosen (:func:`~firereg.pretrained.registry.select_model`).
        spacing: FIRE's model-grid spacing in mm.
        gpu_device: where to time FIRE-affine and FIRE a second time (scores stay the first
            run's); None: :func:`default_gpu_device`.
    """

    def __init__(self, config: EvaluationConfig, *, model=None, selection=None,
                 spacing: float | None = None, gpu_device: str | None = None) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self.model = model.ready_for_inference(self.device) if model is not None else None
        self.selection, self.spacing = selection, spacing
        self.settings: dict[str, dict[str, Any]] = {}
        self.gpu_device = gpu_device if gpu_device is not None else default_gpu_device(config, self.device)
        self.gpu_model = None
        if self.gpu_device is not None and model is not None:
            import copy

            self.gpu_model = copy.deepcopy(model).ready_for_inference(self.gpu_device)

    def _fire_settings(self, name: str, affine_only: bool, refine=None, finetune=None,
                       image_affine=None) -> dict[str, Any]:
        selection = self.selection
        return {"method": name, "refine": dataclasses.asdict(refine) if refine is not None else None,
                "finetune": dataclasses.asdict(finetune) if finetune is not None else None,
                "image_affine": dataclasses.asdict(image_affine) if image_affine is not None else None,
                "path": "firereg.inference.register_pair (as `firereg register"
                        + (" --affine-only`)" if affine_only else "`)"),
                "model": selection.model, "checkpoint": str(selection.checkpoint),
                "model_card": selection.card.to_dict() if selection.card is not None else None,
                "model_config": to_dict(self.model.config) if self.model is not None else None,
                "selection": selection.how, "direction": selection.direction,
                "spacing_mm": self.spacing, "affine_only": affine_only, "device": self.device,
                "torch_threads": torch.get_num_threads(),
                "transform": "affine phi_af only (u = 0)" if affine_only else "phi_af o phi_nr"}

    def _fire(self, case: EvalCase, affine_only: bool, name: str | None = None, refine=None,
              finetune=None, image_affine=None) -> MethodRun:
        from firereg.data.preprocessing import PreprocessConfig
        from firereg.inference.register_pair import register_pair

        if self.model is None or self.selection is None or self.spacing is None:
            raise ValueError("MethodRunner: the FIRE methods need the model, its selection and a spacing")
        def register(model, device):
            start = time.perf_counter()
            result = register_pair(model, case.moving, case.fixed, direction=self.selection.direction,
                                   moving_labels=case.moving_labels,
                                   preprocess_config=PreprocessConfig(spacing=self.spacing),
                                   affine_only=affine_only, device=device, refine=refine,
                                   finetune=finetune, image_affine=image_affine)
            return result, time.perf_counter() - start

        result, total = register(self.model, self.device)
        timings = result.report["timings"]
        name = name or ("fire_affine" if affine_only else "fire")
        gpu_timing = None
        if self.gpu_model is not None and name in GPU_TIMED:
            gpu_result, gpu_total = register(self.gpu_model, self.gpu_device)
            gpu = gpu_result.report["timings"]
            gpu_timing = {"device": str(self.gpu_device), "total_seconds": gpu_total,
                          "registration_seconds": gpu["preprocess_s"] + gpu["network_s"]}
        self.settings.setdefault(name, self._fire_settings(name, affine_only, refine, finetune,
                                                           image_affine))
        return MethodRun(
            warped_labels=result.warped_labels,
            displacement=fire_displacement(result.affine, result.warp, case.fixed),
            inverse_consistency_mm=result.report["inverse_consistency_mm"],
            registration_seconds=(timings["preprocess_s"] + timings["network_s"]
                                  + timings.get("refine_s", 0.0) + timings.get("finetune_s", 0.0)
                                  + timings.get("image_affine_s", 0.0)),
            total_seconds=total,
            extra={"model_grid_folding_percent": result.report["folding_percent"],
                   "model_grid_inverse_folding_percent": result.report["inverse_folding_percent"],
                   "timings": dict(timings), "refine": result.report.get("refine"),
                   "finetune": result.report.get("finetune"),
                   "image_affine": result.report.get("image_affine")},
            gpu_timing=gpu_timing)

    def _baseline(self, name: str, case: EvalCase) -> MethodRun:
        from firereg.evaluation import ants_baselines as ab

        ants = self.config.ants
        start = time.perf_counter()
        if name == "unaligned":
            result = ab.unaligned(case.moving, case.fixed, case.moving_labels)
        elif name == "ants_affine":
            result = ab.ants_affine(case.moving, case.fixed, moving_labels=case.moving_labels,
                                    threads=ants.threads, seed=ants.seed, **ants.affine)
        else:
            result = ab.ants_syn(case.moving, case.fixed, metric=self.config.syn_metric,
                                 moving_labels=case.moving_labels, threads=ants.threads, seed=ants.seed,
                                 **ants.syn)
        total = time.perf_counter() - start
        self.settings.setdefault(name, dict(result.settings))
        return MethodRun(warped_labels=result.warped_labels, displacement=result.displacement,
                         inverse_consistency_mm=None, registration_seconds=result.registration_seconds,
                         total_seconds=result.total_seconds,
                         extra={"wall_seconds_with_worker_transfer": total} if ants.threads else {})

    def run(self, method: str, case: EvalCase) -> MethodRun:
        """Register ``case`` with ``method`` (one of the configured methods)."""
        if method == "fire_affine":
            return self._fire(case, affine_only=True)
        if method == "fire":
            return self._fire(case, affine_only=False)
        if method in ("fire_refine", "fire_refine_diffeo"):
            from firereg.inference.refine import RefineConfig

            refine = RefineConfig(diffeomorphic=method == "fire_refine_diffeo")
            return self._fire(case, affine_only=False, name=method, refine=refine)
        if method in ("fire_affine_image", "fire_refine_image"):
            from firereg.inference.image_affine import ImageAffineConfig, metric_for
            from firereg.inference.refine import RefineConfig

            image_affine = ImageAffineConfig(metric=metric_for(self.config.modality_moving,
                                                               self.config.modality_fixed))
            refine = RefineConfig() if method == "fire_refine_image" else None
            return self._fire(case, affine_only=method == "fire_affine_image", name=method,
                              refine=refine, image_affine=image_affine)
        if method == "fire_refine_network":
            from firereg.inference.finetune import FinetuneConfig

            return self._fire(case, affine_only=False, name=method, finetune=FinetuneConfig())
        return self._baseline(method, case)


def _example(case: EvalCase, runs: dict[str, MethodRun]) -> dict[str, Any]:
    return {"id": case.id, "fixed": np.asarray(case.fixed.data), "moving": np.asarray(case.moving.data),
            "fixed_labels": np.asarray(case.fixed_labels.data),
            "moving_labels": np.asarray(case.moving_labels.data),
            "spacing": case.fixed.spacing,
            "warped_labels": {m: np.asarray(r.warped_labels.data) for m, r in runs.items()}}


def run_experiment(
    config: EvaluationConfig,
    cases: Sequence[EvalCase],
    *,
    model=None,
    selection=None,
    spacing: float | None = None,
    progress: bool = True,
    warm_up: bool = True,
    on_case: Callable[[dict[str, Any]], None] | None = None,
    gpu_device: str | None = None,
) -> ExperimentRun:
    """Run every configured method on every case (module docstring).

    A method that raises on a case is recorded as ``{"error": ...}`` for that case (and reported
    on stderr); the others go on. KeyboardInterrupt stops the run. ``config.torch_threads`` is set
    for the run and restored after it.
    """
    if not cases:
        raise ValueError(f"{config.name}: no case to evaluate")
    threads = torch.get_num_threads()
    if config.torch_threads is not None:
        torch.set_num_threads(config.torch_threads)
    try:
        return _run(config, cases, model=model, selection=selection, spacing=spacing, progress=progress,
                    warm_up=warm_up, on_case=on_case, gpu_device=gpu_device)
    finally:
        torch.set_num_threads(threads)


def _run(config: EvaluationConfig, cases: Sequence[EvalCase], *, model, selection, spacing: float | None,
         progress: bool, warm_up: bool, on_case: Callable[[dict[str, Any]], None] | None,
         gpu_device: str | None) -> ExperimentRun:
    from tqdm import tqdm

    runner = MethodRunner(config, model=model, selection=selection, spacing=spacing, gpu_device=gpu_device)
    start = time.perf_counter()
    if warm_up:
        for method in config.methods:
            with contextlib.suppress(Exception):  # a failure is reported by the timed run
                runner.run(method, cases[0])
    labels = config.label_table
    records: list[dict[str, Any]] = []
    example = None
    with tqdm(total=len(cases), desc=f"evaluate {config.name}", unit="pair", disable=not progress,
              file=sys.stderr) as bar:
        for index, case in enumerate(cases):
            record = describe_case(case)
            record["methods"] = {}
            runs: dict[str, MethodRun] = {}
            truth = None
            for method in config.methods:
                try:
                    runs[method] = runner.run(method, case)
                    record["methods"][method] = score(case, runs[method], labels)
                    if config.kind == "individual":  # no labels: NCC and endpoint error
                        from firereg.evaluation.individual import case_truth, individual_scores

                        truth = truth if truth is not None else case_truth(case)
                        record["methods"][method].update(
                            individual_scores(case, runs[method].displacement, truth))
                except Exception as exc:  # one failure must not lose the run
                    message = f"{type(exc).__name__}: {exc}"
                    record["methods"][method] = {"error": message}
                    bar.write(f"firereg evaluate: {case.id}: {method} failed: {message}", file=sys.stderr)
            if index == 0:
                example = _example(case, runs)
            records.append(record)
            if on_case is not None:
                on_case(record)
            bar.update(1)
    return ExperimentRun(records=records, settings=runner.settings, example=example,
                         seconds=time.perf_counter() - start)
