"""Random augmentation of §4.1: seeded sampling, exact replay, the 20-50% change window, no folding,
images and labels warped by one transform."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from firereg.data.augmentation import (
    AugmentationConfig,
    RandomPairAugmenter,
    TransformParams,
    apply,
    change_per_axis,
    params_to_transform,
    sample_params,
)
from firereg.data.datasets import PairSample
from firereg.spatial import displacement_to_grid, identity_grid, jacobian_determinant

SIZES = {2: (32, 32), 3: (16, 16, 16)}


def _labels(ndim: int, values=(3, 5, 7)) -> torch.Tensor:
    """``(1, 1, *S)`` int64: a ball, a box and a shell-free blob, away from the border."""
    size = SIZES[ndim]
    axes = torch.meshgrid(*[torch.arange(s, dtype=torch.float32) for s in size], indexing="ij")
    n = size[0]
    ball = sum((a - 0.35 * n) ** 2 for a in axes) <= (0.18 * n) ** 2
    box = torch.ones(size, dtype=torch.bool)
    for a in axes:
        box &= (a >= 0.55 * n) & (a <= 0.8 * n)
    blob = (((axes[0] - 0.7 * n) / (0.14 * n)) ** 2 + ((axes[-1] - 0.3 * n) / (0.2 * n)) ** 2) <= 1
    labels = torch.zeros(size, dtype=torch.int64)
    labels[blob] = values[2]
    labels[box] = values[1]
    labels[ball] = values[0]
    return labels[None, None]


def _image(ndim: int) -> torch.Tensor:
    """A smooth ``(1, 1, *S)`` float image with no symmetry."""
    size = SIZES[ndim]
    axes = torch.meshgrid(*[torch.linspace(-1, 1, s) for s in size], indexing="ij")
    return (torch.sin(3 * axes[0] + 1) * torch.cos(2 * axes[-1]) + 0.5 * axes[0] * axes[-1])[None, None]


def _measured_change(transform: torch.Tensor) -> torch.Tensor:
    """Per-array-axis change from a dense displacement ``(1, d, *S)``: bounding box of its grid."""
    d = transform.shape[1]
    points = displacement_to_grid(transform.double()).reshape(-1, d)
    lo, hi = points.amin(0), points.amax(0)
    return ((lo + hi).abs() / 4 + (hi - lo - 2).abs() / 2).flip(0)


def _centroid(weight: torch.Tensor) -> torch.Tensor:
    """Weighted centroid ``(d,)`` in voxel (array-axis) coordinates of ``weight`` ``(*S)``."""
    axes = torch.meshgrid(*[torch.arange(s, dtype=torch.float64) for s in weight.shape], indexing="ij")
    w = weight.double()
    return torch.stack([(a * w).sum() / w.sum() for a in axes])


# --------------------------------------------------------------------------- determinism / replay


@pytest.mark.parametrize("ndim", [2, 3])
def test_same_seed_gives_identical_params_and_outputs(ndim):
    cfg = AugmentationConfig()
    image, labels = _image(ndim), _labels(ndim)
    p1, p2 = sample_params(ndim, cfg, 11), sample_params(ndim, cfg, 11)
    assert p1 == p2 and p1.seed == 11
    out1, lab1 = apply(p1, image, labels)
    out2, lab2 = apply(p2, image, labels)
    assert torch.equal(out1, out2) and torch.equal(lab1, lab2)
    assert not torch.allclose(out1, image, atol=1e-2)  # the transform does something


@pytest.mark.parametrize("ndim", [2, 3])
def test_different_seeds_give_different_params_and_outputs(ndim):
    cfg = AugmentationConfig()
    params = [sample_params(ndim, cfg, s) for s in range(5)]
    for i in range(5):
        for j in range(i + 1, 5):
            assert not torch.equal(params[i].affine, params[j].affine)
            assert not torch.equal(params[i].control, params[j].control)
    image = _image(ndim)
    assert not torch.allclose(apply(params[0], image)[0], apply(params[1], image)[0], atol=1e-3)


def test_generator_and_int_seed_draw_the_same_params():
    cfg = AugmentationConfig()
    generator = torch.Generator()
    generator.manual_seed(5)
    from_generator, from_int = sample_params(2, cfg, generator), sample_params(2, cfg, 5)
    assert from_generator.seed is None and from_int.seed == 5
    assert torch.equal(from_generator.affine, from_int.affine)
    assert torch.equal(from_generator.control, from_int.control)


@pytest.mark.parametrize("ndim", [2, 3])
def test_to_dict_from_dict_round_trip_through_json_replays_the_exact_warp(ndim):
    params = sample_params(ndim, AugmentationConfig(), 123)
    restored = TransformParams.from_dict(json.loads(json.dumps(params.to_dict())))
    assert restored == params
    image, labels = _image(ndim), _labels(ndim)
    out, lab = apply(params, image, labels)
    out_r, lab_r = apply(restored, image, labels)
    assert torch.equal(out, out_r) and torch.equal(lab, lab_r)
    # the seed alone replays it too
    assert sample_params(ndim, AugmentationConfig(), restored.seed) == params


def test_pair_augmenter_item_does_not_depend_on_call_order():
    cfg = AugmentationConfig()
    image, labels = _image(2), _labels(2)
    moving, fixed = image, torch.flip(image, dims=[-1])
    first = RandomPairAugmenter(cfg, seed=3).augment_pair(7, moving, fixed, labels, labels)
    other = RandomPairAugmenter(cfg, seed=3)
    for index in (0, 12, 7, 1):
        result = other.augment_pair(index, moving, fixed, labels, labels)
        if index == 7:
            later = result
    assert later.moving_params == first.moving_params and later.fixed_params == first.fixed_params
    for name in ("moving", "fixed", "moving_labels", "fixed_labels"):
        assert torch.equal(getattr(later, name), getattr(first, name))
    # moving and fixed are transformed independently, and items and base seeds differ
    assert first.moving_params != first.fixed_params
    assert not torch.equal(first.moving_labels, first.fixed_labels)
    assert RandomPairAugmenter(cfg, seed=3).pair_params(7, 2, (32, 32)) == (first.moving_params,
                                                                             first.fixed_params)
    for seed, index in ((3, 8), (4, 7)):
        moving_params, fixed_params = RandomPairAugmenter(cfg, seed=seed).pair_params(index, 2, (32, 32))
        assert moving_params != first.moving_params and fixed_params != first.fixed_params
    # each item replays from its recorded params
    assert torch.equal(apply(first.fixed_params, fixed)[0], first.fixed)


def test_pair_augmenter_is_a_dataset_augment_hook():
    image, labels = _image(2)[0], _labels(2)[0]
    sample = PairSample(x_a=image, x_b=image * 2, labels_a=labels, labels_b=labels, name="p", meta={"k": 1})
    out = RandomPairAugmenter(seed=1)(4, sample)
    assert out.x_a.shape == image.shape and out.labels_b.shape == labels.shape and out.name == "p"
    assert out.meta["k"] == 1 and out.meta["augmentation"]["index"] == 4
    fixed_params = TransformParams.from_dict(out.meta["augmentation"]["fixed"])
    replay, replay_labels = apply(fixed_params, sample.x_b[None], sample.labels_b[None])
    assert torch.equal(replay[0], out.x_b) and torch.equal(replay_labels[0], out.labels_b)
    assert not torch.equal(out.labels_a, out.labels_b)


def test_test_protocol_transforms_one_image_n_times_reproducibly():
    augmenter = RandomPairAugmenter(seed=0)
    image, labels = _image(2), _labels(2)
    runs = augmenter.test_protocol(image, labels, n=20, seed=9)
    assert len(runs) == 20
    params = [p for p, _, _ in runs]
    assert all(params[i] != params[j] for i in range(20) for j in range(i + 1, 20))
    for p in params:
        assert 0.2 <= float(change_per_axis(p).max()) <= 0.5
    again = augmenter.test_protocol(image, labels, n=3, seed=9)
    for (p, x, lab), (q, y, lab_q) in zip(runs[:3], again, strict=True):
        assert p == q and torch.equal(x, y) and torch.equal(lab, lab_q)
    p, x, lab = runs[5]
    replay, replay_labels = apply(p, image, labels)
    assert torch.equal(replay, x) and torch.equal(replay_labels, lab)
    assert augmenter.test_protocol(image, None, n=1, seed=10)[0][0] != params[0]


# --------------------------------------------------------------------------- change window


@pytest.mark.parametrize("ndim, grid", [(2, (33, 33)), (3, (17, 17, 17))])
def test_change_window_holds_and_matches_the_dense_transform(ndim, grid):
    # grids of 4k+1 voxels contain the fine control nodes, where the extremes of phi lie
    cfg = AugmentationConfig()
    for seed in range(50):
        params = sample_params(ndim, cfg, seed)
        change = change_per_axis(params)
        assert change.shape == (ndim,)
        assert 0.2 <= float(change.max()) <= 0.5
        measured = _measured_change(params_to_transform(params, grid))
        torch.testing.assert_close(measured, change, atol=2e-6, rtol=0)


def test_change_window_is_binding_for_the_default_ranges():
    # without the window, the default ranges give changes on both sides of 20-50%
    cfg = AugmentationConfig(min_change=0.0, max_change=10.0)
    largest = [float(change_per_axis(sample_params(3, cfg, s)).max()) for s in range(60)]
    assert min(largest) < 0.2 and max(largest) > 0.5


def test_change_is_close_on_grids_off_the_control_nodes():
    cfg = AugmentationConfig()
    for seed in range(10):
        params = sample_params(2, cfg, seed, size=(30, 44))
        measured = _measured_change(params_to_transform(params, (30, 44)))
        torch.testing.assert_close(measured, change_per_axis(params), atol=0.02, rtol=0)


def test_change_of_known_transforms_and_axis_order():
    # component 0 of the affine runs along the LAST array axis
    shift = TransformParams(affine=torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]]))
    torch.testing.assert_close(change_per_axis(shift), torch.tensor([0.0, 0.25], dtype=torch.float64))
    scale = TransformParams(affine=torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.3, 0.0]]))
    torch.testing.assert_close(change_per_axis(scale), torch.tensor([0.3, 0.0], dtype=torch.float64))
    angle = math.radians(15)
    rot = TransformParams(affine=torch.tensor([[math.cos(angle), -math.sin(angle), 0.0],
                                               [math.sin(angle), math.cos(angle), 0.0]]))
    expected = math.cos(angle) + math.sin(angle) - 1
    torch.testing.assert_close(change_per_axis(rot), torch.tensor([expected] * 2, dtype=torch.float64))
    # the shift of 0.5 normalized units = 8 voxels on 33 voxels reads the input 8 voxels further;
    # outside the field of view the border is repeated (default padding)
    image = torch.rand(1, 1, 33, 33)
    out, _ = apply(shift, image)
    torch.testing.assert_close(out[..., :25], image[..., 8:], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[..., 25:], image[..., -1:].expand(1, 1, 33, 8), atol=1e-5, rtol=0)
    # the image is interpolated linearly: half a voxel between two voxels is their mean
    half_voxel = TransformParams(affine=torch.tensor([[1.0, 0.0, 1 / 32], [0.0, 1.0, 0.0]]))
    out, _ = apply(half_voxel, image)
    torch.testing.assert_close(out[..., :32], (image[..., :32] + image[..., 1:]) / 2, atol=1e-5, rtol=0)


def test_rotations_are_rigid_in_voxel_units_when_the_size_is_given():
    cfg = AugmentationConfig(rotation=30.0, scaling=0.0, shear=0.0, translation=0.0, p_nonrigid=0.0,
                             min_change=0.0)
    size = (32, 64)  # array order; components (grid order) span 63 and 31 voxels
    half = torch.tensor([63 / 2, 31 / 2], dtype=torch.float64)
    for seed in range(5):
        a = sample_params(2, cfg, seed, size=size).affine[:, :2]
        voxel = half[:, None] * a / half[None, :]
        torch.testing.assert_close(voxel @ voxel.T, torch.eye(2, dtype=torch.float64))
        assert not torch.allclose(a @ a.T, torch.eye(2, dtype=torch.float64), atol=1e-3)


# --------------------------------------------------------------------------- identity / topology


@pytest.mark.parametrize("cfg", [
    AugmentationConfig(rotation=0.0, scaling=0.0, shear=0.0, translation=0.0,
                       nonrigid_max_displacement=0.0, min_change=0.0),
    AugmentationConfig.identity(),
    AugmentationConfig(strength=0.0),
], ids=["zero-ranges", "identity", "strength-0"])
@pytest.mark.parametrize("ndim", [2, 3])
def test_identity_strength_config_leaves_the_image_unchanged(cfg, ndim):
    image, labels = _image(ndim), _labels(ndim)
    for seed in range(3):
        params = sample_params(ndim, cfg, seed)
        out, lab = apply(params, image, labels)
        torch.testing.assert_close(out, image, atol=1e-5, rtol=0)
        assert torch.equal(lab, labels)
        assert float(params_to_transform(params, SIZES[ndim]).abs().max()) < 1e-6


def test_jacobian_is_positive_everywhere_2d_and_3d():
    cfg = AugmentationConfig()
    for ndim, seeds in ((2, 30), (3, 10)):
        for seed in range(seeds):
            det = jacobian_determinant(params_to_transform(sample_params(ndim, cfg, seed), SIZES[ndim]))
            assert float(det.min()) > 0, (ndim, seed)


def test_strong_nonrigid_part_is_scaled_to_stay_fold_free():
    # raw control displacements of 20% of the FOV on a 0.2-FOV spacing would fold; the gradient
    # bound scales them down so that det(I + grad u) >= (1 - 0.5)^d > 0
    cfg = AugmentationConfig(p_affine=0.0, control_points=6, nonrigid_max_displacement=0.2,
                             nonrigid_smoothing=0.0, min_change=0.0)
    lowest = []
    for ndim, seeds in ((2, 30), (3, 10)):
        for seed in range(seeds):
            det = jacobian_determinant(params_to_transform(sample_params(ndim, cfg, seed), SIZES[ndim]))
            assert float(det.min()) >= 0.5**ndim - 1e-5, (ndim, seed)
            lowest.append(float(det.min()))
    assert min(lowest) < 0.75  # the fields are strong, so the test is not vacuous


def test_nonrigid_displacement_never_exceeds_its_maximum():
    cfg = AugmentationConfig(p_affine=0.0, nonrigid_max_displacement=0.06, min_change=0.0)
    largest = 0.0
    for seed in range(10):
        u = params_to_transform(sample_params(2, cfg, seed), (32, 32))
        largest = max(largest, float(u.abs().max()))
    assert 0.03 < largest <= 2 * 0.06 + 1e-6  # normalized units: 6% of the FOV = 0.12


def test_smoothing_removes_the_kinks_of_the_piecewise_linear_control_field():
    def kinks(smoothing, axis):
        cfg = AugmentationConfig(p_affine=0.0, nonrigid_smoothing=smoothing, min_change=0.0)
        u = params_to_transform(sample_params(2, cfg, 4), (65, 65))
        n = u.shape[axis]
        second = u.narrow(axis, 2, n - 2) - 2 * u.narrow(axis, 1, n - 2) + u.narrow(axis, 0, n - 2)
        return float(second.abs().max() / u.abs().max())

    for axis in (2, 3):
        assert kinks(0.5, axis) < 0.3 * kinks(0.0, axis)


def test_smoothing_keeps_constant_and_linear_fields_away_from_the_border():
    # a symmetric, normalized kernel reproduces affine fields; it only bends them within its
    # radius (1.5 control spacings for smoothing 0.5) of the border, where values are replicated
    nodes = identity_grid([9, 9], dtype=torch.float64)[0].movedim(-1, 0)  # (2, 9, 9), grid order
    ramp = TransformParams(affine=torch.eye(2, 3), control=0.05 * nodes, smoothing=0.5)
    u = params_to_transform(ramp, (33, 33), dtype=torch.float64)
    points = identity_grid([33, 33], dtype=torch.float64).movedim(-1, 1)
    centre = (points.abs() <= 0.6).all(dim=1, keepdim=True).expand_as(u)
    torch.testing.assert_close(u[centre], 0.05 * points[centre])
    constant = TransformParams(affine=torch.eye(2, 3), control=torch.full((2, 5, 5), 0.07), smoothing=2.0)
    torch.testing.assert_close(params_to_transform(constant, (20, 24)), torch.full((1, 2, 20, 24), 0.07))


# --------------------------------------------------------------------------- labels


@pytest.mark.parametrize("ndim, seeds", [(2, range(6)), (3, range(2))])
def test_image_and_labels_stay_aligned(ndim, seeds):
    labels = _labels(ndim)
    values = (3, 5, 7)
    size = SIZES[ndim]
    cfg = AugmentationConfig()
    for seed in seeds:
        params = sample_params(ndim, cfg, seed, size=size)
        out, lab = apply(params, labels.float(), labels)
        # interior: label constant over the 3^d neighbourhood and sampled inside the field of view
        pool = F.max_pool2d if ndim == 2 else F.max_pool3d
        lab_f = lab.float()
        constant = pool(lab_f, 3, 1, 1) == -pool(-lab_f, 3, 1, 1)
        grid = displacement_to_grid(params_to_transform(params, size))
        inside = (grid.abs() <= 1).all(dim=-1, keepdim=True).movedim(-1, 1)
        interior = constant & inside
        assert interior.float().mean() > 0.3
        agree = (out.round().long() == lab)[interior].float().mean()
        assert agree > 0.97, (seed, float(agree))
        # each label's centroid follows the intensity-weighted centroid of its indicator image
        indicators = torch.cat([(labels == v).float() for v in values], dim=1)
        warped, _ = apply(params, indicators, padding_mode="zeros")
        moved = 0.0
        for c, v in enumerate(values):
            if int((lab == v).sum()) < 10:
                continue
            label_centroid = _centroid((lab[0, 0] == v).float())
            image_centroid = _centroid(warped[0, c])
            assert float((label_centroid - image_centroid).norm()) < 0.5, (seed, v)
            moved = max(moved, float((label_centroid - _centroid((labels[0, 0] == v).float())).norm()))
        assert moved > 1.0  # the labels did move


@pytest.mark.parametrize("dtype", [torch.int64, torch.uint8])
def test_labels_remain_integers_from_the_original_set(dtype):
    labels = _labels(2, values=(2, 5, 9)).to(dtype)
    for seed in range(5):
        _, lab = apply(sample_params(2, AugmentationConfig(), seed), _image(2), labels)
        assert lab.dtype == dtype and lab.shape == labels.shape
        assert set(torch.unique(lab).tolist()) <= {0, 2, 5, 9}
        assert {2, 5, 9} <= set(torch.unique(lab).tolist())


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("field, value", [
    ("rotation", -1.0), ("rotation", 200.0), ("scaling", -0.1), ("shear", 1.5), ("translation", -0.1),
    ("translation", float("nan")), ("control_points", 1), ("control_points", 2.5), ("control_points", True),
    ("nonrigid_max_displacement", -0.01), ("nonrigid_smoothing", -1.0), ("nonrigid_max_gradient", 1.0),
    ("nonrigid_max_gradient", 0.0), ("p_affine", 1.5), ("p_nonrigid", -0.1), ("strength", -1.0),
    ("min_change", 0.6), ("max_change", 0.1), ("max_change", -0.1), ("max_tries", 0), ("rotation", "10"),
])
def test_bad_config_values_raise_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"AugmentationConfig.{field}"):
        AugmentationConfig(**{field: value})


def test_unreachable_change_window_raises():
    cfg = AugmentationConfig(rotation=1.0, scaling=0.01, shear=0.0, translation=0.01,
                             nonrigid_max_displacement=0.001, max_tries=20)
    with pytest.raises(ValueError, match="max_tries=20"):
        sample_params(2, cfg, 0)


def test_bad_inputs_raise_clear_errors():
    params = sample_params(2, AugmentationConfig(), 0)
    with pytest.raises(ValueError, match="ndim must be 2 or 3"):
        sample_params(4, AugmentationConfig(), 0)
    with pytest.raises(ValueError, match="int seed"):
        sample_params(2, AugmentationConfig(), -1)
    with pytest.raises(ValueError, match="labels must be"):
        apply(params, _image(2), _labels(2)[..., :16])
    with pytest.raises(ValueError, match="floating-point image"):
        apply(params, _labels(2))
    with pytest.raises(ValueError, match="size of 2 ints"):
        params_to_transform(params, (16, 16, 16))
    with pytest.raises(ValueError, match="TransformParams.affine"):
        TransformParams(affine=torch.eye(2))
    data = params.to_dict()
    del data["seed"]
    with pytest.raises(ValueError, match="expected keys"):
        TransformParams.from_dict(data)
