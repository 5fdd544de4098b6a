"""Per-pair refinement in FIRE's feature space (instance optimisation, ``register --refine``).

Starting from the network's ``phi_AB = theta_AB o (id + u_AB)`` and ``phi_BA``, the affine
matrices and the non-rigid fields of *both* directions are optimised for one pair, with the
network frozen. ``G(x^A)`` and ``G(x^B)`` are computed once. The objective is

    RMS(G(x^A) o phi_AB, G(x^B)) + RMS(G(x^B) o phi_BA, G(x^A))          (Eq. 3, a learned
                                                                           multi-modal similarity)
  + lambda R_smooth(u_AB, u_BA)                                           (Eq. 10, lambda of Eq. 13)
  + w_ic (RMS(phi_AB o phi_BA - id) + RMS(phi_BA o phi_AB - id))          (Eq. 8 in spirit, on the
                                                                           maps, normalized units)
  + w_syn (RMS(x̂^B o phi_AB, x^B) + RMS(x̂^A o phi_BA, x^A))               (Eq. 7, commuted; below)
  [+ RMS(F_AB(G(x^A) o phi_AB), x^B) + RMS(F_BA(G(x^B) o phi_BA), x^A)]   (Eq. 7 as written, optional)

The feature terms live on the feature grid ``S/4`` (where ``T_nr`` predicts), so they cost a few
warps of the feature maps, but they cannot see detail finer than 4 voxels. The **synthesis term**
adds that detail: ``x̂^B = F_AB(G(x^A))`` (the moving image rendered in the fixed image's
modality) and ``x̂^A`` are decoded **once**, and each step warps them at image resolution by the
fields resized from ``S/4``, and compares them with the real images: a same-modality RMS, where
Eq. 7 compares after decoding warped features. The two agree because synthesis commutes with
warping, which is what the paper's alignment loss (Eq. 5) trains for (§3.6: "the synthesized image
obtained from a transformed x^A image should be identical to x^B"); decoding once makes the term
about 8x cheaper than Eq. 7 per step. On a large grid the term is evaluated on a coarser one of at
most ``SYNTHESIS_VOXELS`` voxels (``synthesis_scale``; a 2 mm 3D brain, 92x112x92, is scaled by
about 0.52), to keep a step within the speed target; 2D images and small volumes stay at full
resolution. Its weight and the
smoothness multiplier that comes with it were chosen on the validation slices (docs/refinement.md).

With ``diffeomorphic=True`` the non-rigid part is a stationary velocity ``v`` (initialised with the
network's field) and ``u = exp(v)`` by scaling and squaring.

Adam steps until ``max_steps`` or until the objective has not improved by ``tolerance``
(relative) for ``patience`` steps; the best parameters seen are returned.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from firereg.losses.regularization import bending_energy, smoothness_weight
from firereg.losses.rms import rms
from firereg.model import FireModel
from firereg.spatial import compose, integrate_velocity, resize_field, warp

__all__ = ["RefineConfig", "RefineResult", "refine_pair", "DEFAULT_REFINE_STEPS", "DEFAULT_SYNTHESIS_WEIGHT",
           "DEFAULT_SMOOTH_WEIGHT", "SYNTHESIS_VOXELS"]

DEFAULT_REFINE_STEPS = 100
DEFAULT_SYNTHESIS_WEIGHT = 0.05
DEFAULT_SMOOTH_WEIGHT = 100.0
"""These two, the step sizes and the patience were chosen on the validation slices of the SPM brain
(``tools/choose_refine_weights.py``; docs/refinement.md, "Choosing the settings")."""
SYNTHESIS_VOXELS = 2**17
"""Largest grid (voxels) of the synthesis term before it is evaluated on a coarser one."""


@dataclass(frozen=True)
class RefineConfig:
    """Settings of :func:`refine_pair`.

    Attributes:
        max_steps: upper bound on Adam steps.
        lr_affine: Adam step size of the affine matrices (normalized units).
        lr_field: Adam step size of the non-rigid fields (normalized units).
        ic_weight: weight of the inverse-consistency term.
        smooth_weight: multiplier of the paper's lambda for ``R_smooth``.
        synthesis_weight: weight of the synthesis term (0: the feature terms alone).
        synthesis_scale: grid of the synthesis term relative to the image (None: 1, or less so that
            it has at most :data:`SYNTHESIS_VOXELS` voxels).
        image_term: add Eq. 7 through the (frozen) decoders.
        diffeomorphic: optimise stationary velocities and integrate them.
        patience, tolerance: stop when the objective has not improved by ``tolerance``
            (relative) for ``patience`` consecutive steps.
    """

    max_steps: int = DEFAULT_REFINE_STEPS
    lr_affine: float = 4e-3
    lr_field: float = 8e-3
    ic_weight: float = 1.0
    smooth_weight: float = DEFAULT_SMOOTH_WEIGHT
    synthesis_weight: float = DEFAULT_SYNTHESIS_WEIGHT
    synthesis_scale: float | None = None
    image_term: bool = False
    diffeomorphic: bool = False
    patience: int = 20
    tolerance: float = 1e-4

    def __post_init__(self) -> None:
        if not isinstance(self.max_steps, int) or self.max_steps < 0:
            raise ValueError(f"refine: the number of steps must be an int >= 0, got {self.max_steps!r}")
        for name in ("lr_affine", "lr_field", "tolerance"):
            if not getattr(self, name) > 0:
                raise ValueError(f"refine: {name} must be > 0, got {getattr(self, name)!r}")
        for name in ("ic_weight", "smooth_weight", "synthesis_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"refine: {name} must be >= 0, got {getattr(self, name)!r}")
        if self.synthesis_scale is not None and not 0 < self.synthesis_scale <= 1:
            raise ValueError(f"refine: synthesis_scale must be in (0, 1] or None, got "
                             f"{self.synthesis_scale!r}")
        if not isinstance(self.patience, int) or self.patience < 1:
            raise ValueError(f"refine: patience must be an int >= 1, got {self.patience!r}")

    def scale_for(self, shape: tuple[int, ...]) -> float:
        """The synthesis term's grid scale for images of spatial ``shape``."""
        if self.synthesis_scale is not None:
            return float(self.synthesis_scale)
        voxels = math.prod(shape)
        return 1.0 if voxels <= SYNTHESIS_VOXELS else (SYNTHESIS_VOXELS / voxels) ** (1.0 / len(shape))


