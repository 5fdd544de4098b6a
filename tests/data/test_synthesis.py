"""The training-subject synthesizer: smoothing, anatomy fields, rendering, appearance, pairs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from firereg.config import ConfigError, from_dict
from firereg.data.augmentation import AugmentationConfig
from firereg.data.synthesis.appearance import apply_appearance, normalize_percentiles, sample_appearance
from firereg.data.synthesis.config import AnatomyConfig, AppearanceConfig, RenderConfig, SynthesisConfig
from firereg.data.synthesis.fields import random_anatomy, smooth_random_field
from firereg.data.synthesis.pairs import SynthPairSource
from firereg.data.synthesis.render import render_parcels
from firereg.losses import l_known
from firereg.spatial import identity_affine, warp
from firereg.spatial.smoothing import gaussian_blur


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ smoothing
def test_blur_keeps_constants_and_mass():
    x = torch.full((1, 1, 9, 11), 3.0)
    assert torch.allclose(gaussian_blur(x, 1.5), x)
    delta = torch.zeros((1, 1, 31, 31))
    delta[0, 0, 15, 15] = 1.0
    out = gaussian_blur(delta, 2.0)
    assert abs(float(out.sum()) - 1.0) < 1e-5
    # the variance along each axis is sigma^2 (sampled Gaussian, within 2%)
    taps = torch.arange(31.0) - 15
    var = float((out[0, 0].sum(dim=1) * taps**2).sum())
    assert abs(var - 4.0) < 0.08


def test_blur_per_axis_leaves_unblurred_axis_alone():
    # varying along the first two axes only: a blur along the third changes nothing
    x = torch.rand(1, 1, 8, 8, 1).repeat(1, 1, 1, 1, 8)
    assert torch.allclose(gaussian_blur(x, (0.0, 0.0, 1.0)), x, atol=1e-6)
    assert not torch.allclose(gaussian_blur(x, (1.0, 0.0, 0.0)), x, atol=1e-3)
    with pytest.raises(ValueError, match="3 sigmas"):
        gaussian_blur(x, (1.0, 1.0))


# -------------------------------------------------------------------- fields
def test_smooth_field_is_bounded_and_seeded():
    a = smooth_random_field(2, 3, (20, 24), 5, _gen(1))
    b = smooth_random_field(2, 3, (20, 24), 5, _gen(1))
    assert a.shape == (2, 3, 20, 24) and torch.equal(a, b)
    assert float(a.abs().max()) <= 1.0 + 1e-6
    # smooth: neighbouring voxels differ by far less than the range
    assert float(a.diff(dim=-1).abs().max()) < 0.3


def test_anatomy_off_is_the_identity_and_strength_scales():
    off = random_anatomy(3, (20, 24), AnatomyConfig(p=0.0), _gen())
    assert torch.equal(off, torch.zeros_like(off))
    zero = random_anatomy(3, (20, 24), AnatomyConfig(), _gen(), strength=torch.zeros(3))
    assert float(zero.abs().max()) < 1e-6
    full = random_anatomy(3, (20, 24), AnatomyConfig(scaling=0.0), _gen(4))
    # the smooth part never exceeds its bound (2 normalized units = the field of view)
    assert 0 < float(full.abs().max()) <= 2 * AnatomyConfig().max_displacement + 1e-6


def test_anatomy_scaling_alone_is_a_pure_scaling():
    config = AnatomyConfig(max_displacement=0.0, scaling=0.2)
    field = random_anatomy(1, (21, 21), config, _gen(2))
    # the displacement of a pure scaling about the centre is linear: zero at the centre and
    # antisymmetric about it
    assert float(field[0, :, 10, 10].abs().max()) < 1e-6
    assert torch.allclose(field[0, :, 0, 0], -field[0, :, 20, 20], atol=1e-5)


# ----------------------------------------------------------------- rendering
def test_render_without_variation_gives_each_class_its_mean():
    parcels = torch.tensor([[0, 1, 2], [3, 2, 1]]).view(1, 1, 2, 3).repeat(1, 1, 4, 4)
    stats = {0: (0.0, 0.1), 1: (0.5, 0.1), 2: (0.8, 0.1), 3: (0.2, 0.1)}
    still = RenderConfig(class_jitter=0.0, spread=0.0, noise=0.0, blur=0.0)
    out = render_parcels(parcels, torch.arange(4), stats, still, _gen())
    expected = torch.tensor([0.0, 0.5, 0.8, 0.2])[parcels]
    assert torch.allclose(out, expected.float())


def test_render_groups_share_their_draws():
    parcels = torch.randint(0, 4, (1, 1, 8, 8)).repeat(2, 1, 1, 1)
    stats = {0: (0.1, 0.05), 1: (0.5, 0.05), 2: (0.8, 0.05), 3: (0.2, 0.05)}
    config = RenderConfig(noise=0.0, blur=0.0)
    same = render_parcels(parcels, torch.arange(4), stats, config, _gen(), groups=torch.tensor([0, 0]))
    apart = render_parcels(parcels, torch.arange(4), stats, config, _gen(), groups=torch.tensor([0, 1]))
    assert torch.equal(same[0], same[1]) and not torch.equal(apart[0], apart[1])


def test_render_refuses_a_class_without_intensity():
    with pytest.raises(ValueError, match="class 1"):
        render_parcels(torch.zeros((1, 1, 4, 4), dtype=torch.int64), torch.tensor([0, 2]),
                       {0: (0.0, 0.1)}, RenderConfig(), _gen())


# ---------------------------------------------------------------- appearance
def test_normalize_percentiles_maps_a_ramp_to_minus_one_one():
    ramp = torch.linspace(0, 10, 1001).view(1, 1, 7, 143)
    out = normalize_percentiles(ramp)
    assert float(out.min()) == -1.0 and float(out.max()) == 1.0
    assert abs(float(out.flatten()[500])) < 1e-4  # the median maps to 0


def test_no_appearance_change_is_only_the_normalization():
    x = torch.rand(3, 1, 20, 24) * 2 - 1
    params = sample_appearance(3, 2, AppearanceConfig.none(), _gen())
    assert torch.allclose(apply_appearance(x, params), normalize_percentiles(x), atol=1e-6)


def test_appearance_is_replayable_and_changes_the_image():
    x = torch.rand(2, 1, 20, 24) * 2 - 1
    config = AppearanceConfig(p_bias=1, p_gamma=1, p_noise=1, p_blur=1, p_resolution=1, p_sharpen=1)
    params = sample_appearance(2, 2, config, _gen(3))
    a, b = apply_appearance(x, params), apply_appearance(x, params)
    assert torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1
    assert float((a - normalize_percentiles(x)).abs().mean()) > 0.01


# -------------------------------------------------------------------- config
def test_unknown_synthesis_option_is_refused_by_name():
    with pytest.raises(ConfigError, match="unknown key.*'colour'"):
        from_dict(SynthesisConfig, {"appearance": {"colour": 1}})
    with pytest.raises(ConfigError, match="p_tissues"):
        SynthesisConfig(p_tissues=1.5)
    with pytest.raises(ConfigError, match="templates"):
        SynthesisConfig(templates=(), p_tissues=0.5)


# ------------------------------------------------------------------- pairs
def _source(bank, **synthesis) -> SynthPairSource:
    config = dataclasses.replace(SynthesisConfig(tissues=("p",)), **synthesis)
    return SynthPairSource(bank, config, AugmentationConfig(), 2, seed=7)


def test_a_batch_is_a_pure_function_of_the_step(synth_bank_toy):
    source = _source(synth_bank_toy)
    one, again, other = source.batch(3, 4), source.batch(3, 4), source.batch(4, 4)
    for name in ("x_a", "x_b", "partner_b", "labels_a"):
        assert torch.equal(getattr(one, name), getattr(again, name)), name
    assert not torch.equal(one.x_a, other.x_a)
    assert one.x_a.shape == (4, 1, 24, 28) and one.labels_a.dtype == torch.int64
    # a process's share is exactly those rows of the whole batch
    share = source.batch(3, 4, indices=range(1, 4, 2))
    assert torch.equal(share.x_b, one.x_b[1::2]) and torch.equal(share.partner_a, one.partner_a[1::2])


def test_one_subject_one_anatomy_aligned_pose_gives_exact_targets(synth_bank_toy):
    """Same subject, same anatomy and the same pose: the partner of the moving image IS the
    clean fixed image, so the known-transform term is zero at the identity (the truth)."""
    source = _source(synth_bank_toy, p_same_subject=1.0, anatomy=AnatomyConfig(p_same=1.0))
    batch = source.batch(0, 4, aligned=True)
    assert bool(batch.same_anatomy.all())
    assert torch.equal(batch.partner_b, batch.clean_b) and torch.equal(batch.partner_a, batch.clean_a)
    identity = torch.zeros((4, 2, 24, 28))
    assert float(l_known(identity, identity, batch.partner_b, batch.clean_b, batch.partner_a,
                         batch.clean_a)) < 1e-5
    # the inputs still differ from the targets by their appearance
    assert not torch.equal(batch.x_a, batch.clean_a)


def test_known_term_is_smallest_at_the_true_transform(synth_bank_toy):
    """Moving shifted by a known translation: l_known is (near) zero for the true translation
    and larger for the identity."""
    source = _source(synth_bank_toy, p_same_subject=1.0, p_tissues=0.0,
                     anatomy=AnatomyConfig(p=0.0, p_same=1.0),
                     appearance=AppearanceConfig.none())
    batch = source.batch(0, 2, strength=0.0)
    shift = identity_affine(2, 2)
    shift[:, 0, 2] = 2 / 27  # one voxel along the last axis (28 voxels)
    partner_b = warp(batch.clean_b, shift, padding_mode="border")  # the moving image's B-partner
    back = identity_affine(2, 2)
    back[:, 0, 2] = -2 / 27
    same = identity_affine(2, 2)  # the fixed image's partner is not moved: B -> A is the identity
    truth = l_known(back, same, partner_b, batch.clean_b, batch.partner_a, batch.clean_a)
    identity = l_known(same, same, partner_b, batch.clean_b, batch.partner_a, batch.clean_a)
    assert float(truth) < 0.05 < float(identity)


def test_3d_pairs_have_the_volume_shape(synth_bank_toy):
    source = SynthPairSource(synth_bank_toy, SynthesisConfig(tissues=("p",)), AugmentationConfig(), 3, seed=0)
    batch = source.batch(0, 1)
    assert batch.x_a.shape == (1, 1, 24, 28, 24) and batch.labels_b.shape == (1, 1, 24, 28, 24)
