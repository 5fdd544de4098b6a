"""Register one pair of NIfTI images with a trained FIRE model, in world coordinates.

Both images are preprocessed onto model grids of one common shape (each centred on its own field
of view), the model runs G and one transformation network per direction (no decoders, §3.4), and
every result goes back to the *original* grids through world coordinates: the warped moving image
is resampled once from the original moving image at ``T(x) = A (x + u(x))`` for every voxel ``x``
of the original fixed grid.

An untrained network outputs the identity in normalized coordinates, which aligns the *centres*
of the two fields of view: the exported physical affine then holds the offset between them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from firereg.data.image import Image
from firereg.data.preprocessing import PreprocessConfig, Preprocessed, model_grid, preprocess
from firereg.evaluation.deformation import folding_percent, inverse_consistency_mm
from firereg.inference.finetune import FinetuneConfig, finetune_pair
from firereg.inference.image_affine import ImageAffineConfig, refine_affine_image
from firereg.inference.refine import RefineConfig, refine_pair
from firereg.inference.world import Grid, map_to_moving, physical_affine, physical_displacement
from firereg.model import FireModel
from firereg.spatial import compose, grid_to_displacement, warp_labels
from firereg.spatial.affine import invert_affine

__all__ = ["PairResult", "register_pair", "common_model_shape"]


@dataclass
class PairResult:
    """Everything :func:`register_pair` computed, on the original grids.

    Attributes:
        warped: the moving image on the fixed grid (original intensities).
        warped_labels: the moving labels on the fixed grid, when labels were given.
        affine, inverse_affine: ``(d+1, d+1)`` LPS physical affines (fixed -> moving points, and
            moving -> fixed points from the B->A network).
        warp, inverse_warp: ``(*S, d)`` LPS displacements in mm on the fixed / moving grid.
        report: timings per stage, folding, inverse consistency, model description.
    """

    warped: Image
    warped_labels: Image | None
    affine: np.ndarray
    inverse_affine: np.ndarray
    warp: np.ndarray
    inverse_warp: np.ndarray
    report: dict[str, Any] = field(default_factory=dict)


def common_model_shape(a: Image, b: Image, config: PreprocessConfig) -> tuple[int, ...]:
    """The per-axis maximum of both images' natural model-grid shapes."""
    shape_a, _ = model_grid(a, config)
    shape_b, _ = model_grid(b, config)
    return tuple(max(x, y) for x, y in zip(shape_a, shape_b, strict=True))


def _grid(p: Preprocessed) -> Grid:
    return Grid(p.shape, p.image.affine)


