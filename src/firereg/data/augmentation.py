"""Random affine + non-rigid augmentation, sampled first and applied deterministically (§4.1).

The paper misaligns its training pairs with "moderate-to-strong (20-50% change across at least one
dimension) affine and non-rigid transformations", applied independently to the moving and the fixed
image, and transforms each test image 20 times (§4.1). Following DESIGN.md convention 8, this module
splits that into two steps:

1. :func:`sample_params` draws a :class:`TransformParams` (an affine matrix and a coarse grid of
   non-rigid control displacements) from a seeded generator, rejecting draws whose change falls
   outside the window ``[min_change, max_change]``;
2. :func:`params_to_transform` turns the parameters into a dense displacement with no randomness
   left, and :func:`apply` warps an image and its labels with it through :mod:`firereg.spatial`.

A :class:`TransformParams` is plain data (``to_dict``/``from_dict``, JSON-safe), so an augmented pair
can be written down and replayed exactly.

Frames and shapes (DESIGN.md conventions 1-3): images ``(N, C, *S)``, label maps ``(N, 1, *S)``,
displacements ``(N, d, *S)`` in normalized units (``[-1, 1]`` across the field of view,
``align_corners=True``), vector components in ``grid_sample`` order (component 0 runs along the LAST
array axis). A transform maps an output point ``p`` to the point ``phi(p)`` at which the input
image is read. The sampled transform is ``phi = phi_af o phi_nr``::

    phi(p) = A (p + u(p)) + b

with ``[A | b]`` the affine ``(d, d+1)`` and ``u`` the smooth non-rigid displacement.

**Change along a dimension.** Let ``B = [-1, 1]^d`` be the field of view and ``R = phi(B)`` the
part of the input image that the transformed image shows (its field of view mapped through the
continuous transform). Along array axis ``k`` let ``[lo_k, hi_k]`` be the extent of ``R`` and
``L = 2`` the length of the field of view, in normalized units. The change along axis ``k`` is::

    c_k = |centre shift| / L + |extent change| / L
        = |lo_k + hi_k| / 4 + |(hi_k - lo_k) - 2| / 2

A translation by 25% of the field of view gives ``c = 0.25``; a scaling of the sampled extent by
1.3 gives ``c = 0.3``; a 15 degree rotation of a square image gives ``c = cos 15 + sin 15 - 1 =
0.22`` on both axes. The constraint "20-50% change along at least one dimension" is read as
``min_change <= max_k c_k <= max_change``: the strongest per-axis change lies in the window (so no
axis changes by more than ``max_change``). :func:`change_per_axis` computes ``c`` exactly from the
parameters (see its docstring); it is also what one measures as the bounding box of the sampling
grid of :func:`params_to_transform` on any grid through the fine control nodes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import torch
from torch import Tensor

from firereg.spatial import (
    apply_affine,
    compose,
    displacement_to_grid,
    identity_affine,
    identity_grid,
    resize_field,
    warp,
    warp_labels,
)

__all__ = [
    "AugmentationConfig",
    "TransformParams",
    "AugmentedPair",
    "RandomPairAugmenter",
    "sample_params",
    "params_to_transform",
    "apply",
    "change_per_axis",
    "derive_seed",
]

# The control grid is refined by this factor (linear interpolation) before it is smoothed; the
# smoothed fine grid defines the continuous non-rigid field, independent of the image size.
_REFINE = 4
_MAX_SEED = 2**63 - 1
_PARAMS_VERSION = 1


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class AugmentationConfig:
    """Ranges of the random transforms and the change window (§4.1). All values are plain numbers.

    The affine part, in the sampling convention ``p -> A p + b`` (normalized coordinates), is
    ``A = R H diag(s)`` around the image centre. Being a sampling map, ``s > 1`` shows more of
    the input (its content shrinks by ``1 / s``) and ``b`` moves the content by ``-b``.

    Attributes:
        rotation: angles uniform in ``[-rotation, rotation]`` degrees, one per plane of axes (1 in
            2D, 3 in 3D). When :func:`sample_params` gets the image ``size``, rotations and shears
            are made in voxel units (rigid for isotropic voxels); otherwise in normalized units.
        scaling: per-axis scale ``s`` log-uniform in ``[1 / (1 + scaling), 1 + scaling]``.
        shear: off-diagonal entries of the unit upper-triangular ``H``, uniform in
            ``[-shear, shear]``.
        translation: per-axis shift uniform in ``[-translation, translation]``, as a fraction of
            the field of view (0.1 = 10% of the image extent along that axis).
        control_points: control points per axis of the non-rigid grid (spanning the field of
            view, spacing ``1 / (control_points - 1)`` of it).
        nonrigid_max_displacement: control displacements uniform in ``[-m, m]`` per component, as
            a fraction of the field of view; the smoothed field never exceeds it.
        nonrigid_smoothing: Gaussian smoothing of the control field, sigma as a fraction of the
            control spacing (0 = piecewise linear).
        nonrigid_max_gradient: bound on the Frobenius norm of the non-rigid displacement's
            Jacobian ``grad u`` (normalized units); a draw over it is scaled down to it. A value
            below 1 guarantees ``det(I + grad u) > 0``: the non-rigid part never folds.
        p_affine, p_nonrigid: probability that each part is drawn at all (else identity).
        strength: multiplies every range above and both change bounds (a curriculum knob;
            0 gives the identity).
        min_change, max_change: window for the largest per-axis change ``max_k c_k`` (see the
            module docstring for ``c_k``). 0.2 / 0.5 is the paper's "20-50%".
        max_tries: draws tried before :func:`sample_params` gives up with a ``ValueError``.
    """

    rotation: float = 15.0
    scaling: float = 0.2
    shear: float = 0.1
    translation: float = 0.1
    control_points: int = 5
    nonrigid_max_displacement: float = 0.05
    nonrigid_smoothing: float = 0.5
    nonrigid_max_gradient: float = 0.5
    p_affine: float = 1.0
    p_nonrigid: float = 1.0
    strength: float = 1.0
    min_change: float = 0.2
    max_change: float = 0.5
    max_tries: int = 1000

    def __post_init__(self) -> None:
        def bad(name: str, rule: str) -> ValueError:
            return ValueError(f"AugmentationConfig.{name} must be {rule}, got {getattr(self, name)!r}")

        for name in ("rotation", "scaling", "shear", "translation", "nonrigid_max_displacement",
                     "nonrigid_smoothing", "nonrigid_max_gradient", "p_affine", "p_nonrigid",
                     "strength", "min_change", "max_change"):
            if not _is_number(getattr(self, name)):
                raise bad(name, "a finite number")
        for name in ("control_points", "max_tries"):
            if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool):
                raise bad(name, "an int")
        ranges = {"rotation": (0.0, 180.0, "in [0, 180] degrees"),
                  "scaling": (0.0, 10.0, "in [0, 10]"),
                  "shear": (0.0, 1.0, "in [0, 1]"),
                  "translation": (0.0, 1.0, "in [0, 1] (a fraction of the field of view)"),
                  "nonrigid_max_displacement": (0.0, 0.5, "in [0, 0.5] (a fraction of the field of view)"),
                  "nonrigid_smoothing": (0.0, 10.0, "in [0, 10] (a fraction of the control spacing)"),
                  "p_affine": (0.0, 1.0, "a probability in [0, 1]"),
                  "p_nonrigid": (0.0, 1.0, "a probability in [0, 1]"),
                  "strength": (0.0, 10.0, "in [0, 10]"),
                  "min_change": (0.0, 10.0, "in [0, 10]"),
                  "max_change": (0.0, 10.0, "in [0, 10]")}
        for name, (lo, hi, rule) in ranges.items():
            if not lo <= getattr(self, name) <= hi:
                raise bad(name, rule)
        if not 0.0 < self.nonrigid_max_gradient < 1.0:
            raise bad("nonrigid_max_gradient", "in (0, 1) so that the non-rigid part cannot fold")
        if self.control_points < 2:
            raise bad("control_points", "an int >= 2")
        if self.max_tries < 1:
            raise bad("max_tries", "an int >= 1")
        if self.min_change > self.max_change:
            raise ValueError(f"AugmentationConfig.min_change ({self.min_change}) must not exceed "
                             f"AugmentationConfig.max_change ({self.max_change})")

    @classmethod
    def identity(cls) -> AugmentationConfig:
        """A config whose every draw is the identity transform (all ranges 0, window [0, 0])."""
        return cls(rotation=0.0, scaling=0.0, shear=0.0, translation=0.0,
                   nonrigid_max_displacement=0.0, min_change=0.0, max_change=0.0)


@dataclass(frozen=True, eq=False)
class TransformParams:
    """Everything needed to replay one random transform ``phi(p) = A (p + u(p)) + b``.

    Attributes:
        affine: ``(d, d+1)`` float64 ``[A | b]`` in normalized coordinates, ``grid_sample``
            component order (maps an output point to the input sampling point).
        control: ``(d, *C)`` float64 non-rigid control displacements in normalized units
            (components in ``grid_sample`` order, control nodes in array-axis order, spanning the
            field of view with ``align_corners=True``), or None for no non-rigid part.
        smoothing: Gaussian sigma of the control field, as a fraction of the control spacing.
        seed: the int seed :func:`sample_params` drew from, or None when it was given a generator.

    Equality compares values exactly. ``to_dict``/``from_dict`` round-trip exactly through JSON.
    """

    affine: Tensor
    control: Tensor | None = None
    smoothing: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        affine = torch.as_tensor(self.affine, dtype=torch.float64).detach().cpu().clone()
        d = affine.shape[0] if affine.dim() == 2 else -1
        if d not in (2, 3) or tuple(affine.shape) != (d, d + 1):
            raise ValueError(f"TransformParams.affine must be (d, d+1) with d = 2 or 3, got "
                             f"{tuple(affine.shape)}")
        object.__setattr__(self, "affine", affine)
        if self.control is not None:
            control = torch.as_tensor(self.control, dtype=torch.float64).detach().cpu().clone()
            if control.dim() != d + 1 or control.shape[0] != d or min(control.shape[1:]) < 2:
                raise ValueError(f"TransformParams.control must be (d, *C) with d = {d} and at "
                                 f"least 2 control points per axis, got {tuple(control.shape)}")
            object.__setattr__(self, "control", control)
        if not _is_number(self.smoothing) or self.smoothing < 0:
            raise ValueError(f"TransformParams.smoothing must be a number >= 0, got {self.smoothing!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool)):
            raise ValueError(f"TransformParams.seed must be an int or None, got {self.seed!r}")

    @property
    def ndim(self) -> int:
        """Spatial dimensions ``d``."""
        return self.affine.shape[0]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TransformParams):
            return NotImplemented
        same_control = (self.control is None and other.control is None) or (
            self.control is not None and other.control is not None
            and torch.equal(self.control, other.control))
        return (torch.equal(self.affine, other.affine) and same_control
                and self.smoothing == other.smoothing and self.seed == other.seed)

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (nested lists of floats) that :meth:`from_dict` turns back exactly."""
        return {"version": _PARAMS_VERSION, "ndim": self.ndim, "affine": self.affine.tolist(),
                "control": None if self.control is None else self.control.tolist(),
                "smoothing": float(self.smoothing), "seed": self.seed}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransformParams:
        """Rebuild parameters written by :meth:`to_dict`; unknown or missing keys raise."""
        if not isinstance(data, dict):
            raise ValueError(f"TransformParams.from_dict: expected a dict, got {type(data).__name__}")
        keys = {"version", "ndim", "affine", "control", "smoothing", "seed"}
        if set(data) != keys:
            raise ValueError(f"TransformParams.from_dict: expected keys {sorted(keys)}, got "
                             f"{sorted(data)}")
        if data["version"] != _PARAMS_VERSION:
            raise ValueError(f"TransformParams.from_dict: unsupported version {data['version']!r}")
        params = cls(affine=torch.tensor(data["affine"], dtype=torch.float64),
                     control=None if data["control"] is None
                     else torch.tensor(data["control"], dtype=torch.float64),
                     smoothing=data["smoothing"], seed=data["seed"])
        if params.ndim != data["ndim"]:
            raise ValueError(f"TransformParams.from_dict: ndim {data['ndim']!r} does not match the "
                             f"{params.ndim}D affine")
        return params