@dataclass
class RefineResult:
    """Refined transforms of both directions (normalized units, feature grid for the fields).

    ``affine_*`` ``(1, d, d+1)``; ``nonrigid_*`` ``(1, d, *S/4)`` displacements (already
    integrated when diffeomorphic). ``report`` holds steps, objective before/after per term and
    seconds.
    """

    affine_fwd: Tensor
    nonrigid_fwd: Tensor
    affine_bwd: Tensor
    nonrigid_bwd: Tensor
    report: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _Synthesis:
    """The synthesis term's fixed inputs: each image rendered in the other's modality (x̂^B from the
    moving image, x̂^A from the fixed one) and the real images, all on the term's grid."""

    moving_as_fixed: Tensor
    fixed_as_moving: Tensor
    moving: Tensor
    fixed: Tensor

    @property
    def size(self) -> tuple[int, ...]:
        return tuple(self.moving.shape[2:])


def _on_grid(image: Tensor, scale: float) -> Tensor:
    """``image`` resampled to ``scale`` times its size, keeping the normalized frame (corners fixed)."""
    if scale == 1.0:
        return image
    size = [max(2, round(n * scale)) for n in image.shape[2:]]
    mode = "bilinear" if image.dim() == 4 else "trilinear"
    return torch.nn.functional.interpolate(image, size=size, mode=mode, align_corners=True,
                                           antialias=image.dim() == 4)


def _synthesis_inputs(model: FireModel, direction: str, feats: tuple[Tensor, Tensor],
                      images: tuple[Tensor, Tensor], scale: float) -> _Synthesis:
    dec_fwd = model.decoder_ab if direction == "ab" else model.decoder_ba
    dec_bwd = model.decoder_ba if direction == "ab" else model.decoder_ab
    with torch.no_grad():
        rendered = (dec_fwd(feats[0]), dec_bwd(feats[1]))
    return _Synthesis(*(_on_grid(t.detach(), scale) for t in (*rendered, *images)))


def _objective(model: FireModel, direction: str, feats: tuple[Tensor, Tensor],
               images: tuple[Tensor, Tensor], params: dict[str, Tensor], config: RefineConfig,
               lam: float, synthesis: _Synthesis | None = None) -> tuple[Tensor, dict[str, float]]:
    feat_m, feat_f = feats
    u_fwd, u_bwd = params["nonrigid_fwd"], params["nonrigid_bwd"]
    if config.diffeomorphic:
        u_fwd, u_bwd = integrate_velocity(u_fwd), integrate_velocity(u_bwd)
    phi_fwd = compose(params["affine_fwd"], u_fwd)  # (1, d, *Sf): moving read at phi_fwd(p_fixed)
    phi_bwd = compose(params["affine_bwd"], u_bwd)
    moved_m = warp(feat_m, phi_fwd, padding_mode="border")
    moved_f = warp(feat_f, phi_bwd, padding_mode="border")
    terms = {"feature": rms(moved_m, feat_f) + rms(moved_f, feat_m)}
    terms["smooth"] = lam * config.smooth_weight * (bending_energy(u_fwd) + bending_energy(u_bwd))
    if config.ic_weight > 0:
        zero = torch.zeros_like(phi_fwd)
        terms["inverse_consistency"] = config.ic_weight * (
            rms(compose(phi_fwd, phi_bwd), zero) + rms(compose(phi_bwd, phi_fwd), zero))
    if synthesis is not None:
        size = synthesis.size
        at_fwd = compose(params["affine_fwd"], resize_field(u_fwd, size))
        at_bwd = compose(params["affine_bwd"], resize_field(u_bwd, size))
        terms["synthesis"] = config.synthesis_weight * (
            rms(warp(synthesis.moving_as_fixed, at_fwd, padding_mode="border"), synthesis.fixed)
            + rms(warp(synthesis.fixed_as_moving, at_bwd, padding_mode="border"), synthesis.moving))
    if config.image_term:
        x_m, x_f = images
        dec_fwd = model.decoder_ab if direction == "ab" else model.decoder_ba
        dec_bwd = model.decoder_ba if direction == "ab" else model.decoder_ab
        terms["image"] = rms(dec_fwd(moved_m), x_f) + rms(dec_bwd(moved_f), x_m)
    total = sum(terms.values())
    values = {k: float(v.detach()) for k, v in terms.items()}
    values["total"] = float(total.detach())
    return total, values


