"""One pass of the FIRE model's pieces over a preprocessed pair, every quantity the figures show.

The images are put on model grids as :func:`firereg.inference.register_pair.register_pair` does
(one common shape, each centred on its own field of view, intensities in [-1, 1]), and G, T and
both decoders run on them exactly as :meth:`firereg.model.FireModel.forward` wires them (§3.1).
Everything is returned as numpy arrays on the *fixed model grid* (images) or the feature grid
(latent maps), with no batch axis.

Notation: ``A`` is always the *moving* image and ``B`` the *fixed* one, so ``phi_AB`` registers
the moving image onto the fixed one. For a model used in direction ``"ba"`` (the moving image is
the model's modality B) the model's own ``T_BA``, ``F_BA`` play the roles of ``T_AB``, ``F_AB``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from firereg.data.image import Image
from firereg.data.preprocessing import PreprocessConfig, preprocess
from firereg.evaluation.deformation import (
    inverse_consistency_mm,
    jacobian_determinant_mm,
    normalized_to_physical,
)
from firereg.inference.register_pair import common_model_shape
from firereg.inference.world import Grid
from firereg.model import FireModel
from firereg.model.fire import PADDING
from firereg.spatial import sampling_grid, warp, warp_labels
from firereg.spatial.frames import identity_grid
from firereg.spatial.resample import resize_field

__all__ = ["PairAnalysis", "ModelPieces", "analyse_pair", "model_pieces", "prepare_pair", "PreparedPair"]


@dataclass(frozen=True)
class ModelPieces:
    """The networks of one registration direction, named moving -> fixed.

    Attributes:
        transform: T_AB (moving onto fixed); ``inverse_transform``: T_BA.
        to_fixed: F_AB, synthesizes the fixed image's modality from G's features.
        to_moving: F_BA, synthesizes the moving image's modality.
    """

    encoder: torch.nn.Module
    transform: torch.nn.Module
    inverse_transform: torch.nn.Module
    to_fixed: torch.nn.Module
    to_moving: torch.nn.Module


def model_pieces(model: FireModel, direction: str) -> ModelPieces:
    """The networks that register a moving image of the model's modality A (``"ab"``) or B."""
    forward_net = model.transformation_net(direction)  # refuses a bad direction
    backward = "ba" if direction == "ab" else "ab"
    return ModelPieces(
        encoder=model.encoder,
        transform=forward_net,
        inverse_transform=model.transformation_net(backward),
        to_fixed=model.decoder_ab if direction == "ab" else model.decoder_ba,
        to_moving=model.decoder_ba if direction == "ab" else model.decoder_ab,
    )


@dataclass(frozen=True)
class PreparedPair:
    """Both images (and label maps) on their model grids, as ``(1, 1, *S)`` tensors."""

    moving: Tensor
    fixed: Tensor
    moving_labels: Tensor | None
    fixed_labels: Tensor | None
    moving_grid: Grid
    fixed_grid: Grid
    spacing_mm: float


def prepare_pair(moving: Image, fixed: Image, *, spacing_mm: float,
                 moving_labels: Image | None = None, fixed_labels: Image | None = None) -> PreparedPair:
    """Preprocess as ``register_pair`` does: one common model-grid shape at ``spacing_mm``."""
    base = PreprocessConfig(spacing=spacing_mm)
    shape = common_model_shape(moving, fixed, base)
    config = PreprocessConfig(spacing=spacing_mm, shape=shape)
    pre_m, pre_f = preprocess(moving, config), preprocess(fixed, config)
    lab_m = pre_m.labels_to_model_grid(moving_labels) if moving_labels is not None else None
    lab_f = pre_f.labels_to_model_grid(fixed_labels) if fixed_labels is not None else None
    return PreparedPair(
        moving=pre_m.tensor(), fixed=pre_f.tensor(), moving_labels=lab_m, fixed_labels=lab_f,
        moving_grid=Grid(pre_m.shape, pre_m.image.affine), fixed_grid=Grid(pre_f.shape, pre_f.image.affine),
        spacing_mm=float(spacing_mm))


@dataclass
class PairAnalysis:
    """Every quantity of one moving -> fixed pass, as numpy arrays (no batch axis).

    Images ``(*S)`` on the model grid, in [-1, 1]; labels ``(*S)`` int or None; features
    ``(C, *S/4)``; displacements ``(d, *S)`` in grid_sample component order.

    Attributes:
        moving, fixed: x^A and x^B.
        warped_affine, warped: x^A o phi_af and x^A o phi (phi = phi_af o phi_nr).
        moving_labels, fixed_labels: the label maps on their model grids (None when not given).
        labels_affine, labels_warped: the moving labels warped label-aware by phi_af and phi.
        synth_fixed: x_hat^B = F_AB(G(x^A)); synth_moving: x_hat^A = F_BA(G(x^B)).
        synth_fixed_warped: x_hat_T^B = F_AB(G(x^A) o phi_AB).
        feat_moving, feat_fixed: G(x^A), G(x^B); feat_moving_affine: G(x^A) o phi_af;
        feat_moving_warped: G(x^A) o phi_AB (feature grid).
        theta: phi_af as ``(d, d+1)`` in normalized coordinates.
        moving_voxels: ``(d, *S)`` phi(p) as voxel indices of the moving grid, array-axis order.
        displacement_mm: ``(*S)`` |T(x) - x| in mm, T = phi in physical (LPS) coordinates.
        nonrigid_mm: ``(*S)`` |phi_nr(x)| in mm (the non-rigid displacement alone, fixed grid).
        jacobian: ``(*S)`` det of the physical Jacobian of T; <= 0 is folding.
        folding_percent: share of voxels with det <= 0 (or NaN), in %.
        inverse_consistency_mm: mean |phi_BA(phi_AB(x)) - x| in mm over the fixed grid.
    """

    ndim: int
    spacing_mm: float
    direction: str
    moving: np.ndarray
    fixed: np.ndarray
    warped_affine: np.ndarray
    warped: np.ndarray
    moving_labels: np.ndarray | None
    fixed_labels: np.ndarray | None
    labels_affine: np.ndarray | None
    labels_warped: np.ndarray | None
    synth_fixed: np.ndarray
    synth_moving: np.ndarray
    synth_fixed_warped: np.ndarray
    feat_moving: np.ndarray
    feat_fixed: np.ndarray
    feat_moving_affine: np.ndarray
    feat_moving_warped: np.ndarray
    theta: np.ndarray
    moving_voxels: np.ndarray
    displacement_mm: np.ndarray
    nonrigid_mm: np.ndarray
    jacobian: np.ndarray
    folding_percent: float
    inverse_consistency_mm: float

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.fixed.shape)


