"""A synthetic 4D cardiac cine MRI phantom (short-axis bSSFP stack), written in the ACDC layout.

No cardiac MRI can be had offline, so the 4D (3D + time) path of firereg is built and tested on this
phantom. It is *synthetic*: every file it writes says so (README.txt, ``Group: SYNTHETIC`` in
Info.cfg, ``meta["synthetic"] = True``). It is not a substitute for ACDC when reporting results.

What it models
==============
A short-axis stack of ``num_slices`` slices, base (slice 0) to apex, through a beating heart, over
one cardiac cycle of ``num_phases`` frames. Frame 0 is end-diastole (ED, as in ACDC); the
end-systolic (ES) frame is where the contraction peaks, at ~34-42 % of the cycle (from the heart
rate, see :func:`es_fraction_for_heart_rate`).

Anatomy, in a frame attached to the left ventricle (LV): ``h`` is the height in mm above the
(fixed) epicardial apex along the long axis, ``(x, y)`` the in-plane position.

* LV blood pool (label 3): a half prolate spheroid, radius ``R_c * sqrt(1 - ((L - h)/(L - w_a))^2)``
  (``R_c`` = ``lv_radius_mm`` at the base, ``L`` = ``lv_length_mm``, ``w_a`` the apical wall), so it
  shrinks toward the apex. Papillary muscles (dark, labelled LV as in ACDC) in mid-ventricle.
* Myocardium (label 2): the ring to the epicardium, a second spheroid ``R_c + wall_thickness_mm``
  that closes at the apex. Both contours carry fixed per-subject Fourier harmonics (orders 2-4,
  amplitude ``shape_irregularity``), so no slice is a perfect circle.
* Right ventricle (label 1): a crescent wrapped around the septal side of the LV epicardium (so it
  always touches the myocardium), depth ``rv_depth_mm`` at the base, ending before the apex; a thin
  unlabelled RV free wall outside it. Above the base plane, unlabelled atrial blood pools.
* Surroundings from a 3D body model in patient (RAS) coordinates, cut by the oblique slice planes:
  air, subcutaneous fat (bright), chest-wall muscle, lungs (dark), mediastinum, liver below the
  diaphragm, descending aorta (bright), vertebral body, with a smooth +-5 % texture; epicardial fat
  and a thin pericardial layer move with the heart.

Motion, driven by one contraction curve ``c(t)`` in [0, 1] (0 at ED, 1 at ES, see
:func:`contraction_curve`): fast ejection, rapid filling, diastasis, atrial kick.

* Endocardial radius shrinks by ``radial_shortening`` (default 30-40 %) at ES, a little more toward
  the apex and varying +-5-15 % around the circumference (regional wall motion). The cavity area of
  a mid slice thus falls by ~1 - (1 - f)^2, about 47-61 % measured (less than 51-64 % because the
  base descends into the slice); LV ejection fraction 0.48-0.64 over seeds 0-9 of the defaults.
* Longitudinal shortening by ``longitudinal_shortening`` with the apex fixed: the base descends
  ~10-14 mm, so a fixed slice sees more basal tissue in systole (and the basal slice may show the
  atrium at ES, as in real cines).
* The myocardium is incompressible: its cross-section area at a material level is conserved,
  times ``L_ED / L(t)`` for the longitudinal shortening. The epicardial radius follows from that,
  angle by angle: ``r_epi^2 = r_endo^2 + (r_epi,ED^2 - r_endo,ED^2) * L_ED / L(t)``, so the wall
  thickens as the cavity shrinks (by ~40-60 %; the myocardial area in a fixed mid slice is ~20-30 %
  larger at ES: the L_ED / L(t) factor plus the more basal tissue the slice cuts then).
* Twist: the apex turns by +2/3 and the base by -1/3 of ``twist_deg`` at ES; the RV free wall
  moves inward by ``rv_shortening`` of its depth; the heart drifts ~2-3 mm in-plane.

Image formation (bSSFP-like contrast, blood 1.0, myocardium ~0.27, fat ~0.8, lungs ~0.05): every
voxel is rendered at ``supersample``^2 points in-plane and ``through_plane_samples`` planes
through the slice thickness and averaged (partial volume); then a smooth multiplicative bias
field ``exp(bias_strength * g)`` (``g`` a random quadratic in world coordinates, max |g| = 1 over
the volume) and Rician noise: the magnitude of the signal plus complex Gaussian noise of standard
deviation ``noise`` (relative to blood) in each channel. Labels are sampled at voxel centres on the
slice's centre plane, for every frame.

Randomness: ``seed`` drives two independent streams, one for the anatomy and motion, one for the
noise; the same seed with another noise level gives the same heart.

Frame numbering: :class:`~firereg.data.records.CineCase` and :func:`generate_cine` use 0-based
frame indices (ED = 0); ACDC's files and Info.cfg are 1-based (``ED: 1``,
``patient001_frame01.nii.gz``). :func:`write_acdc_phantom` converts (file frame = index + 1).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from firereg.atomic import atomic_write_bytes
from firereg.data.image import Image
from firereg.data.io import write_image, write_labels
from firereg.data.records import CARDIAC_LABELS, CineCase

__all__ = [
    "PhantomConfig",
    "PhantomCine",
    "contraction_curve",
    "es_fraction_for_heart_rate",
    "generate_cine",
    "write_acdc_phantom",
    "subject_seed",
    "HEART_INTENSITY",
    "BACKGROUND_INTENSITY",
]

GENERATOR_VERSION = 1
log = logging.getLogger(__name__)

# Heart tissue classes (internal; mapped to ACDC labels by _HEART_TO_LABEL).
(_NONE, _LV_BLOOD, _MYO, _RV_BLOOD, _PAPILLARY, _RV_WALL, _EPI_FAT, _ATRIAL_BLOOD, _ATRIAL_WALL,
 _PERICARDIUM) = range(10)
HEART_INTENSITY: dict[str, float] = {
    "lv_blood": 1.0, "myocardium": 0.27, "rv_blood": 0.97, "papillary": 0.30, "rv_wall": 0.28,
    "epicardial_fat": 0.80, "atrial_blood": 0.95, "atrial_wall": 0.30, "pericardium": 0.45,
}
"""bSSFP-like mean intensities of the heart's tissues, relative to LV blood (jittered +-8 % per subject)."""
_HEART_ORDER = ("lv_blood", "myocardium", "rv_blood", "papillary", "rv_wall", "epicardial_fat",
                "atrial_blood", "atrial_wall", "pericardium")
_HEART_TO_LABEL = np.array([0, 3, 2, 1, 3, 0, 0, 0, 0, 0], dtype=np.uint8)  # papillary muscles are LV (ACDC)