def refine_pair(model: FireModel, moving: Tensor, fixed: Tensor, direction: str,
                init: tuple[Tensor, Tensor, Tensor, Tensor],
                config: RefineConfig | None = None, *, affine_only: bool = False,
                features: tuple[Tensor, Tensor] | None = None) -> RefineResult:
    """Refine both directions' transforms for one pair; the network's weights stay untouched.

    Args:
        moving, fixed: ``(1, C, *S)`` preprocessed images on the model grid.
        direction: "ab" when ``moving`` is modality A.
        init: ``(affine_fwd (1, d, d+1), nonrigid_fwd (1, d, *S/4), affine_bwd, nonrigid_bwd)``
            from the network (fwd: moving onto fixed; bwd: fixed onto moving).
        affine_only: refine the affine matrices only; the fields stay zero.
        features: ``(G(moving), G(fixed))`` when the caller has them already (not inference
            tensors); otherwise G runs here once.
    """
    config = config or RefineConfig()
    start = time.perf_counter()
    device = moving.device
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        if features is None:
            with torch.no_grad():
                features = model.encode_pair(moving, fixed)
        feat_m, feat_f = (f.detach() for f in features)
        names = ("affine_fwd", "nonrigid_fwd", "affine_bwd", "nonrigid_bwd")
        params = {n: t.detach().to(device=device, dtype=torch.float32).clone()
                  for n, t in zip(names, init, strict=True)}
        if affine_only:
            params["nonrigid_fwd"].zero_()
            params["nonrigid_bwd"].zero_()
        groups = [{"params": [params["affine_fwd"], params["affine_bwd"]], "lr": config.lr_affine}]
        if not affine_only:
            groups.append({"params": [params["nonrigid_fwd"], params["nonrigid_bwd"]],
                           "lr": config.lr_field})
        for group in groups:
            for t in group["params"]:
                t.requires_grad_(True)
        lam = smoothness_weight(moving.dim() - 2, math.prod(moving.shape[2:]))
        optimizer = torch.optim.Adam(groups)
        feats, images = (feat_m, feat_f), (moving, fixed)
        synthesis = None
        if config.synthesis_weight > 0:
            scale = config.scale_for(tuple(moving.shape[2:]))
            synthesis = _synthesis_inputs(model, direction, feats, images, scale)
        with torch.enable_grad():
            total, before = _objective(model, direction, feats, images, params, config, lam, synthesis)
            best_value, best = before["total"], {n: t.detach().clone() for n, t in params.items()}
            best_terms, since_best, steps = before, 0, 0
            while steps < config.max_steps:
                steps += 1
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                optimizer.step()
                total, values = _objective(model, direction, feats, images, params, config, lam, synthesis)
                if not math.isfinite(values["total"]):
                    break
                if values["total"] < best_value * (1.0 - config.tolerance):
                    best_value, best_terms, since_best = values["total"], values, 0
                    best = {n: t.detach().clone() for n, t in params.items()}
                else:
                    since_best += 1
                    if since_best >= config.patience:
                        break
        with torch.no_grad():
            u_fwd, u_bwd = best["nonrigid_fwd"], best["nonrigid_bwd"]
            if config.diffeomorphic and not affine_only:
                u_fwd, u_bwd = integrate_velocity(u_fwd), integrate_velocity(u_bwd)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    report = {"steps": steps, "max_steps": config.max_steps, "objective_before": before,
              "objective_after": best_terms, "diffeomorphic": config.diffeomorphic,
              "image_term": config.image_term, "synthesis_weight": config.synthesis_weight,
              "smooth_weight": config.smooth_weight, "seconds": time.perf_counter() - start}
    return RefineResult(best["affine_fwd"], u_fwd, best["affine_bwd"], u_bwd, report)