def _np(t: Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy()[0]


def _mm_points(points: Tensor, grid: Grid) -> Tensor:
    """``(N, *S, d)`` normalized points of ``grid`` -> the same points in LPS mm."""
    d = points.shape[-1]
    m = torch.as_tensor(normalized_to_physical(grid), dtype=torch.float64)
    return points.double() @ m[:d, :d].T + m[:d, d]


def analyse_pair(model: FireModel, pair: PreparedPair, direction: str = "ab",
                 device: str | torch.device = "cpu") -> PairAnalysis:
    """Run G, T_AB, T_BA, F_AB and F_BA on ``pair`` (no gradients) and collect every figure's input."""
    model = model.ready_for_inference(device)
    pieces = model_pieces(model, direction)
    x_m, x_f = pair.moving.to(device), pair.fixed.to(device)
    model.check_inputs(x_m, x_f, "explain")
    size = tuple(x_m.shape[2:])
    d = len(size)
    with torch.inference_mode():
        feats = pieces.encoder(torch.cat([x_m, x_f]))
        feat_m, feat_f = feats[:1], feats[1:]
        parts = pieces.transform(feat_m, feat_f)
        parts_back = pieces.inverse_transform(feat_f, feat_m)
        phi_feat, phi = parts.full(), parts.full(size)
        phi_back = parts_back.full(size)
        feat_m_warped = warp(feat_m, phi_feat, padding_mode=PADDING)
        warped = warp(x_m, phi, padding_mode=PADDING)
        warped_affine = warp(x_m, parts.affine, padding_mode=PADDING)
        synth_fixed, synth_fixed_warped = torch.chunk(pieces.to_fixed(torch.cat([feat_m, feat_m_warped])), 2)
        synth_moving = pieces.to_moving(feat_f)

    theta = parts.affine.detach().double().cpu()
    phi_cpu, phi_back_cpu = phi.detach().double().cpu(), phi_back.detach().double().cpu()
    labels = {}
    if pair.moving_labels is not None:
        lab = pair.moving_labels.cpu()
        labels["affine"] = warp_labels(lab, theta, size)[0, 0].numpy()
        labels["warped"] = warp_labels(lab, phi_cpu)[0, 0].numpy()

    # physical |T(x) - x| and |phi_nr| in mm on the fixed model grid
    points = sampling_grid(phi_cpu)  # (1, *S, d) normalized moving points
    moving_mm = _mm_points(points, pair.moving_grid)
    fixed_mm = _mm_points(identity_grid(size, dtype=torch.float64), pair.fixed_grid)
    displacement_mm = (moving_mm - fixed_mm).norm(dim=-1)[0].numpy()
    u = resize_field(parts.nonrigid.detach().double().cpu(), size)  # (1, d, *S) normalized
    lin = torch.as_tensor(normalized_to_physical(pair.fixed_grid), dtype=torch.float64)[:d, :d]
    nonrigid_mm = torch.einsum("ij,nj...->ni...", lin, u).norm(dim=1)[0].numpy()
    # phi(p) as voxel indices of the moving grid, array-axis order (for the deformed grid lines)
    voxels = [(points[0, ..., d - 1 - a] + 1.0) * 0.5 * (size[a] - 1) for a in range(d)]
    jac = jacobian_determinant_mm(phi_cpu, pair.fixed_grid, pair.moving_grid)[0].numpy()
    return PairAnalysis(
        ndim=d, spacing_mm=pair.spacing_mm, direction=direction,
        moving=_np(x_m)[0], fixed=_np(x_f)[0], warped_affine=_np(warped_affine)[0], warped=_np(warped)[0],
        moving_labels=None if pair.moving_labels is None else pair.moving_labels[0, 0].cpu().numpy(),
        fixed_labels=None if pair.fixed_labels is None else pair.fixed_labels[0, 0].cpu().numpy(),
        labels_affine=labels.get("affine"), labels_warped=labels.get("warped"),
        synth_fixed=_np(synth_fixed)[0], synth_moving=_np(synth_moving)[0],
        synth_fixed_warped=_np(synth_fixed_warped)[0],
        feat_moving=_np(feat_m), feat_fixed=_np(feat_f), feat_moving_affine=_np(parts.moving_features_affine),
        feat_moving_warped=_np(feat_m_warped), theta=theta[0].numpy(),
        moving_voxels=torch.stack(voxels).numpy(), displacement_mm=displacement_mm, nonrigid_mm=nonrigid_mm,
        jacobian=jac, folding_percent=float((~(jac > 0)).mean() * 100.0),
        inverse_consistency_mm=inverse_consistency_mm(phi_cpu, phi_back_cpu, pair.fixed_grid),
    )