def derive_seed(*keys: int) -> int:
    """A well-mixed seed in ``[0, 2**63)`` from non-negative ints (e.g. base seed, index, role)."""
    if not keys or any(not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 0 for k in keys):
        raise ValueError(f"derive_seed: expected non-negative ints, got {keys!r}")
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(1, dtype=np.uint64)
    return int(state[0]) & _MAX_SEED


def _generator(source: torch.Generator | int) -> tuple[torch.Generator, int | None]:
    if isinstance(source, torch.Generator):
        return source, None
    if not isinstance(source, int | np.integer) or isinstance(source, bool) or not 0 <= source <= _MAX_SEED:
        raise ValueError(f"sample_params: generator must be a torch.Generator or an int seed in "
                         f"[0, 2**63), got {source!r}")
    generator = torch.Generator()
    generator.manual_seed(int(source))
    return generator, int(source)


def _uniform(generator: torch.Generator, n: int, half_width: float) -> Tensor:
    """``n`` float64 draws uniform in ``[-half_width, half_width]``."""
    return (torch.rand(n, generator=generator, dtype=torch.float64) * 2.0 - 1.0) * half_width


def _linear_part(angles: Tensor, log_scales: Tensor, shears: Tensor, d: int) -> Tensor:
    """``R H diag(s)`` ``(d, d)``: plane rotations (radians) in the order of ``combinations``."""
    planes = list(combinations(range(d), 2))
    rotation = torch.eye(d, dtype=torch.float64)
    for (i, j), angle in zip(planes, angles.tolist(), strict=True):
        plane = torch.eye(d, dtype=torch.float64)
        c, s = math.cos(angle), math.sin(angle)
        plane[i, i], plane[i, j], plane[j, i], plane[j, j] = c, -s, s, c
        rotation = rotation @ plane
    shear = torch.eye(d, dtype=torch.float64)
    for (i, j), value in zip(planes, shears.tolist(), strict=True):
        shear[i, j] = value
    return rotation @ shear @ torch.diag(log_scales.exp())