def register_pair(
    model: FireModel,
    moving: Image,
    fixed: Image,
    *,
    direction: str = "ab",
    moving_labels: Image | None = None,
    preprocess_config: PreprocessConfig | None = None,
    affine_only: bool = False,
    device: str | torch.device = "cpu",
    refine: RefineConfig | None = None,
    finetune: FinetuneConfig | None = None,
    image_affine: ImageAffineConfig | None = None,
) -> PairResult:
    """Register ``moving`` onto ``fixed`` (``direction="ab"``: moving is modality A).

    Args:
        moving, fixed: still 2D or 3D images matching ``model.config.ndim``.
        moving_labels: a label map on the moving image's grid, warped label-aware.
        affine_only: use ``phi_af`` only (the non-rigid field is set to zero in the outputs).
        refine: when given, both directions are refined on this pair in feature space
            (:mod:`firereg.inference.refine`) before the outputs are made; report["refine"]
            records the steps and the objective before and after.
        finetune: when given, a copy of the network is first trained on this pair with Eq. 1
            (:mod:`firereg.inference.finetune`, ``--refine-mode network``); report["finetune"].
        image_affine: when given, the network's forward affine is first refined on the images
            (:mod:`firereg.inference.image_affine`), the backward one set to its inverse, and the
            non-rigid fields predicted again after them; report["image_affine"].
    """
    ndim = model.config.ndim
    for name, image in (("moving", moving), ("fixed", fixed)):
        if image.ndim != ndim or image.is_series:
            raise ValueError(f"{image.source or name}: a {ndim}D model needs a single {ndim}D "
                             f"image, got a {image.ndim}D {'series' if image.is_series else 'image'}")
    timings: dict[str, float] = {}
    start = time.perf_counter()
    base = preprocess_config or PreprocessConfig()
    shape = common_model_shape(moving, fixed, base)
    config = PreprocessConfig(spacing=base.spacing, multiple=base.multiple, min_size=base.min_size,
                              shape=shape, percentiles=base.percentiles, orient=base.orient)
    pre_moving, pre_fixed = preprocess(moving, config), preprocess(fixed, config)
    timings["preprocess_s"] = time.perf_counter() - start

    model = model.ready_for_inference(device)
    x_m, x_f = pre_moving.tensor().to(device), pre_fixed.tensor().to(device)
    finetune_report = None
    if finetune is not None:
        start = time.perf_counter()
        model, finetune_report = finetune_pair(model, x_m, x_f, direction, finetune)
        timings["finetune_s"] = time.perf_counter() - start
    start = time.perf_counter()
    # no_grad rather than inference_mode: refinement reuses G's features inside autograd
    with torch.no_grad():
        features = model.encode_pair(x_m, x_f)
    affines = None
    image_affine_report = None
    if image_affine is not None:  # the affine subnets first, the non-rigid ones after the stage
        with torch.no_grad():
            net_affines = model.affines_both(direction, features)
        network_s = time.perf_counter() - start
        start = time.perf_counter()
        theta, image_affine_report = refine_affine_image(x_m, x_f, net_affines[0], image_affine)
        affines = (theta, invert_affine(theta)) if image_affine_report["kept"] else net_affines
        timings["image_affine_s"] = time.perf_counter() - start
        start = time.perf_counter()
    else:
        network_s = 0.0
    with torch.no_grad():
        forward, backward = model.register_both(x_m, x_f, direction, features=features, affines=affines)
    if device != "cpu" and torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    timings["network_s"] = network_s + time.perf_counter() - start
    net_fwd = (forward.affine, forward.nonrigid)
    net_bwd = (backward.affine, backward.nonrigid)
    refine_report = None
    if refine is not None:
        start = time.perf_counter()
        refined = refine_pair(model, x_m, x_f, direction, (*net_fwd, *net_bwd), refine,
                              affine_only=affine_only, features=features)
        net_fwd = (refined.affine_fwd, refined.nonrigid_fwd)
        net_bwd = (refined.affine_bwd, refined.nonrigid_bwd)
        refine_report = refined.report
        timings["refine_s"] = time.perf_counter() - start

    start = time.perf_counter()
    fwd_u = net_fwd[1].detach().double().cpu() * (0.0 if affine_only else 1.0)
    bwd_u = net_bwd[1].detach().double().cpu() * (0.0 if affine_only else 1.0)
    fwd_theta, bwd_theta = net_fwd[0].detach().double().cpu(), net_bwd[0].detach().double().cpu()
    fixed_model, moving_model = _grid(pre_fixed), _grid(pre_moving)
    fixed_grid = Grid(fixed.spatial_shape, fixed.affine)
    moving_grid = Grid(moving.spatial_shape, moving.affine)

    points = map_to_moving(fwd_theta, fwd_u, fixed_model, moving_model, fixed_grid, moving_grid)
    warped = F.grid_sample(moving.tensor(torch.float64), points, align_corners=True)[0, 0]
    warped_labels = None
    if moving_labels is not None:
        if moving_labels.spatial_shape != moving.spatial_shape or not np.allclose(
                moving_labels.affine, moving.affine, atol=1e-4):
            raise ValueError(f"{moving_labels.source or 'labels'}: the label map's grid does not "
                             "match the moving image's (shape or affine differ)")
        moved = warp_labels(moving_labels.tensor(torch.int64), grid_to_displacement(points))
        warped_labels = Image(moved[0, 0].numpy().astype(np.int32), fixed.affine, ndim,
                              source=moving_labels.source)
    result = PairResult(
        warped=Image(warped.numpy().astype(np.float32), fixed.affine, ndim, source=moving.source),
        warped_labels=warped_labels,
        affine=physical_affine(fwd_theta[0], fixed_model, moving_model),
        inverse_affine=physical_affine(bwd_theta[0], moving_model, fixed_model),
        warp=physical_displacement(fwd_u, fixed_model, fixed_grid),
        inverse_warp=physical_displacement(bwd_u, moving_model, moving_grid),
    )
    phi_ab = compose(fwd_theta, fwd_u, shape)
    phi_ba = compose(bwd_theta, bwd_u, shape)
    timings["resample_s"] = time.perf_counter() - start
    result.report = {
        "direction": direction,
        "affine_only": affine_only,
        "model_grid_shape": list(shape),
        "model_grid_spacing_mm": config.spacing,
        "folding_percent": folding_percent(phi_ab, fixed_model, moving_model),
        "inverse_folding_percent": folding_percent(phi_ba, moving_model, fixed_model),
        "inverse_consistency_mm": inverse_consistency_mm(phi_ab, phi_ba, fixed_model),
        "timings": timings,
        "image_affine": image_affine_report,
        "refine": refine_report,
        "finetune": finetune_report,
    }
    return result
