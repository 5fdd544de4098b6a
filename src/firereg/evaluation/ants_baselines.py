"""Baselines to compare FIRE with: no registration, ANTs affine and ANTs SyN (through antspyx).

Every baseline returns a :class:`BaselineResult` on the *fixed* image's grid, with the same kinds
of output as :func:`firereg.inference.register_pair.register_pair`: the warped moving image, the
warped labels, and the whole transform as one displacement field in LPS mm on the fixed grid
(``T(x) = x + u(x)``, fixed point -> moving point, ITK's convention), so that
:mod:`firereg.evaluation.deformation` computes folding and log-Jacobian spread the same way for
ANTs and FIRE.

ANTs settings are those of ``ants.registration`` (antspyx, whose defaults follow ANTs' own
scripts) and are written, as used, into ``BaselineResult.settings``:

* **affine**: ``type_of_transform="Affine"``, Mattes mutual information (``aff_metric="mattes"``,
  32 bins, regular sampling of 20% of the voxels), initialized by aligning the centres of mass;
* **SyN**: ``type_of_transform="SyN"``: the same affine stage (antspyx fixes its schedule to
  2100x1200x1200x0 iterations, shrink factors 4x2x2x1, smoothing 3x2x1x0 voxels) followed by
  symmetric normalization with ``syn_metric="mattes"`` (MI, 32 bins: across modalities) or
  ``"CC"`` (neighbourhood cross-correlation, radius 4: within a modality).

Threads and reproducibility. ANTs takes its thread count from the environment variable
``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``, but ITK reads it only once per process, when the first
ANTs image is created (checked with antspyx 0.6.3: setting it later has no effect). So with
``threads=n`` the baseline runs in a worker process started (``spawn``) with the variable set to
``n``; one worker per thread count is kept and reused, so its start-up (about two seconds of
imports) is paid once. With ``threads=None`` ANTs runs in this process with whatever thread count
ITK fixed here (all cores unless the variable was set before the first ANTs image). Because the
worker is spawned, a *script* calling a baseline with ``threads=n`` needs the usual
``if __name__ == "__main__":`` guard (the worker re-imports it); without one the worker dies while
starting and the call raises a RuntimeError that says so, instead of hanging. The worker ignores
SIGINT (a Ctrl-C in a terminal reaches every process of the group): an interrupt is the calling
process's to handle, and it ends the workers itself (:func:`stop_workers`: SIGTERM, a bounded
wait, then SIGKILL), so that nothing waits on a registration still running in a worker. The random
seed goes to ``antsRegistration --random-seed`` (antspyx 0.6 reads it from
``ants.config._random_seed``, which is set for the call only; older releases take a
``random_seed`` argument). A fixed seed with ``threads=1`` gives identical results run after run;
with several threads, the metric's sums may vary slightly.

Timings: ``registration_seconds`` is the ``ants.registration`` call alone; ``total_seconds`` adds
the conversions, resampling of the image and labels, and composing the displacement field (not
the worker's start-up).
"""

from __future__ import annotations

import inspect
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from firereg.data.image import Image
from firereg.evaluation.ants_io import from_ants, import_ants, to_ants
from firereg.inference.world import Grid, sampling_points
from firereg.spatial import grid_to_displacement, warp_labels

__all__ = ["BaselineResult", "unaligned", "ants_affine", "ants_syn", "stop_workers", "THREADS_ENV"]

THREADS_ENV = "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"

# antspyx's "SyN" runs this affine stage whatever aff_iterations says (antspyx 0.6).
_SYN_AFFINE_STAGE = {"iterations": [2100, 1200, 1200, 0], "shrink_factors": [4, 2, 2, 1],
                     "smoothing_sigmas": [3, 2, 1, 0], "gradient_step": 0.25}
_SYN_METRICS = {"mi": ("mattes", 32), "cc": ("CC", 4)}