def _half_extents(size: Sequence[int] | None, d: int) -> Tensor:
    """Voxels per normalized unit along each component (grid order), or ones without a size."""
    if size is None:
        return torch.ones(d, dtype=torch.float64)
    size = tuple(int(s) for s in size)
    if len(size) != d or any(s < 2 for s in size):
        raise ValueError(f"sample_params: size must have {d} entries >= 2, got {size}")
    return torch.tensor([(s - 1) / 2.0 for s in size[::-1]], dtype=torch.float64)


def _gaussian_blur(field: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``(N, C, *S)`` with ``sigma`` voxels, replicating the border.

    Written as a weighted sum of shifted copies (kernel radius ``ceil(3 sigma)``, normalized):
    on the few-node fine grids it serves, this stays on one thread, where a padded convolution or
    a matrix product wakes a thread pool and stalls when the cores are busy (data-loader workers).
    """
    if sigma <= 0:
        return field
    radius = max(1, math.ceil(3.0 * sigma))
    taps = range(-radius, radius + 1)
    weights = [math.exp(-0.5 * (t / sigma) ** 2) for t in taps]
    weights = [w / sum(weights) for w in weights]
    out = field
    for axis in range(2, field.dim()):
        n = field.shape[axis]
        index = torch.arange(n, device=field.device)
        blurred = torch.zeros_like(out)
        for t, w in zip(taps, weights, strict=True):
            blurred += w * out.index_select(axis, (index + t).clamp(0, n - 1))
        out = blurred
    return out


def _fine_field(params: TransformParams) -> Tensor:
    """The smoothed non-rigid field ``(1, d, *F)`` (float64) on the fine control grid.

    ``F_a = (C_a - 1) * 4 + 1``: the control grid refined 4 times by linear interpolation, then
    blurred (sigma = ``smoothing`` control spacings). Its multilinear interpolation IS the
    continuous non-rigid displacement ``u``; every image grid samples the same ``u``.
    """
    control = params.control
    fine_size = [(c - 1) * _REFINE + 1 for c in control.shape[1:]]
    fine = resize_field(control.unsqueeze(0), fine_size)
    return _gaussian_blur(fine, params.smoothing * _REFINE)


def _gradient_bound(control: Tensor) -> float:
    """Upper bound of ``||grad u||_F`` over the field of view, for the multilinear interpolant.

    Entry ``(c, a)`` of ``grad u`` is bounded by the largest difference of component ``c`` between
    neighbouring control nodes along axis ``a``, over the spacing ``2 / (C_a - 1)``. Refinement,
    smoothing and resampling are averages, so they keep the bound.
    """
    d = control.shape[0]
    total = 0.0
    for a in range(d):
        spacing = 2.0 / (control.shape[1 + a] - 1)
        diffs = control.diff(dim=1 + a).abs().flatten(1).amax(dim=1) / spacing  # (d,) per component
        total += float((diffs**2).sum())
    return math.sqrt(total)


def change_per_axis(params: TransformParams) -> Tensor:
    """The change ``c_k`` of the transform along each array axis, ``(d,)`` float64, axis order.

    ``c_k = |lo_k + hi_k| / 4 + |hi_k - lo_k - 2| / 2`` where ``[lo_k, hi_k]`` is the extent along
    array axis ``k`` of ``phi(B)``, the field of view ``B = [-1, 1]^d`` mapped through the
    continuous transform (normalized units; see the module docstring). ``phi`` is multilinear in
    each cell of the fine control grid (affine of a multilinear field), so its extremes over ``B``
    lie on the fine nodes (the corners of ``B`` without a non-rigid part): the value is exact.
    """
    d = params.ndim
    if params.control is None:
        points = identity_grid([2] * d, dtype=torch.float64)
    else:
        points = displacement_to_grid(_fine_field(params))
    mapped = apply_affine(params.affine.unsqueeze(0), points).reshape(-1, d)
    lo, hi = mapped.amin(dim=0), mapped.amax(dim=0)
    change = (lo + hi).abs() / 4.0 + (hi - lo - 2.0).abs() / 2.0  # grid (component) order
    return change.flip(0)


def sample_params(
    ndim: int,
    config: AugmentationConfig,
    generator: torch.Generator | int,
    *,
    size: Sequence[int] | None = None,
) -> TransformParams:
    """Draw random affine + non-rigid parameters whose largest per-axis change is in the window.

    Each try draws, in this fixed order: two coin flips (affine on?, non-rigid on?), the rotation
    angles (one per plane of axes), log-scales, shears, translations, and the control
    displacements; the control field is scaled down when its gradient bound exceeds
    ``nonrigid_max_gradient``. A try is kept when ``min_change <= max(change_per_axis) <=
    max_change`` (both times ``strength``). The result depends only on the seed (or the
    generator's state), ``ndim``, ``config`` and ``size``.

    Args:
        ndim: 2 or 3.
        config: ranges and the change window.
        generator: an int seed in ``[0, 2**63)`` (recorded in the result, so
            ``sample_params(ndim, config, params.seed, size=size)`` replays it) or a
            ``torch.Generator`` (consumed; the result's ``seed`` is None).
        size: spatial size ``(*S)`` of the image in array-axis order. When given, rotations and
            shears act in voxel units (rigid for isotropic voxels); otherwise in normalized units.

    Returns:
        :class:`TransformParams` with ``affine`` ``(ndim, ndim+1)`` and ``control``
        ``(ndim, *[control_points] * ndim)`` or None.

    Raises:
        ValueError: bad arguments, or no try in ``config.max_tries`` met the change window.
    """
    if ndim not in (2, 3) or isinstance(ndim, bool):
        raise ValueError(f"sample_params: ndim must be 2 or 3, got {ndim!r}")
    if not isinstance(config, AugmentationConfig):
        raise ValueError(f"sample_params: config must be an AugmentationConfig, got "
                         f"{type(config).__name__}")
    gen, seed = _generator(generator)
    d, k = ndim, config.strength
    half = _half_extents(size, d)
    n_planes = d * (d - 1) // 2
    control_shape = (d,) + (config.control_points,) * d
    n_control = math.prod(control_shape)
    lo_change, hi_change = config.min_change * k, config.max_change * k
    max_log_scale = math.log1p(config.scaling * k)
    max_disp = 2.0 * config.nonrigid_max_displacement * k  # normalized units
    for _ in range(config.max_tries):
        coins = torch.rand(2, generator=gen, dtype=torch.float64)
        angles = _uniform(gen, n_planes, math.radians(config.rotation * k))
        log_scales = _uniform(gen, d, max_log_scale)
        shears = _uniform(gen, n_planes, config.shear * k)
        shifts = _uniform(gen, d, 2.0 * config.translation * k)  # fraction of FOV -> normalized
        control = _uniform(gen, n_control, max_disp).reshape(control_shape)

        affine = identity_affine(1, d, dtype=torch.float64)[0]
        if coins[0] < config.p_affine:
            linear = _linear_part(angles, log_scales, shears, d)
            affine[:, :d] = linear * half.unsqueeze(0) / half.unsqueeze(1)  # D^-1 M D
            affine[:, d] = shifts
        if coins[1] < config.p_nonrigid and max_disp > 0:
            bound = _gradient_bound(control)
            if bound > config.nonrigid_max_gradient:
                control = control * (config.nonrigid_max_gradient / bound)
        else:
            control = None
        params = TransformParams(affine=affine, control=control,
                                 smoothing=float(config.nonrigid_smoothing), seed=seed)
        largest = float(change_per_axis(params).max())
        if lo_change <= largest <= hi_change:
            return params
    raise ValueError(
        f"sample_params: no draw in max_tries={config.max_tries} had its largest per-axis change in "
        f"[min_change, max_change] = [{lo_change:g}, {hi_change:g}]; widen the ranges (rotation, "
        "scaling, shear, translation, nonrigid_max_displacement) or the window")


def params_to_transform(
    params: TransformParams,
    size: Sequence[int],
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """The deterministic dense transform of ``params`` on a grid, as a displacement ``(1, d, *size)``.

    ``phi = phi_af o phi_nr`` (``compose(affine, u)``, DESIGN.md convention 3): the non-rigid
    field ``u`` (the smoothed fine control grid, see :func:`change_per_axis`) is linearly resampled
    to ``size`` with :func:`~firereg.spatial.resize_field`, then the affine is applied exactly.
    Normalized units, components in ``grid_sample`` order; ``size`` in array-axis order.
    """
    if not isinstance(params, TransformParams):
        raise ValueError(f"params_to_transform: expected TransformParams, got {type(params).__name__}")
    d = params.ndim
    size = tuple(int(s) for s in size)
    if len(size) != d or any(s < 2 for s in size):
        raise ValueError(f"params_to_transform: a {d}D transform needs a size of {d} ints >= 2, "
                         f"got {size}")
    theta = params.affine.to(dtype=dtype, device=device).unsqueeze(0)
    if params.control is None:
        u = torch.zeros((1, d, *size), dtype=dtype, device=device)
    else:
        u = resize_field(_fine_field(params), size).to(dtype=dtype, device=device)
    return compose(theta, u)


def apply(
    params: TransformParams,
    image: Tensor,
    labels: Tensor | None = None,
    *,
    padding_mode: str = "border",
    label_method: str = "onehot",
) -> tuple[Tensor, Tensor | None]:
    """Warp an image and its labels by the SAME transform of ``params``, on their own grid.

    Args:
        params: the sampled parameters.
        image: ``(N, C, *S)`` floating point; every batch item gets the same transform.
        labels: ``(N, 1, *S)`` integer label map, or None.
        padding_mode: ``grid_sample`` padding of the image (``"border"``, ``"zeros"``,
            ``"reflection"``). Labels outside the field of view become 0 (background).
        label_method: ``"onehot"`` (label-aware linear) or ``"nearest"``, see
            :func:`~firereg.spatial.warp_labels`.

    Returns:
        ``(image_out (N, C, *S), labels_out (N, 1, *S) with the labels' dtype, or None)``.
    """
    d = params.ndim
    if not isinstance(image, Tensor) or image.dim() != d + 2 or not image.is_floating_point():
        got = f"{image.dtype} {tuple(image.shape)}" if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"apply: a {d}D transform needs a floating-point image (N, C, *S) with {d} "
                         f"spatial dims, got {got}")
    size = tuple(image.shape[2:])
    if labels is not None and (not isinstance(labels, Tensor) or labels.dim() != d + 2
                               or labels.shape[1] != 1 or labels.shape[0] != image.shape[0]
                               or tuple(labels.shape[2:]) != size):
        got = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"apply: labels must be (N, 1, *S) = ({image.shape[0]}, 1, "
                         f"{', '.join(map(str, size))}) like the image, got {got}")
    phi = params_to_transform(params, size, dtype=image.dtype, device=image.device)
    out = warp(image, phi, padding_mode=padding_mode)
    out_labels = None if labels is None else warp_labels(labels, phi, method=label_method)
    return out, out_labels


@dataclass(frozen=True)
class AugmentedPair:
    """One augmented pair: images ``(N, C, *S)``, labels ``(N, 1, *S)`` or None, and the params."""

    moving: Tensor
    fixed: Tensor
    moving_labels: Tensor | None
    fixed_labels: Tensor | None
    moving_params: TransformParams
    fixed_params: TransformParams


class RandomPairAugmenter:
    """Independent random transforms of the moving and the fixed image, seeded per item (§4.1).

    Item ``index`` uses the seeds ``derive_seed(seed, index, 0)`` (moving) and
    ``derive_seed(seed, index, 1)`` (fixed): its result does not depend on which items were drawn
    before, nor on the worker that draws it. It is also a dataset ``augment(index, sample)``
    callable (see :mod:`firereg.data.datasets`).

    Args:
        config: ranges and change window.
        seed: base seed, a non-negative int.
        padding_mode, label_method: passed to :func:`apply`.
    """

    def __init__(self, config: AugmentationConfig | None = None, seed: int = 0, *,
                 padding_mode: str = "border", label_method: str = "onehot") -> None:
        self.config = config if config is not None else AugmentationConfig()
        if not isinstance(self.config, AugmentationConfig):
            raise ValueError(f"RandomPairAugmenter: config must be an AugmentationConfig, got "
                             f"{type(config).__name__}")
        derive_seed(seed)  # validates
        self.seed = int(seed)
        self.padding_mode, self.label_method = padding_mode, label_method

    def pair_params(self, index: int, ndim: int,
                    size: Sequence[int] | None = None) -> tuple[TransformParams, TransformParams]:
        """``(moving_params, fixed_params)`` of item ``index`` (``size``: see :func:`sample_params`)."""
        return self._params(index, 0, ndim, size), self._params(index, 1, ndim, size)

    def _params(self, index: int, role: int, ndim: int, size: Sequence[int] | None) -> TransformParams:
        if not isinstance(index, int | np.integer) or isinstance(index, bool) or index < 0:
            raise ValueError(f"RandomPairAugmenter: index must be an int >= 0, got {index!r}")
        return sample_params(ndim, self.config, derive_seed(self.seed, int(index), role), size=size)

    def augment_pair(self, index: int, moving: Tensor, fixed: Tensor,
                     moving_labels: Tensor | None = None,
                     fixed_labels: Tensor | None = None) -> AugmentedPair:
        """Transform ``moving`` and ``fixed`` ``(N, C, *S)`` (and labels ``(N, 1, *S)``) of item
        ``index``, each image with its own transform and its labels with the image's."""
        for name, x in (("moving", moving), ("fixed", fixed)):
            if not isinstance(x, Tensor) or x.dim() not in (4, 5):
                got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
                raise ValueError(f"RandomPairAugmenter.augment_pair: {name} must be (N, C, *S) with 2 "
                                 f"or 3 spatial dims, got {got}")
        ndim = moving.dim() - 2
        if fixed.dim() - 2 != ndim:
            raise ValueError(f"RandomPairAugmenter.augment_pair: moving {tuple(moving.shape)} and fixed "
                             f"{tuple(fixed.shape)} differ in dimensionality")
        moving_params = self._params(index, 0, ndim, moving.shape[2:])
        fixed_params = self._params(index, 1, ndim, fixed.shape[2:])
        kw = {"padding_mode": self.padding_mode, "label_method": self.label_method}
        moving_out, moving_labels_out = apply(moving_params, moving, moving_labels, **kw)
        fixed_out, fixed_labels_out = apply(fixed_params, fixed, fixed_labels, **kw)
        return AugmentedPair(moving_out, fixed_out, moving_labels_out, fixed_labels_out,
                             moving_params, fixed_params)

    def __call__(self, index: int, sample: Any) -> Any:
        """Dataset hook: augment a ``PairSample`` (``x_a``, ``x_b`` ``(C, *S)``, labels ``(1, *S)``).

        Returns a copy with the transformed tensors and ``meta["augmentation"]`` holding the seed,
        the index and both parameter dicts (moving = A, fixed = B).
        """
        if not dataclasses.is_dataclass(sample) or not hasattr(sample, "x_a"):
            raise ValueError(f"RandomPairAugmenter: expected a PairSample, got {type(sample).__name__}")

        def batch(x: Tensor | None) -> Tensor | None:
            return None if x is None else x.unsqueeze(0)

        out = self.augment_pair(index, batch(sample.x_a), batch(sample.x_b), batch(sample.labels_a),
                                batch(sample.labels_b))
        meta = dict(sample.meta)
        meta["augmentation"] = {"seed": self.seed, "index": index,
                                "moving": out.moving_params.to_dict(), "fixed": out.fixed_params.to_dict()}
        return dataclasses.replace(
            sample, x_a=out.moving[0], x_b=out.fixed[0],
            labels_a=None if out.moving_labels is None else out.moving_labels[0],
            labels_b=None if out.fixed_labels is None else out.fixed_labels[0], meta=meta)

    def test_protocol(self, image: Tensor, labels: Tensor | None = None, n: int = 20,
                      seed: int | None = None) -> list[tuple[TransformParams, Tensor, Tensor | None]]:
        """The paper's test protocol (§4.1): the same image transformed ``n`` times.

        Transform ``j`` uses the seed ``derive_seed(seed, j, 2)`` (``seed`` defaults to the
        augmenter's), so the list is reproducible and replayable item by item.

        Args:
            image: ``(N, C, *S)`` floating point.
            labels: ``(N, 1, *S)`` integer, or None.
            n: number of transforms (20 in the paper).

        Returns:
            ``[(params_j, image_j (N, C, *S), labels_j (N, 1, *S) or None)]``, ``n`` entries.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"RandomPairAugmenter.test_protocol: n must be an int >= 1, got {n!r}")
        if not isinstance(image, Tensor) or image.dim() not in (4, 5):
            got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise ValueError(f"RandomPairAugmenter.test_protocol: image must be (N, C, *S) with 2 or 3 "
                             f"spatial dims, got {got}")
        base = self.seed if seed is None else seed
        ndim, size = image.dim() - 2, image.shape[2:]
        results = []
        for j in range(n):
            params = sample_params(ndim, self.config, derive_seed(base, j, 2), size=size)
            out, out_labels = apply(params, image, labels, padding_mode=self.padding_mode,
                                    label_method=self.label_method)
            results.append((params, out, out_labels))
        return results