_AIR, _LUNG, _FAT, _MUSCLE, _MEDIASTINUM, _LIVER, _ABDOMEN, _AORTA, _SPINE = range(9)
BACKGROUND_INTENSITY: dict[str, float] = {
    "air": 0.0, "lung": 0.05, "subcutaneous_fat": 0.82, "muscle": 0.28, "mediastinum": 0.50,
    "liver": 0.32, "abdomen": 0.40, "aorta": 0.90, "spine": 0.45,
}
"""bSSFP-like mean intensities of the surroundings (air stays 0; others jittered +-8 % per subject)."""
_BACKGROUND_ORDER = ("air", "lung", "subcutaneous_fat", "muscle", "mediastinum", "liver", "abdomen",
                     "aorta", "spine")

_TEXTURE = 0.05  # relative amplitude (standard deviation) of the smooth texture of the surroundings

_RANGE_FIELDS = {  # name -> (smallest allowed low, largest allowed high)
    "heart_rate_bpm": (40.0, 120.0),
    "lv_radius_mm": (15.0, 40.0),
    "lv_length_mm": (50.0, 130.0),
    "wall_thickness_mm": (4.0, 20.0),
    "radial_shortening": (0.05, 0.5),
    "longitudinal_shortening": (0.0, 0.25),
    "twist_deg": (0.0, 30.0),
    "rv_depth_mm": (5.0, 35.0),
    "rv_shortening": (0.05, 0.6),
    "shape_irregularity": (0.0, 0.12),
}