@dataclass
class BaselineResult:
    """One baseline's result, on the fixed image's grid.

    Attributes:
        method: ``"unaligned"``, ``"ants_affine"``, ``"ants_syn_mi"`` or ``"ants_syn_cc"``.
        warped: the moving image resampled on the fixed grid (linear interpolation, 0 outside).
        warped_labels: the moving labels on the fixed grid (int32), or None.
        displacement: ``(*S_fixed, d)`` float64, LPS mm: ``T(x) = x + u(x)`` maps each fixed voxel
            centre to the moving point it was read from (the whole transform, affine included).
        settings: the exact settings used (JSON-serializable).
        registration_seconds: time of the registration itself (0 for ``unaligned``).
        total_seconds: registration plus conversion, resampling and field composition.
        transforms: ANTs' forward transform files in ``ants.apply_transforms`` order, when a
            ``work_dir`` kept them; empty otherwise.
    """

    method: str
    warped: Image
    warped_labels: Image | None
    displacement: np.ndarray
    settings: dict[str, Any]
    registration_seconds: float
    total_seconds: float
    transforms: tuple[str, ...] = field(default_factory=tuple)


def _check_inputs(moving: Image, fixed: Image, moving_labels: Image | None, caller: str) -> None:
    for name, image in (("moving", moving), ("fixed", fixed)):
        if not isinstance(image, Image) or image.is_series:
            raise ValueError(f"{caller}: {name} must be a still 2D or 3D Image")
    if moving.ndim != fixed.ndim:
        raise ValueError(f"{caller}: moving is {moving.ndim}D and fixed {fixed.ndim}D")
    if moving_labels is not None and (
            moving_labels.spatial_shape != moving.spatial_shape
            or not np.allclose(moving_labels.affine, moving.affine, atol=1e-4)):
        raise ValueError(f"{moving_labels.source or caller}: the label map's grid does not match the "
                         "moving image's (shape or affine differ)")


def unaligned(moving: Image, fixed: Image, moving_labels: Image | None = None) -> BaselineResult:
    """The moving image on the fixed grid under the identity *in world space* (no registration).

    Each fixed voxel centre reads the moving image at the same world point: linear interpolation
    for the image, nearest neighbour for labels, 0 outside the moving field of view. Needs no ANTs.
    """
    start = time.perf_counter()
    _check_inputs(moving, fixed, moving_labels, "unaligned")
    d = fixed.ndim
    points = sampling_points(Grid(fixed.spatial_shape, fixed.affine),
                             Grid(moving.spatial_shape, moving.affine), dtype=torch.float64)
    warped = F.grid_sample(moving.tensor(torch.float64), points, align_corners=True)[0, 0]
    warped_labels = None
    if moving_labels is not None:
        moved = warp_labels(moving_labels.tensor(torch.int64), grid_to_displacement(points),
                            method="nearest")
        warped_labels = Image(moved[0, 0].numpy().astype(np.int32), fixed.affine, d,
                              source=moving_labels.source)
    settings = {"method": "unaligned", "type_of_transform": "Identity (world space)",
                "interpolator": "linear", "label_interpolator": "nearest"}
    return BaselineResult(
        method="unaligned",
        warped=Image(warped.numpy().astype(np.float32), fixed.affine, d, source=moving.source),
        warped_labels=warped_labels,
        displacement=np.zeros((*fixed.spatial_shape, d)),
        settings=settings, registration_seconds=0.0, total_seconds=time.perf_counter() - start)


@contextmanager
def _environment_variable(name: str, value: str | None) -> Iterator[None]:
    """Set (or, for None, leave alone) an environment variable for the duration of a block."""
    old = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if value is not None:
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


@contextmanager
def _ants_seed(ants: Any, seed: int, via_config: bool) -> Iterator[None]:
    """Set antspyx's random seed for the duration of one call (antspyx >= 0.6 reads it from config)."""
    if not via_config:
        yield
        return
    old = getattr(ants.config, "_random_seed", None)
    ants.config._random_seed = int(seed)
    try:
        yield
    finally:
        ants.config._random_seed = old


_WORKERS: dict[int, Any] = {}


def _set_threads_env(threads: int) -> None:
    os.environ[THREADS_ENV] = str(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller handles Ctrl-C (module docstring)


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT for a block, so that a process started in it inherits SIG_IGN (Python then
    keeps it ignored: no KeyboardInterrupt traceback from a worker's start-up). Only the main
    thread can change signal handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _worker(threads: int) -> Any:
    """A one-process executor whose ITK uses ``threads`` threads (started with the variable set).

    An executor rather than a ``multiprocessing.Pool``: when the worker dies (most often because
    the caller's script has no ``if __name__ == "__main__":`` guard, so the spawned worker re-runs
    it and fails while starting), the executor reports it instead of restarting workers forever.
    """
    pool = _WORKERS.get(threads)
    if pool is None:
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        with _environment_variable(THREADS_ENV, str(threads)):  # inherited before ITK can start
            pool = ProcessPoolExecutor(1, mp_context=context, initializer=_set_threads_env,
                                       initargs=(threads,))
        _WORKERS[threads] = pool
    return pool


def stop_workers(timeout: float = 2.0) -> None:
    """End every ANTs worker process now, whatever it is doing: SIGTERM, at most ``timeout``
    seconds' wait, then SIGKILL. For an interrupt: a registration running in a worker is not
    waited for (the executor's own shutdown, and Python's exit, would join it for as long as
    ANTs runs). A later baseline call starts a new worker."""
    pools = list(_WORKERS.values())
    _WORKERS.clear()
    processes = [p for pool in pools for p in list((getattr(pool, "_processes", None) or {}).values())]
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        with suppress(KeyboardInterrupt):  # a second Ctrl-C: stop waiting, kill
            process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join(1.0)
    for pool in pools:  # the processes are gone: its manager thread ends at once
        pool.shutdown(wait=False, cancel_futures=True)


def _in_worker(threads: int, function: Callable[..., Any], args: tuple) -> Any:
    """``function(*args)`` in the ``threads`` worker; a worker that died is a clear error, and an
    interrupt (KeyboardInterrupt) ends the worker before it propagates."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        with _sigint_ignored():  # the worker starts here, on its first call
            future = _worker(threads).submit(function, *args)
        return future.result()
    except BrokenProcessPool:
        _WORKERS.pop(threads, None)
        raise RuntimeError(
            "the ANTs worker process (started because threads= was given) died. If this is a "
            "script, put its code under `if __name__ == \"__main__\":`: the worker is started with "
            "'spawn', which re-imports the script; or pass threads=None to run ANTs in this "
            "process") from None
    except (KeyboardInterrupt, SystemExit):  # do not leave ANTs running in the worker
        stop_workers()
        raise


def _check_threads(threads: int | None, caller: str) -> None:
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise ValueError(f"{caller}: threads must be a positive int or None, got {threads!r}")


def _tuple_of_ints(values: Sequence[int], name: str, caller: str) -> tuple[int, ...]:
    out = tuple(int(v) for v in values)
    if not out or any(v < 0 for v in out):
        raise ValueError(f"{caller}: {name} must be a non-empty sequence of ints >= 0, got {values!r}")
    return out


def _run_ants(
    method: str,
    moving: Image,
    fixed: Image,
    moving_labels: Image | None,
    registration_kwargs: dict[str, Any],
    settings: dict[str, Any],
    *,
    threads: int | None,
    seed: int,
    work_dir: str | os.PathLike | None,
) -> BaselineResult:
    _check_inputs(moving, fixed, moving_labels, method)
    _check_threads(threads, method)
    args = (method, moving, fixed, moving_labels, registration_kwargs, settings, threads, seed,
            None if work_dir is None else str(work_dir))
    if threads is None:
        return _register_with_ants(*args)
    return _in_worker(threads, _register_with_ants, args)


def _register_with_ants(
    method: str,
    moving: Image,
    fixed: Image,
    moving_labels: Image | None,
    registration_kwargs: dict[str, Any],
    settings: dict[str, Any],
    threads: int | None,
    seed: int,
    work_dir: str | None,
) -> BaselineResult:
    """The ANTs part of :func:`_run_ants`, in this process or in a worker."""
    start = time.perf_counter()
    ants = import_ants()
    d = fixed.ndim
    fixed_a, moving_a = to_ants(fixed.with_data(np.asarray(fixed.data, dtype=np.float32))), to_ants(
        moving.with_data(np.asarray(moving.data, dtype=np.float32)))
    seed_via_config = "random_seed" not in inspect.signature(ants.registration).parameters
    kwargs = dict(registration_kwargs)
    if not seed_via_config:
        kwargs["random_seed"] = int(seed)
    settings = {
        "method": method,
        "antspyx_version": getattr(ants, "__version__", "unknown"),
        **settings,
        "initial_transform": "centres of mass aligned ([fixed,moving,1])",
        "random_seed": int(seed),
        "threads": threads if threads is not None else "ITK's count in the calling process",
        "interpolator": "linear",
        "label_interpolator": "genericLabel",
        "field": "forward transforms composed by antsApplyTransforms into one LPS mm displacement field",
    }
    with tempfile.TemporaryDirectory(prefix="firereg_ants_") as tmp:
        out_dir = Path(work_dir) if work_dir is not None else Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        prefix = str(out_dir / f"{method}_")
        with _ants_seed(ants, seed, seed_via_config):
            reg_start = time.perf_counter()
            reg = ants.registration(fixed_a, moving_a, outprefix=prefix, verbose=False, **kwargs)
            registration_seconds = time.perf_counter() - reg_start
            forward = list(reg["fwdtransforms"])
            invert = [False] * len(forward)
            warped = ants.apply_transforms(fixed_a, moving_a, forward, interpolator="linear",
                                           whichtoinvert=invert)
            warped_labels = None
            if moving_labels is not None:
                labels_a = to_ants(moving_labels.with_data(np.asarray(moving_labels.data, np.float32)))
                moved = ants.apply_transforms(fixed_a, labels_a, forward, interpolator="genericLabel",
                                              whichtoinvert=invert)
                warped_labels = Image(from_ants(moved, dtype=np.int32).data, fixed.affine, d,
                                      source=moving_labels.source)
            field_file = ants.apply_transforms(fixed_a, moving_a, forward, whichtoinvert=invert,
                                               compose=str(out_dir / f"{method}_composed_"))
            if field_file is None:
                raise RuntimeError(f"{method}: antsApplyTransforms did not write the composed field")
            displacement = np.asarray(ants.image_read(field_file).numpy(), dtype=np.float64)
        transforms = tuple(forward) if work_dir is not None else ()
    if displacement.shape != (*fixed.spatial_shape, d):
        raise RuntimeError(f"{method}: the composed field has shape {displacement.shape}, expected "
                           f"{(*fixed.spatial_shape, d)}")
    return BaselineResult(
        method=method,
        warped=Image(warped.numpy().astype(np.float32), fixed.affine, d, source=moving.source),
        warped_labels=warped_labels,
        displacement=displacement,
        settings=settings,
        registration_seconds=registration_seconds,
        total_seconds=time.perf_counter() - start,
        transforms=transforms,
    )


def ants_affine(
    moving: Image,
    fixed: Image,
    *,
    moving_labels: Image | None = None,
    threads: int | None = None,
    seed: int = 0,
    aff_iterations: Sequence[int] = (2100, 1200, 1200, 10),
    aff_shrink_factors: Sequence[int] = (6, 4, 2, 1),
    aff_smoothing_sigmas: Sequence[int] = (3, 2, 1, 0),
    aff_sampling: int = 32,
    aff_random_sampling_rate: float = 0.2,
    work_dir: str | os.PathLike | None = None,
) -> BaselineResult:
    """ANTs affine registration (Mattes mutual information) of ``moving`` onto ``fixed``.

    Args:
        moving, fixed: still images of one dimensionality (2D or 3D), any grids.
        moving_labels: integer labels on the moving grid, warped with ``genericLabel``.
        threads: ITK threads (module docstring); None leaves the environment as it is.
        seed: ANTs' random seed (the metric's sampling).
        aff_iterations, aff_shrink_factors, aff_smoothing_sigmas: the multi-resolution schedule,
            one entry per level (smoothing in voxels); antspyx's defaults.
        aff_sampling: histogram bins; aff_random_sampling_rate: fraction of voxels sampled.
        work_dir: keep ANTs' transform files here (``<work_dir>/ants_affine_0GenericAffine.mat``);
            by default they go to a temporary folder that is removed.
    """
    caller = "ants_affine"
    iterations = _tuple_of_ints(aff_iterations, "aff_iterations", caller)
    shrink = _tuple_of_ints(aff_shrink_factors, "aff_shrink_factors", caller)
    smoothing = _tuple_of_ints(aff_smoothing_sigmas, "aff_smoothing_sigmas", caller)
    if not len(iterations) == len(shrink) == len(smoothing):
        raise ValueError(f"{caller}: aff_iterations, aff_shrink_factors and aff_smoothing_sigmas need one "
                         "entry per level each")
    kwargs = {"type_of_transform": "Affine", "aff_metric": "mattes", "aff_sampling": int(aff_sampling),
              "aff_random_sampling_rate": float(aff_random_sampling_rate), "aff_iterations": iterations,
              "aff_shrink_factors": shrink, "aff_smoothing_sigmas": smoothing}
    settings = {"type_of_transform": "Affine", "aff_metric": "mattes", "aff_sampling": int(aff_sampling),
                "aff_sampling_strategy": "regular",
                "aff_random_sampling_rate": float(aff_random_sampling_rate),
                "aff_gradient_step": 0.25, "aff_iterations": list(iterations),
                "aff_shrink_factors": list(shrink), "aff_smoothing_sigmas": list(smoothing)}
    return _run_ants("ants_affine", moving, fixed, moving_labels, kwargs, settings, threads=threads,
                     seed=seed, work_dir=work_dir)


def ants_syn(
    moving: Image,
    fixed: Image,
    *,
    metric: Literal["mi", "cc"],
    moving_labels: Image | None = None,
    threads: int | None = None,
    seed: int = 0,
    reg_iterations: Sequence[int] = (40, 20, 0),
    syn_sampling: int | None = None,
    grad_step: float = 0.2,
    flow_sigma: float = 3.0,
    total_sigma: float = 0.0,
    aff_sampling: int = 32,
    aff_random_sampling_rate: float = 0.2,
    work_dir: str | os.PathLike | None = None,
) -> BaselineResult:
    """ANTs SyN (affine stage, then symmetric normalization) of ``moving`` onto ``fixed``.

    Args:
        metric: ``"mi"`` (Mattes mutual information, for different modalities) or ``"cc"``
            (neighbourhood cross-correlation, for one modality).
        reg_iterations: SyN iterations per level, coarsest first; level ``l`` of ``L`` is shrunk by
            ``2^(L-1-l)`` and smoothed by ``L-1-l`` voxels (antspyx's rule).
        syn_sampling: histogram bins (MI, default 32) or correlation radius in voxels (CC,
            default 4).
        grad_step, flow_sigma, total_sigma: ``SyN[grad_step, flow_sigma, total_sigma]``.
        Others as :func:`ants_affine`; the affine stage's schedule is fixed by antspyx
            (recorded in ``settings["affine_stage"]``).
    """
    caller = "ants_syn"
    if metric not in _SYN_METRICS:
        raise ValueError(f"{caller}: metric must be 'mi' or 'cc', got {metric!r}")
    syn_metric, default_sampling = _SYN_METRICS[metric]
    sampling = default_sampling if syn_sampling is None else int(syn_sampling)
    iterations = _tuple_of_ints(reg_iterations, "reg_iterations", caller)
    levels = len(iterations)
    kwargs = {"type_of_transform": "SyN", "aff_metric": "mattes", "aff_sampling": int(aff_sampling),
              "aff_random_sampling_rate": float(aff_random_sampling_rate), "syn_metric": syn_metric,
              "syn_sampling": sampling, "reg_iterations": iterations, "grad_step": float(grad_step),
              "flow_sigma": float(flow_sigma), "total_sigma": float(total_sigma)}
    settings = {"type_of_transform": "SyN",
                "affine_stage": {"aff_metric": "mattes", "aff_sampling": int(aff_sampling),
                                 "aff_sampling_strategy": "regular",
                                 "aff_random_sampling_rate": float(aff_random_sampling_rate),
                                 **_SYN_AFFINE_STAGE},
                "syn_metric": syn_metric, "syn_sampling": sampling,
                "reg_iterations": list(iterations),
                "syn_shrink_factors": [2 ** (levels - 1 - lvl) for lvl in range(levels)],
                "syn_smoothing_sigmas": [levels - 1 - lvl for lvl in range(levels)],
                "syn_convergence": "[reg_iterations,1e-7,8]",
                "grad_step": float(grad_step), "flow_sigma": float(flow_sigma),
                "total_sigma": float(total_sigma)}
    return _run_ants(f"ants_syn_{metric}", moving, fixed, moving_labels, kwargs, settings,
                     threads=threads, seed=seed, work_dir=work_dir)