@dataclass(frozen=True)
class PhantomConfig:
    """Acquisition and population settings of the phantom. Validated on construction.

    Attributes:
        size: in-plane matrix ``(X, Y)``.
        pixel_spacing_mm: in-plane voxel size (ACDC: 1.37-1.68 mm).
        num_slices: short-axis slices ``Z``, base (index 0) to apex.
        slice_spacing_mm: distance between slice centres (ACDC: 5-10 mm).
        slice_thickness_mm: thickness each slice integrates over; None = the slice spacing.
        num_phases: frames per cycle ``T``, 20 to 40 (ACDC: 28-40).
        heart_rate_bpm: (low, high) range the subject's heart rate is drawn from; sets the frame
            duration (``60 / HR / T`` s, the 4D file's pixdim[4]) and, unless ``es_fraction`` is
            given, the ES timing.
        es_fraction: ES time as a fraction of the cycle (0.2-0.5), or None to derive it from the
            heart rate. ED is always frame 0.
        noise: standard deviation of the complex Gaussian noise per channel, relative to the blood
            intensity (0 = noise-free); the magnitude gives Rician noise.
        bias_strength: the multiplicative bias field is ``exp(bias_strength * g)``, ``|g| <= 1``.
        supersample: in-plane samples per voxel edge for partial-volume rendering (1-5).
        through_plane_samples: planes sampled through the slice thickness (1-7).
        lv_radius_mm ... shape_irregularity: (low, high) ranges each subject's anatomy and motion
            is drawn from, uniformly (see the module docstring for what each one does); a single
            number fixes the value for every subject. ``heart_rate_bpm`` likewise.
        heart_offset_mm: largest in-plane displacement of the LV centre from the image centre.
        papillary_muscles: draw two papillary muscles in the LV (labelled LV, as in ACDC).
    """

    size: tuple[int, int] = (128, 128)
    pixel_spacing_mm: float = 1.5
    num_slices: int = 10
    slice_spacing_mm: float = 8.0
    slice_thickness_mm: float | None = None
    num_phases: int = 30
    heart_rate_bpm: tuple[float, float] = (55.0, 75.0)
    es_fraction: float | None = None
    noise: float = 0.04
    bias_strength: float = 0.25
    supersample: int = 3
    through_plane_samples: int = 3
    lv_radius_mm: tuple[float, float] = (26.0, 31.0)
    lv_length_mm: tuple[float, float] = (85.0, 100.0)
    wall_thickness_mm: tuple[float, float] = (8.0, 10.5)
    radial_shortening: tuple[float, float] = (0.30, 0.40)
    longitudinal_shortening: tuple[float, float] = (0.11, 0.16)
    twist_deg: tuple[float, float] = (8.0, 16.0)
    rv_depth_mm: tuple[float, float] = (20.0, 30.0)
    rv_shortening: tuple[float, float] = (0.40, 0.50)
    shape_irregularity: tuple[float, float] = (0.02, 0.06)
    heart_offset_mm: float = 8.0
    papillary_muscles: bool = True

    def __post_init__(self) -> None:
        size = tuple(self.size) if isinstance(self.size, list | tuple) else None
        if size is None or len(size) != 2 or not all(_is_int(s) and 32 <= s <= 1024 for s in size):
            raise ValueError(f"PhantomConfig.size must be two integers in [32, 1024], got {self.size!r}")
        object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        _check_number("pixel_spacing_mm", self.pixel_spacing_mm, 0.3, 5.0)
        _check_int("num_slices", self.num_slices, 1, 40)
        _check_number("slice_spacing_mm", self.slice_spacing_mm, 1.0, 25.0)
        if self.slice_thickness_mm is not None:
            _check_number("slice_thickness_mm", self.slice_thickness_mm, 0.5, 25.0)
        _check_int("num_phases", self.num_phases, 20, 40,
                   hint="a cine cycle here has 20 to 40 frames (ACDC: 28-40)")
        if self.es_fraction is not None:
            _check_number("es_fraction", self.es_fraction, 0.2, 0.5)
        _check_number("noise", self.noise, 0.0, 0.5)
        _check_number("bias_strength", self.bias_strength, 0.0, 1.0)
        _check_int("supersample", self.supersample, 1, 5)
        _check_int("through_plane_samples", self.through_plane_samples, 1, 7)
        _check_number("heart_offset_mm", self.heart_offset_mm, 0.0, 40.0)
        if not isinstance(self.papillary_muscles, bool):
            raise ValueError(f"PhantomConfig.papillary_muscles must be True or False, got "
                             f"{self.papillary_muscles!r}")
        for name, (lo_bound, hi_bound) in _RANGE_FIELDS.items():
            object.__setattr__(self, name, _check_range(name, getattr(self, name), lo_bound, hi_bound))
        fov = min(self.size) * self.pixel_spacing_mm
        needed = 2 * (self.lv_radius_mm[1] + self.wall_thickness_mm[1] + self.rv_depth_mm[1]
                      + self.heart_offset_mm) + 20.0
        if fov < needed:
            raise ValueError(f"PhantomConfig.size: the in-plane field of view min(size) * pixel_spacing_mm = "
                             f"{fov:.0f} mm cannot hold the heart and its RV ({needed:.0f} mm needed); "
                             "use more pixels or larger ones")

    @property
    def thickness_mm(self) -> float:
        """The slice thickness in use (the spacing when ``slice_thickness_mm`` is None)."""
        return float(self.slice_spacing_mm if self.slice_thickness_mm is None else self.slice_thickness_mm)

    def to_dict(self) -> dict:
        """Plain values (tuples as lists), e.g. for README.txt or YAML."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _check_int(name: str, value, lo: int, hi: int, hint: str = "") -> None:
    if not _is_int(value) or not lo <= value <= hi:
        extra = f" ({hint})" if hint else ""
        raise ValueError(f"PhantomConfig.{name} must be an integer in [{lo}, {hi}]{extra}, got {value!r}")


def _check_number(name: str, value, lo: float, hi: float) -> None:
    if not _is_number(value) or not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"PhantomConfig.{name} must be a number in [{lo:g}, {hi:g}], got {value!r}")


def _check_range(name: str, value, lo: float, hi: float) -> tuple[float, float]:
    if _is_number(value):  # one number: the same for every subject
        value = (value, value)
    ok = (isinstance(value, list | tuple) and len(value) == 2 and all(_is_number(v) for v in value)
          and all(math.isfinite(v) for v in value))
    if not ok or not lo <= value[0] <= value[1] <= hi:
        raise ValueError(f"PhantomConfig.{name} must be a (low, high) pair with {lo:g} <= low <= high "
                         f"<= {hi:g}, got {value!r}")
    return float(value[0]), float(value[1])


# --------------------------------------------------------------------------------------------
# Timing


def es_fraction_for_heart_rate(heart_rate_bpm: float) -> float:
    """End-systole as a fraction of the cycle, from the heart rate.

    ES time after the R wave ~ 50 ms isovolumic contraction + the ejection time of Weissler's
    regression (413 - 1.7 HR ms), i.e. ``0.463 - 0.0017 HR`` s, divided by ``RR = 60 / HR`` and
    kept in [0.25, 0.45]. 60 bpm -> 0.36, 70 -> 0.40, 80 -> 0.44.
    """
    rr = 60.0 / heart_rate_bpm
    return float(np.clip((0.463 - 0.0017 * heart_rate_bpm) / rr, 0.25, 0.45))


def _smoothstep(x: np.ndarray) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


def contraction_curve(num_phases: int, es_frame: int, rr_s: float) -> np.ndarray:
    """Contraction ``c`` of each frame, ``(T,)`` in [0, 1]: 0 at ED (frame 0), 1 at ES only.

    Systole (frames 0 .. es): ``c = smoothstep((t / t_es)^0.85)``, fast early ejection with zero
    slope at both ends. Diastole: rapid filling over ~0.2 s back to c = 0.22, diastasis (slow
    filling, linear to c = 0.17), then the atrial kick over the last ~0.14 s to c = 0 at the next
    R wave. At high heart rates the diastasis vanishes (the E and A waves fuse). Periodic: frame T
    would equal frame 0.
    """
    phase = np.arange(num_phases, dtype=np.float64) / num_phases
    p_es = es_frame / num_phases
    c_fill, c_atrial = 0.22, 0.17
    p_fill = p_es + 0.20 / rr_s
    p_atrial = 1.0 - 0.14 / rr_s
    if p_fill > p_atrial - 0.02:  # fused filling waves
        p_fill = p_atrial = min(max(0.5 * (p_fill + p_atrial), p_es + 0.05), 0.95)
        c_fill = c_atrial
    c = np.empty_like(phase)
    sys = phase <= p_es
    c[sys] = _smoothstep((phase[sys] / p_es) ** 0.85)
    fill = (phase > p_es) & (phase <= p_fill)
    c[fill] = 1.0 - (1.0 - c_fill) * _smoothstep((phase[fill] - p_es) / max(p_fill - p_es, 1e-9))
    dia = (phase > p_fill) & (phase <= p_atrial)
    c[dia] = c_fill - (c_fill - c_atrial) * (phase[dia] - p_fill) / max(p_atrial - p_fill, 1e-9)
    atr = phase > p_atrial
    c[atr] = c_atrial * (1.0 - _smoothstep((phase[atr] - p_atrial) / (1.0 - p_atrial)))
    return c


# --------------------------------------------------------------------------------------------
# One subject's anatomy


@dataclass(frozen=True)
class _Subject:
    """Everything drawn at random for one subject (lengths in mm, angles in radians)."""

    heart_rate: float
    lv_radius: float
    lv_length: float
    wall: float
    apex_wall: float
    radial_short: float
    long_short: float
    twist: float
    rv_depth: float
    rv_short: float
    rv_angle: float
    rv_half_span: float
    rv_apex_frac: float
    rv_wall: float
    endo_harmonics: tuple[complex, complex, complex]
    epi_harmonics: tuple[complex, complex, complex]
    regional: complex
    papillary_angles: tuple[float, float]
    papillary_radius: float
    fat: float
    fat_angle: float
    centre: tuple[float, float]
    tilt: tuple[float, float]
    drift: tuple[float, float]
    top: float
    long_axis: tuple[float, float, float]
    axis_i: tuple[float, float, float]
    axis_j: tuple[float, float, float]
    heart_world: tuple[float, float, float]
    body_centre: tuple[float, float]
    body_axes: tuple[float, float]
    fat_layer: float
    muscle_layer: float
    diaphragm: float
    height_cm: float
    weight_kg: float
    heart_lut: tuple[float, ...]
    background_lut: tuple[float, ...]
    bias_coefficients: tuple[float, ...]
    texture_waves: tuple[tuple[float, ...], ...]

    def summary(self) -> dict:
        """Scalar parameters, for meta and README."""
        keep = ("heart_rate", "lv_radius", "lv_length", "wall", "radial_short", "long_short", "rv_depth",
                "rv_short", "height_cm", "weight_kg")
        out = {k: round(float(getattr(self, k)), 4) for k in keep}
        out["twist_deg"] = round(math.degrees(self.twist), 3)
        return out


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _sample_subject(config: PhantomConfig, seq: np.random.SeedSequence) -> _Subject:
    """Draw one subject. Separate streams for size, motion, shape, pose, body and appearance, so
    that adding a draw to one of them leaves the others (e.g. the heart's size) unchanged."""
    size, motion, shape, pose, body, look = (np.random.default_rng(q) for q in seq.spawn(6))

    def draw(rng: np.random.Generator, name: str) -> float:
        lo, hi = getattr(config, name)
        return float(rng.uniform(lo, hi))

    lv_radius, lv_length = draw(size, "lv_radius_mm"), draw(size, "lv_length_mm")
    wall, rv_depth = draw(size, "wall_thickness_mm"), draw(size, "rv_depth_mm")
    apex_wall = wall * size.uniform(0.7, 0.85)
    height = float(size.uniform(155.0, 192.0))
    bmi = float(size.uniform(19.0, 30.0))

    heart_rate = draw(motion, "heart_rate_bpm")
    radial_short, long_short = draw(motion, "radial_shortening"), draw(motion, "longitudinal_shortening")
    twist, rv_short = math.radians(draw(motion, "twist_deg")), draw(motion, "rv_shortening")
    regional = complex(motion.uniform(0.05, 0.15) * np.exp(-1j * motion.uniform(0, 2 * math.pi)))
    drift = motion.uniform(1.5, 3.0) * _unit(motion.normal(size=2))

    irregular = draw(shape, "shape_irregularity")

    def harmonics(scale: float) -> tuple[complex, complex, complex]:
        amps = [scale * irregular * shape.uniform(0.4, 1.0) / math.sqrt(k) for k in (2, 3, 4)]
        phases = shape.uniform(0, 2 * math.pi, size=3)
        return tuple(complex(a * np.exp(-1j * k * p))
                     for a, k, p in zip(amps, (2, 3, 4), phases, strict=True))

    endo_harmonics, epi_harmonics = harmonics(1.0), harmonics(0.6)
    rv_angle = math.pi + shape.uniform(-0.35, 0.35)  # the RV lies on the image's -x side
    rv_half_span, rv_apex_frac = shape.uniform(1.2, 1.4), shape.uniform(0.18, 0.32)
    rv_wall = shape.uniform(2.5, 4.0)
    papillary_angles = (rv_angle + math.pi - 0.75 + shape.uniform(-0.2, 0.2),
                        rv_angle + math.pi + 0.95 + shape.uniform(-0.2, 0.2))
    papillary_radius = shape.uniform(2.5, 3.5)
    fat, fat_angle = shape.uniform(1.5, 4.0), rv_angle + math.pi + shape.uniform(-0.8, 0.8)

    offset = pose.uniform(0, config.heart_offset_mm) * _unit(pose.normal(size=2))
    tilt = pose.uniform(0.03, 0.10) * _unit(pose.normal(size=2))
    top = pose.uniform(0.78, 0.90) * lv_length  # the basal slice, at ED
    # Orientation: the long axis (base -> apex) points left, anterior and inferior (RAS); the image
    # axes are chosen so that the RV, anterior-right of the LV, appears at the angle rv_angle.
    n = _unit(np.array([-0.55, 0.55, -0.62]) + pose.normal(scale=0.07, size=3))
    rv_dir = np.array([0.75, 0.6, 0.1])
    e_rv = _unit(rv_dir - np.dot(rv_dir, n) * n)
    v = np.cross(n, e_rv)
    axis_i = math.cos(rv_angle) * e_rv - math.sin(rv_angle) * v
    axis_j = math.sin(rv_angle) * e_rv + math.cos(rv_angle) * v  # cos a * i + sin a * j = e_rv
    heart_world = np.array([-15.0, 20.0, 30.0]) + pose.normal(scale=8.0, size=3)

    fat_layer = float(np.clip(6.0 + 1.3 * (bmi - 19.0) + body.uniform(-2, 2), 4.0, 30.0))
    body_scale = 0.92 + 0.012 * (bmi - 19.0) + 0.002 * (height - 170)
    body_centre = (40.0 + body.uniform(-8, 8), -35.0 + body.uniform(-6, 6))
    muscle_layer = body.uniform(10.0, 16.0)
    diaphragm = -(lv_length * 0.55) + body.uniform(-8.0, 4.0)

    heart_lut = [0.0] + [HEART_INTENSITY[k] * look.uniform(0.92, 1.08) for k in _HEART_ORDER]
    background_lut = [0.0] + [BACKGROUND_INTENSITY[k] * look.uniform(0.92, 1.08)
                              for k in _BACKGROUND_ORDER[1:]]
    return _Subject(
        heart_rate=heart_rate, lv_radius=lv_radius, lv_length=lv_length, wall=wall, apex_wall=apex_wall,
        radial_short=radial_short, long_short=long_short, twist=twist, rv_depth=rv_depth, rv_short=rv_short,
        rv_angle=rv_angle, rv_half_span=rv_half_span, rv_apex_frac=rv_apex_frac, rv_wall=rv_wall,
        endo_harmonics=endo_harmonics, epi_harmonics=epi_harmonics, regional=regional,
        papillary_angles=papillary_angles, papillary_radius=papillary_radius, fat=fat, fat_angle=fat_angle,
        centre=(float(offset[0]), float(offset[1])), tilt=(float(tilt[0]), float(tilt[1])),
        drift=(float(drift[0]), float(drift[1])), top=top,
        long_axis=tuple(n.tolist()), axis_i=tuple(axis_i.tolist()), axis_j=tuple(axis_j.tolist()),
        heart_world=tuple(heart_world.tolist()), body_centre=body_centre,
        body_axes=(165.0 * body_scale, 118.0 * body_scale), fat_layer=fat_layer, muscle_layer=muscle_layer,
        diaphragm=diaphragm, height_cm=round(height, 1), weight_kg=round(bmi * (height / 100.0) ** 2, 1),
        heart_lut=tuple(heart_lut), background_lut=tuple(background_lut),
        bias_coefficients=tuple(look.normal(size=9).tolist()), texture_waves=_texture_waves(look),
    )


# --------------------------------------------------------------------------------------------
# Rendering


def _cavity_profile(s: _Subject, h: np.ndarray) -> np.ndarray:
    """ED endocardial radius (before harmonics) at material height ``h`` (mm above the apex)."""
    q = (s.lv_length - h) / (s.lv_length - s.apex_wall)
    r = s.lv_radius * np.sqrt(np.clip(1.0 - q * q, 0.0, None))
    return np.where((h >= s.apex_wall) & (h <= s.lv_length), r, 0.0)


def _epicardial_profile(s: _Subject, h: np.ndarray) -> np.ndarray:
    q = (s.lv_length - h) / s.lv_length
    r = (s.lv_radius + s.wall) * np.sqrt(np.clip(1.0 - q * q, 0.0, None))
    return np.where((h >= 0) & (h <= s.lv_length), r, 0.0)


def _centres(s: _Subject, h: np.ndarray, c: float) -> np.ndarray:
    """LV axis position ``(P, 2)`` in the plane at scanner heights ``h`` and contraction ``c``."""
    return (np.asarray(s.centre)[None] + np.outer(h - s.lv_length / 2, s.tilt)
            + c * np.asarray(s.drift)[None])


def _heart_classes(s: _Subject, xs: np.ndarray, ys: np.ndarray, hs: np.ndarray, c: float,
                   papillary: bool) -> np.ndarray:
    """Heart tissue class at in-plane points ``xs (Nx,)`` x ``ys (Ny,)`` (mm) on planes at scanner
    heights ``hs (P,)`` (mm above the apex) at contraction ``c``: int8 ``(P, Nx, Ny)``, 0 = no heart."""
    out = np.zeros((hs.size, xs.size, ys.size), dtype=np.int8)
    scale = 1.0 / (1.0 - s.long_short * c)  # apex fixed, uniform longitudinal shortening
    centres = _centres(s, hs, c)
    for p, h in enumerate(hs):
        hm = float(h) * scale  # the material height (at ED) this plane cuts
        if 0.0 <= hm < s.lv_length + 40.0:
            out[p] = _heart_plane(s, xs - centres[p, 0], ys - centres[p, 1], hm, scale, c, papillary)
    return out


def _heart_plane(s: _Subject, dxs: np.ndarray, dys: np.ndarray, hm: float, scale: float, c: float,
                 papillary: bool) -> np.ndarray:
    """Classes ``(Nx, Ny)`` of one plane; ``dxs, dys`` are offsets from the LV axis (mm)."""
    L = s.lv_length
    u = min(hm / L, 1.0)
    psi = c * s.twist * ((1.0 - u) * (2.0 / 3.0) - u / 3.0)
    dx = dxs.astype(np.float32)[:, None]
    dy = dys.astype(np.float32)[None, :]
    r = np.hypot(dx, dy)
    z = (dx + 1j * dy) / np.maximum(r, np.float32(1e-3))
    z *= np.complex64(np.exp(-1j * psi))  # material direction (untwisted)
    z2 = z * z
    z3 = z2 * z
    z4 = z2 * z2

    def harmonic(coeffs) -> np.ndarray:
        return 1.0 + np.real(np.complex64(coeffs[0]) * z2 + np.complex64(coeffs[1]) * z3
                             + np.complex64(coeffs[2]) * z4)

    def towards(angle: float) -> np.ndarray:  # cosine of the angle to a material direction
        return np.real(z * np.complex64(np.exp(-1j * angle)))

    out = np.zeros(r.shape, dtype=np.int8)
    cos_span = math.cos(s.rv_half_span)
    rv_cos = towards(s.rv_angle)
    bump = np.clip((rv_cos - cos_span) / (1.0 - cos_span), 0.0, 1.0) ** 0.6
    rv_sector = rv_cos > math.cos(s.rv_half_span + 0.25)
    hmv = np.array([hm])

    if hm > L:  # above the base plane: atrial blood pools (unlabelled), the base's shape, static
        r_la = float(_cavity_profile(s, np.array([L]))[0]) * 0.9 * harmonic(s.endo_harmonics)
        ra_inner = r_la + 3.0
        ra_outer = ra_inner + s.rv_depth * 1.1 * bump
        out[(r < ra_outer + 2.5) & (rv_sector | (r < ra_inner))] = _ATRIAL_WALL
        out[(bump > 0) & (r >= ra_inner) & (r < ra_outer)] = _ATRIAL_BLOOD
        out[r < r_la] = _ATRIAL_BLOOD
        return out

    cav_ed = float(_cavity_profile(s, hmv)[0])
    epi_ed = float(_epicardial_profile(s, hmv)[0])
    rc_ed = cav_ed * harmonic(s.endo_harmonics)
    min_wall = 0.6 * s.wall if cav_ed > 0 else 0.0
    re_ed = np.maximum(epi_ed * harmonic(s.epi_harmonics), rc_ed + min_wall)
    regional = 1.0 + np.real(np.complex64(s.regional) * z)  # regional wall motion, +-5-15 %
    shortening = s.radial_short * (1.0 + 0.3 * (0.5 - u)) * regional
    rc = rc_ed * (1.0 - shortening * c)
    # incompressible myocardium: area per unit length conserved, times the longitudinal shortening
    re = np.sqrt(rc * rc + (re_ed * re_ed - rc_ed * rc_ed) * scale)

    # right ventricle: a crescent on the septal side, depth tapering toward its apical end
    h_rv = s.rv_apex_frac * L
    reach = math.sqrt(min(max((hm - h_rv) / (L - h_rv), 0.0), 1.0))
    depth_level = s.rv_depth * reach * (1.0 - s.rv_short * c)
    outside = r >= re
    shell = re + (s.fat * np.clip(towards(s.fat_angle), 0.0, 1.0) ** 2 if cav_ed > 0 else 0.0)
    out[outside & (r < shell)] = _EPI_FAT
    if depth_level > 0.5:
        depth = depth_level * bump
        rv_outer = re + depth
        rv_wall = rv_sector & outside & (r < rv_outer + s.rv_wall)
        out[rv_wall] = _RV_WALL
        out[(depth > 0.3) & outside & (r < rv_outer)] = _RV_BLOOD
        shell = np.where(rv_sector, np.maximum(shell, rv_outer + s.rv_wall), shell)
    out[(out == _NONE) & (r < shell + 2.0)] = _PERICARDIUM  # moves with the heart
    out[~outside] = _MYO
    blood = r < rc
    out[blood] = _LV_BLOOD

    taper = math.sin(math.pi * min(max((u - 0.2) / 0.6, 0.0), 1.0))  # mid-ventricle only
    if papillary and taper > 0:
        rho = s.papillary_radius * (1.0 + 0.35 * c) * taper
        pos = cav_ed * (1.0 - s.radial_short * c) * (0.68 + 0.07 * c)
        for angle in s.papillary_angles:
            a = angle + psi
            d2 = (dx - pos * math.cos(a)) ** 2 + (dy - pos * math.sin(a)) ** 2
            out[blood & (d2 < rho * rho)] = _PAPILLARY
    return out


def _background_classes(s: _Subject, rel: np.ndarray) -> np.ndarray:
    """Tissue class of the surroundings at RAS points ``rel (..., 3)`` (mm from the LV centre)."""
    x, y, zc = rel[..., 0], rel[..., 1], rel[..., 2]
    bx, by = s.body_centre
    ax, ay = s.body_axes

    def ellipse(shrink: float) -> np.ndarray:
        return ((x - bx) / (ax - shrink)) ** 2 + ((y - by) / (ay - shrink)) ** 2 < 1.0

    out = np.full(x.shape, _AIR, dtype=np.int8)
    out[ellipse(0.0)] = _FAT
    out[ellipse(s.fat_layer)] = _MUSCLE
    cavity = ellipse(s.fat_layer + s.muscle_layer)
    out[cavity] = _MEDIASTINUM
    dome = s.diaphragm + 0.12 * x + 0.05 * y  # the right hemidiaphragm sits higher
    below = cavity & (zc < dome)
    out[below] = _ABDOMEN
    out[below & (x > -35.0 + 0.2 * y)] = _LIVER
    # lungs fill the chest above the diaphragm, except the mediastinum: a band about the midline
    # (sternum to spine) and the aorta; the heart is drawn over them
    spine_y = by - ay + s.fat_layer + 32.0
    aorta = (x + 15.0) ** 2 + (y - spine_y - 30.0) ** 2 < 12.0**2
    band = np.abs(x - bx + 5.0) < 22.0 + 0.25 * np.clip(y - spine_y, 0.0, None)
    lung = cavity & ~below & ~band & ((x + 15.0) ** 2 + (y - spine_y - 30.0) ** 2 > 17.0**2)
    out[lung] = _LUNG
    out[cavity & aorta] = _AORTA
    out[ellipse(0.0) & ((x - bx + 5.0) ** 2 + ((y - spine_y) / 0.9) ** 2 < 18.0**2)] = _SPINE
    return out


def _texture_waves(rng: np.random.Generator, count: int = 16) -> tuple[tuple[float, ...], ...]:
    """Random plane waves (wave vector in rad/mm, phase) with wavelengths 8-40 mm."""
    waves = []
    for _ in range(count):
        k = 2 * math.pi / rng.uniform(8.0, 40.0) * _unit(rng.normal(size=3))
        waves.append((float(k[0]), float(k[1]), float(k[2]), float(rng.uniform(0, 2 * math.pi))))
    return tuple(waves)


def _texture(s: _Subject, rel: np.ndarray) -> np.ndarray:
    """Smooth tissue texture at RAS points ``rel (..., 3)``: zero mean, unit standard deviation."""
    waves = np.asarray(s.texture_waves)
    return np.cos(rel @ waves[:, :3].T + waves[:, 3]).sum(axis=-1) * math.sqrt(2.0 / len(waves))


def _bias_field(s: _Subject, rel: np.ndarray, strength: float) -> np.ndarray:
    """``exp(strength * g)`` with ``g`` a quadratic in RAS position scaled to max |g| = 1."""
    p = rel / 100.0
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    terms = (x, y, z, x * x, y * y, z * z, x * y, x * z, y * z)
    g = sum(c * t for c, t in zip(s.bias_coefficients, terms, strict=True))
    g = g - 0.5 * (g.max() + g.min())
    g = g / max(float(np.abs(g).max()), 1e-12)
    return np.exp(strength * g).astype(np.float32)


class _Grid(NamedTuple):
    affine: np.ndarray  # (4, 4) voxel -> world
    xs: np.ndarray  # (X,) in-plane x of voxel centres, mm from the image centre
    ys: np.ndarray  # (Y,)
    hs: np.ndarray  # (Z,) scanner height of slice centres above the ED apex, mm
    offsets: np.ndarray  # (n,) through-plane sample offsets toward the apex, mm


def _grid(config: PhantomConfig, s: _Subject) -> _Grid:
    X, Y = config.size
    Z = config.num_slices
    dx = config.pixel_spacing_mm
    dz = config.slice_spacing_mm
    xs = (np.arange(X) - (X - 1) / 2) * dx
    ys = (np.arange(Y) - (Y - 1) / 2) * dx
    hs = s.top - np.arange(Z) * dz
    n_sub = config.through_plane_samples
    offsets = ((np.arange(n_sub) + 0.5) / n_sub - 0.5) * config.thickness_mm
    ui, uj, n = (np.asarray(v) for v in (s.axis_i, s.axis_j, s.long_axis))
    # world(i, j, k) = heart + (x_i - cx) ui + (y_j - cy) uj + (L/2 - h_k) n
    affine = np.eye(4)
    affine[:3, 0] = dx * ui
    affine[:3, 1] = dx * uj
    affine[:3, 2] = dz * n
    affine[:3, 3] = (np.asarray(s.heart_world) + (xs[0] - s.centre[0]) * ui + (ys[0] - s.centre[1]) * uj
                     + (s.lv_length / 2 - hs[0]) * n)
    return _Grid(affine, xs, ys, hs, offsets)


def _relative_ras(s: _Subject, xs: np.ndarray, ys: np.ndarray, h: float) -> np.ndarray:
    """RAS offsets ``(Nx, Ny, 3)`` from the heart's reference point of in-plane points at height h."""
    ui, uj, n = (np.asarray(v) for v in (s.axis_i, s.axis_j, s.long_axis))
    a = (xs - s.centre[0])[:, None, None] * ui
    b = (ys - s.centre[1])[None, :, None] * uj
    return a + b + (s.lv_length / 2 - h) * n


def _subsamples(centres: np.ndarray, spacing: float, k: int) -> np.ndarray:
    """``k`` evenly spread sample positions inside each voxel, ``(N * k,)``, voxel-major."""
    offsets = ((np.arange(k) + 0.5) / k - 0.5) * spacing
    return (centres[:, None] + offsets[None, :]).ravel()


def _bounding_box(config: PhantomConfig, s: _Subject, grid: _Grid) -> tuple[slice, slice]:
    """Voxel ranges that hold the heart in every frame (it is largest at ED)."""
    angles = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    span = np.cos(angles - s.rv_angle) > math.cos(s.rv_half_span + 0.3)
    harm = sum(abs(a) for a in s.epi_harmonics) + sum(abs(a) for a in s.endo_harmonics)
    reach = (s.lv_radius + s.wall) * (1 + harm) + s.fat + 6.0 + np.where(
        span, 1.1 * s.rv_depth + s.rv_wall + 4.0, 0.0)
    lo = np.array([np.inf, np.inf])
    hi = -lo
    for c in (0.0, 1.0):
        heights = np.concatenate([grid.hs + grid.offsets.min(), grid.hs + grid.offsets.max()])
        for cen in _centres(s, heights, c):
            pts = cen[None] + reach[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
            lo = np.minimum(lo, pts.min(axis=0))
            hi = np.maximum(hi, pts.max(axis=0))
    d = config.pixel_spacing_mm
    boxes = []
    for axis, coords in enumerate((grid.xs, grid.ys)):
        i0 = int(np.clip(np.floor((lo[axis] - coords[0]) / d) - 1, 0, coords.size))
        i1 = int(np.clip(np.ceil((hi[axis] - coords[0]) / d) + 2, i0, coords.size))
        boxes.append(slice(i0, i1))
    return boxes[0], boxes[1]


def _check_inside(classes: np.ndarray, bx: slice, by: slice, size: tuple[int, int]) -> None:
    """The heart must not touch a side of its box that is not also a side of the image."""
    sides = [(bx.start > 0, classes[:, 0, :]), (bx.stop < size[0], classes[:, -1, :]),
             (by.start > 0, classes[:, :, 0]), (by.stop < size[1], classes[:, :, -1])]
    if any(inner and edge.any() for inner, edge in sides):
        raise RuntimeError("cardiac_phantom: internal error, the heart leaves its bounding box")


class PhantomCine(NamedTuple):
    """What :func:`generate_cine` returns (a tuple: ``cine, labels, ed, es, meta = ...``).

    Attributes:
        cine: ``Image`` with data ``(X, Y, Z, T)`` float32, slice 0 basal, and its affine.
        labels: ``(X, Y, Z, T)`` uint8, 0 background, 1 RV, 2 myocardium, 3 LV, every frame.
        ed: 0-based ED frame (always 0).
        es: 0-based ES frame.
        meta: ``{"synthetic": True, ...}``: timing, sampled anatomy, volumes per frame (mL),
            the contraction curve and the bias field ``(X, Y, Z)``.
    """

    cine: Image
    labels: np.ndarray
    ed: int
    es: int
    meta: dict


def _check_seed(seed, where: str) -> int:
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"{where}: seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def generate_cine(config: PhantomConfig | None = None, seed: int = 0) -> PhantomCine:
    """Render one synthetic subject's short-axis cine and its labels for every frame.

    Args:
        config: acquisition and population settings; None = ``PhantomConfig()``.
        seed: non-negative integer; the same seed and config give the same arrays.

    Returns:
        :class:`PhantomCine` ``(cine, labels, ed, es, meta)``; cine ``(X, Y, Z, T)`` float32,
        labels ``(X, Y, Z, T)`` uint8 with values in {0, 1, 2, 3}, ``ed = 0``, ``es`` 0-based.
    """
    config = PhantomConfig() if config is None else config
    if not isinstance(config, PhantomConfig):
        raise ValueError(f"generate_cine: config must be a PhantomConfig, got {type(config).__name__}")
    seed = _check_seed(seed, "generate_cine")
    anatomy_seq, noise_seq = np.random.SeedSequence(seed).spawn(2)
    s = _sample_subject(config, anatomy_seq)
    noise_rng = np.random.default_rng(noise_seq)

    X, Y = config.size
    Z, T = config.num_slices, config.num_phases
    k_in, n_sub = config.supersample, config.through_plane_samples
    d = config.pixel_spacing_mm
    grid = _grid(config, s)
    rr = 60.0 / s.heart_rate
    es_frac = config.es_fraction
    if es_frac is None:
        es_frac = es_fraction_for_heart_rate(s.heart_rate)
    es = int(np.clip(round(es_frac * T), 2, T - 3))
    c_curve = contraction_curve(T, es, rr)

    # static surroundings, rendered once at high resolution
    xs_hr = _subsamples(grid.xs, d, k_in)
    ys_hr = _subsamples(grid.ys, d, k_in)
    plane_h = (grid.hs[:, None] - grid.offsets[None, :]).ravel()  # (Z * n_sub,), slice-major
    bg_lut = np.asarray(s.background_lut, dtype=np.float32)
    bx, by = _bounding_box(config, s, grid)
    bx_hr = slice(bx.start * k_in, bx.stop * k_in)
    by_hr = slice(by.start * k_in, by.stop * k_in)
    background = np.empty((X, Y, Z), dtype=np.float32)
    bg_box = np.empty((plane_h.size, bx_hr.stop - bx_hr.start, by_hr.stop - by_hr.start), dtype=np.float32)
    acc = np.zeros((X, Y), dtype=np.float64)
    for p, h in enumerate(plane_h):
        classes = _background_classes(s, _relative_ras(s, xs_hr, ys_hr, h))
        texture = _texture(s, _relative_ras(s, grid.xs, grid.ys, h)).astype(np.float32)
        texture = np.repeat(np.repeat(texture, k_in, axis=0), k_in, axis=1)
        values = bg_lut[classes] * (1.0 + _TEXTURE * texture)
        bg_box[p] = values[bx_hr, by_hr]
        acc += values.reshape(X, k_in, Y, k_in).mean(axis=(1, 3))
        if p % n_sub == n_sub - 1:
            background[:, :, p // n_sub] = acc / n_sub
            acc[:] = 0.0
    bias = _bias_field(s, np.stack([_relative_ras(s, grid.xs, grid.ys, h) for h in grid.hs], axis=2),
                       config.bias_strength)

    heart_lut = np.asarray(s.heart_lut, dtype=np.float32)
    nx, ny = bx.stop - bx.start, by.stop - by.start
    cine = np.empty((X, Y, Z, T), dtype=np.float32)
    labels = np.zeros((X, Y, Z, T), dtype=np.uint8)
    for t in range(T):
        c = float(c_curve[t])
        classes = _heart_classes(s, xs_hr[bx_hr], ys_hr[by_hr], plane_h, c, config.papillary_muscles)
        _check_inside(classes, bx, by, (X, Y))
        values = np.where(classes > 0, heart_lut[classes], bg_box)
        box = values.reshape(Z, n_sub, nx, k_in, ny, k_in).mean(axis=(1, 3, 5))
        frame = background.copy()
        frame[bx, by, :] = np.moveaxis(box, 0, -1)
        centre_classes = _heart_classes(s, grid.xs[bx], grid.ys[by], grid.hs, c, config.papillary_muscles)
        labels[bx, by, :, t] = np.moveaxis(_HEART_TO_LABEL[centre_classes], 0, -1)
        signal = frame * bias
        if config.noise > 0:
            real = signal + noise_rng.normal(scale=config.noise, size=signal.shape).astype(np.float32)
            imag = noise_rng.normal(scale=config.noise, size=signal.shape).astype(np.float32)
            signal = np.hypot(real, imag)
        cine[..., t] = signal

    voxel_ml = d * d * config.slice_spacing_mm / 1000.0
    lv_ml = (labels == 3).sum(axis=(0, 1, 2)) * voxel_ml
    rv_ml = (labels == 1).sum(axis=(0, 1, 2)) * voxel_ml
    myo_ml = (labels == 2).sum(axis=(0, 1, 2)) * voxel_ml
    meta = {
        "synthetic": True,
        "generator": f"firereg.data.sources.cardiac_phantom v{GENERATOR_VERSION}",
        "seed": seed,
        "group": "SYNTHETIC",
        "height_cm": s.height_cm,
        "weight_kg": s.weight_kg,
        "heart_rate_bpm": round(s.heart_rate, 3),
        "frame_duration_s": rr / T,
        "es_fraction": es / T,
        "spacing_mm": (d, d, float(config.slice_spacing_mm)),
        "slice_thickness_mm": config.thickness_mm,
        "slice_order": "base (slice 0) to apex",
        "anatomy": s.summary(),
        "contraction": c_curve,
        "lv_volume_ml": lv_ml,
        "rv_volume_ml": rv_ml,
        "myo_volume_ml": myo_ml,
        "lv_edv_ml": float(lv_ml[0]),
        "lv_esv_ml": float(lv_ml[es]),
        "lv_ef": float((lv_ml[0] - lv_ml[es]) / max(lv_ml[0], 1e-9)),
        "bias_field": bias,
        "label_names": dict(CARDIAC_LABELS),
    }
    image = Image(data=cine, affine=grid.affine, ndim=3, source=f"cardiac_phantom(seed={seed})")
    return PhantomCine(image, labels, 0, es, meta)


# --------------------------------------------------------------------------------------------
# ACDC layout


def subject_seed(seed: int, index: int) -> int:
    """The :func:`generate_cine` seed of subject ``index`` (1-based, as patientNNN) of a tree."""
    return int(np.random.SeedSequence([_check_seed(seed, "subject_seed"), int(index)]).generate_state(1)[0])


def _write_cine_nifti(image: Image, path: Path, frame_duration_s: float) -> Path:
    """Write a 4D cine ``(X, Y, Z, T)`` with pixdim[4] = the frame duration (s), atomically."""
    return write_image(image, path, time_step_s=frame_duration_s,
                       description="SYNTHETIC cine, firereg cardiac phantom")


def _readme(n_subjects: int, config: PhantomConfig, seed: int) -> str:
    cfg = "\n".join(f"  {k}: {v}" for k, v in config.to_dict().items())
    seeds = "\n".join(f"  patient{i:03d}: {subject_seed(seed, i)}" for i in range(1, n_subjects + 1))
    return f"""SYNTHETIC DATA - NOT REAL PATIENTS
==================================

This folder imitates the layout of the ACDC challenge (training/patientNNN/...), but every image
in it is a synthetic cardiac cine MRI phantom made by firereg
(firereg.data.sources.cardiac_phantom, generator version {GENERATOR_VERSION}). No patient data.
Do not report results on it as ACDC results.

How it was made: a short-axis stack (first slice, k = 0, basal; last apical) through a beating heart:
a half-spheroid LV blood pool (label 3) inside an incompressible myocardium (label 2) that
thickens as the cavity shrinks, a crescent RV (label 1) on the septum, longitudinal shortening
with base descent, twist, papillary muscles, and surroundings (chest wall, fat, lungs, liver,
aorta, spine) with bSSFP-like contrast (bright blood, dark myocardium, dark lungs). Rendered with
sub-voxel sampling (partial volume), multiplied by a smooth bias field, with Rician noise.
Details: the docstring of firereg/data/sources/cardiac_phantom.py.

Seed: {seed}. Subjects: {n_subjects}. patientNNN was generated with
generate_cine(config, subject_seed({seed}, NNN)); the same seed and config rebuild this tree.

Frame numbers: Info.cfg (ED, ES) and the file names patientNNN_frameXX(_gt).nii.gz are 1-based,
as in ACDC (ED: 1 is the first frame of patientNNN_4d.nii.gz). firereg's CineCase records use
0-based frame indices (ED = 0).
Labels (_gt files): 0 background, 1 RV cavity, 2 LV myocardium, 3 LV cavity.
pixdim[4] of the 4D files is the frame duration in seconds.

Configuration:
{cfg}

Subject seeds:
{seeds}
"""


def _info_cfg(ed: int, es: int, num_frames: int, height: float, weight: float) -> str:
    return (f"ED: {ed + 1}\nES: {es + 1}\nGroup: SYNTHETIC\nHeight: {height:.1f}\nNbFrame: {num_frames}\n"
            f"Weight: {weight:.1f}\n")


def write_acdc_phantom(root: str | Path, n_subjects: int, config: PhantomConfig | None = None,
                       seed: int = 0, *, overwrite: bool = False,
                       on_subject: Callable[[CineCase], None] | None = None) -> list[CineCase]:
    """Write ``n_subjects`` synthetic cines in the ACDC training layout and return their records.

    Layout (exactly ACDC's, 1-based frame numbers in file names and Info.cfg)::

        root/README.txt                      says SYNTHETIC, how, and the seed
        root/training/patientNNN/Info.cfg    ED: 1 / ES: k / Group: SYNTHETIC / Height / NbFrame / Weight
        root/training/patientNNN/patientNNN_4d.nii.gz           (X, Y, Z, T) float32, pixdim[4] = frame s
        root/training/patientNNN/patientNNN_frameXX.nii.gz      the ED and ES frames, XX = 1-based
        root/training/patientNNN/patientNNN_frameXX_gt.nii.gz   their labels, uint8

    All files of a subject share one oblique short-axis affine. Each file is written atomically.

    Args:
        root: output folder (created if missing).
        n_subjects: 1 to 999 (patient001 ...).
        config: None = ``PhantomConfig()``.
        seed: subject NNN uses ``subject_seed(seed, NNN)``; the tree is deterministic given seed.
        overwrite: allow writing into existing patient folders (stale frame files there are removed).
        on_subject: called with each subject's record once its files are written (progress).

    Returns:
        One :class:`CineCase` per subject, with **0-based** ``ed``/``es`` and ``frame_labels`` /
        ``frames`` keyed by 0-based frame index, and ``meta["synthetic"] = True``.
    """
    config = PhantomConfig() if config is None else config
    if not isinstance(config, PhantomConfig):
        raise ValueError(f"write_acdc_phantom: config must be a PhantomConfig, got {type(config).__name__}")
    if not _is_int(n_subjects) or not 1 <= n_subjects <= 999:
        raise ValueError(f"write_acdc_phantom: n_subjects must be an integer in [1, 999], got {n_subjects!r}")
    seed = _check_seed(seed, "write_acdc_phantom")
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ValueError(f"write_acdc_phantom: {root} exists and is not a folder")
    training = root / "training"
    names = [f"patient{i:03d}" for i in range(1, n_subjects + 1)]
    if not overwrite:
        taken = [n for n in names if (training / n).is_dir() and any((training / n).iterdir())]
        if taken:
            raise ValueError(f"write_acdc_phantom: {training / taken[0]} already holds files; pass "
                             "overwrite=True to replace the phantom there")
    training.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(root / "README.txt", _readme(n_subjects, config, seed).encode())

    cases = []
    for index, name in enumerate(names, start=1):
        folder = training / name
        folder.mkdir(exist_ok=True)
        sub_seed = subject_seed(seed, index)
        cine, labels, ed, es, meta = generate_cine(config, sub_seed)
        keep = {f"{name}_4d.nii.gz", "Info.cfg"}
        keep |= {f"{name}_frame{t + 1:02d}{sfx}.nii.gz" for t in (ed, es) for sfx in ("", "_gt")}
        for stale in folder.glob(f"{name}_frame*.nii.gz"):
            if stale.name not in keep:
                stale.unlink()
        cine_path = _write_cine_nifti(cine, folder / f"{name}_4d.nii.gz", meta["frame_duration_s"])
        frames, frame_labels = {}, {}
        for t in (ed, es):
            stem = folder / f"{name}_frame{t + 1:02d}"
            frames[t] = write_image(cine.frame(t), f"{stem}.nii.gz")
            frame_labels[t] = write_labels(Image(labels[..., t], cine.affine, ndim=3), f"{stem}_gt.nii.gz")
        atomic_write_bytes(folder / "Info.cfg",
                            _info_cfg(ed, es, cine.num_frames, meta["height_cm"], meta["weight_kg"]).encode())
        log.info("%s: ES frame %d of %d (0-based), LV EDV %.0f mL, EF %.2f", name, es, cine.num_frames,
                 meta["lv_edv_ml"], meta["lv_ef"])
        cases.append(CineCase(
            name=name, cine=cine_path, ed=ed, es=es, frame_labels=frame_labels, frames=frames,
            meta={
                "synthetic": True, "source": "firereg cardiac phantom", "group": "SYNTHETIC",
                "height": meta["height_cm"], "weight": meta["weight_kg"], "seed": sub_seed,
                "tree_seed": seed, "heart_rate_bpm": meta["heart_rate_bpm"],
                "frame_duration_s": meta["frame_duration_s"], "num_frames": cine.num_frames,
                "lv_edv_ml": meta["lv_edv_ml"], "lv_esv_ml": meta["lv_esv_ml"], "lv_ef": meta["lv_ef"],
                "frame_numbering": "0-based here; ACDC files and Info.cfg are 1-based (file = index + 1)",
            },
        ))
        if on_subject is not None:
            on_subject(cases[-1])
    return cases
