"""FIRE network: shapes, initial state, the inference path and input validation."""

import pytest
import torch

from firereg.config import ModelConfig
from firereg.model import FireModel
from firereg.model.fire import FireOutput

SIZES = {2: (32, 40), 3: (20, 20, 24)}


def _model(ndim: int, width: int = 4) -> FireModel:
    return FireModel(ModelConfig(ndim=ndim, width=width))


@pytest.mark.parametrize("ndim", [2, 3])
def test_forward_shapes(ndim):
    size = SIZES[ndim]
    width = 4
    model = _model(ndim, width)
    x_a, x_b = torch.randn(2, 1, *size), torch.randn(2, 1, *size)
    out = model(x_a, x_b)
    assert isinstance(out, FireOutput)
    feat_size = tuple(s // 4 for s in size)
    image = (2, 1, *size)
    features = (2, 4 * width, *feat_size)
    expected = {
        "feat": features, "synth": image, "cycle": image, "image": image,
        "affine": (2, ndim, ndim + 1), "nonrigid": (2, ndim, *feat_size),
        "phi": (2, ndim, *size),
    }
    for name, value in out.as_dict().items():
        if name.startswith("feat_") and "synth" not in name or name.startswith("feat_synth"):
            want = features
        else:
            want = expected[name.split("_")[0]]
        assert tuple(value.shape) == want, name
        assert torch.isfinite(value).all(), name
    for name in ("synth_a", "synth_b", "cycle_a", "synth_b_image_warped"):
        assert out.as_dict()[name].abs().max() < 1.0  # Tanh output


@pytest.mark.parametrize("ndim", [2, 3])
def test_starts_at_identity_transform(ndim):
    size = SIZES[ndim]
    model = _model(ndim)
    x_a, x_b = torch.randn(1, 1, *size), torch.randn(1, 1, *size)
    out = model(x_a, x_b)
    eye = torch.eye(ndim, ndim + 1).unsqueeze(0)
    assert torch.equal(out.affine_ab, eye) and torch.equal(out.affine_ba, eye)
    assert torch.equal(out.nonrigid_ab, torch.zeros_like(out.nonrigid_ab))
    # equal up to float32 rounding of grid_sample's unnormalization (~S * 6e-8 voxels)
    torch.testing.assert_close(out.image_a_warped, x_a, atol=1e-4, rtol=0)
    torch.testing.assert_close(out.image_a_cycle, x_a, atol=1e-4, rtol=0)


def test_width_scales_every_channel():
    small, paper = FireModel(ModelConfig(width=8)), FireModel(ModelConfig(width=64))
    assert paper.encoder.stem[0].out_channels == 64
    assert paper.encoder.down[0][0].out_channels == 128
    assert paper.encoder.down[1][0].out_channels == 256
    assert small.encoder.out_channels == 32
    assert paper.decoder_ab.up[0][1][0].out_channels == 128
    assert paper.decoder_ab.up[1][1][0].out_channels == 64
    assert paper.decoder_ab.head[0][0].out_channels == 3
    assert paper.decoder_ab.head[0][0].kernel_size == (7, 7)
    n_small = sum(p.numel() for p in small.parameters())
    n_paper = sum(p.numel() for p in paper.parameters())
    assert n_paper > 40 * n_small  # conv weights grow with width^2


def test_encoder_and_decoder_structure_follow_section_3_2():
    model = FireModel(ModelConfig(ndim=3, width=64))
    enc, dec = model.encoder, model.decoder_ba
    assert enc.stem[0].kernel_size == (7, 7, 7) and enc.stem[0].stride == (1, 1, 1)
    assert [b[0].stride for b in enc.down] == [(2, 2, 2), (2, 2, 2)]
    assert len(enc.res) == 4 and len(dec.res) == 4
    assert isinstance(dec.head[-1], torch.nn.Tanh)
    assert dec.head[1].kernel_size == (1, 1, 1)


def test_affine_subnet_structure_follows_section_3_3():
    model = FireModel(ModelConfig(ndim=2, width=64))
    net = model.transform_ab.affine
    convs = [block[0] for block in net.features]
    assert [c.kernel_size for c in convs] == [(7, 7), (5, 5), (2, 2)]
    assert all(c.stride == (2, 2) for c in convs)
    assert [c.out_channels for c in convs] == [8, 16, 20]
    assert convs[0].in_channels == 2 * 256  # G(x^A) and G(x^B) concatenated
    norms = [any(isinstance(m, torch.nn.InstanceNorm2d) for m in block) for block in net.features]
    assert norms == [True, True, False]
    assert net.dense[-1].out_features == 6


def test_register_never_runs_the_decoders(monkeypatch):
    model = _model(2)
    size = SIZES[2]

    def forbidden(*_args, **_kwargs):
        raise AssertionError("a decoder ran during inference")

    monkeypatch.setattr(model.decoder_ab, "forward", forbidden)
    monkeypatch.setattr(model.decoder_ba, "forward", forbidden)
    moving, fixed = torch.randn(3, 1, *size), torch.randn(3, 1, *size)
    for direction in ("ab", "ba"):
        reg = model.register(moving, fixed, direction)
        assert reg.warped.shape == moving.shape
        assert reg.displacement.shape == (3, 2, *size)
        assert reg.nonrigid.shape == (3, 2, size[0] // 4, size[1] // 4)


def test_register_uses_the_requested_direction():
    model = _model(2)
    with torch.no_grad():
        model.transform_ba.affine.dense[-1].bias.copy_(torch.tensor([1.0, 0, 0.5, 0, 1, 0]))
    x = torch.randn(1, 1, *SIZES[2])
    assert torch.allclose(model.register(x, x, "ab").affine, torch.eye(2, 3)[None])
    assert torch.allclose(model.register(x, x, "ba").affine[0, 0, 2], torch.tensor(0.5))
    with pytest.raises(ValueError, match="direction"):
        model.register(x, x, "ac")


@pytest.mark.parametrize(
    "shape, message",
    [((1, 1, 30, 32), "multiple of 4"),
     ((1, 1, 8, 8), "at least"),
     ((1, 2, 32, 32), r"\(N, 1, S, S\)"),
     ((1, 1, 16, 16, 16), "2D model")],
)
def test_bad_inputs_are_refused_by_name(shape, message):
    model = _model(2)
    x = torch.randn(*shape)
    with pytest.raises(ValueError, match=message):
        model(x, x)


def test_mismatched_pair_and_integer_images_are_refused():
    model = _model(2)
    with pytest.raises(ValueError, match="same shape"):
        model(torch.randn(1, 1, 32, 32), torch.randn(1, 1, 32, 36))
    x = torch.zeros(1, 1, 32, 32, dtype=torch.int64)
    with pytest.raises(ValueError, match="floating point"):
        model.register(x, x)


def test_parameter_groups_are_disjoint_and_cover_the_model():
    model = _model(3)
    groups = model.parameter_groups()
    ids = {name: {id(p) for p in params} for name, params in groups.items()}
    assert set(ids) == {"affine", "nonrigid", "synthesis"}
    assert not ids["affine"] & ids["nonrigid"]
    assert not ids["affine"] & ids["synthesis"]
    assert not ids["nonrigid"] & ids["synthesis"]
    all_ids = {id(p) for p in model.parameters()}
    assert ids["affine"] | ids["nonrigid"] | ids["synthesis"] == all_ids
    assert all(len(v) == len(ids[k]) for k, v in groups.items())  # no duplicates inside a group


@pytest.mark.parametrize("ndim", [2, 3])
def test_the_smallest_accepted_size_trains(ndim):
    from firereg.losses import fire_objective
    from firereg.model import MIN_SIZE

    model = _model(ndim)
    x = torch.rand(1, 1, *([MIN_SIZE] * ndim)) * 2 - 1
    terms = fire_objective(model(x, x.flip(-1)), x, x.flip(-1))
    terms["total"].backward()
    assert torch.isfinite(terms["total"])
    smaller = torch.rand(1, 1, *([MIN_SIZE - 4] * ndim))
    with pytest.raises(ValueError, match=f"at least {MIN_SIZE}"):
        model(smaller, smaller)


def test_register_both_matches_two_single_registrations():
    model = FireModel(ModelConfig(ndim=2, width=4))
    with torch.no_grad():
        model.transform_ab.affine.dense[-1].bias.copy_(torch.tensor([1.0, 0.1, 0.05, 0, 0.9, 0]))
        model.transform_ba.affine.dense[-1].bias.copy_(torch.tensor([0.9, 0, -0.05, 0.1, 1.0, 0]))
    moving, fixed = torch.randn(2, 1, *SIZES[2]), torch.randn(2, 1, *SIZES[2])
    forward, backward = model.register_both(moving, fixed, "ab")
    assert torch.allclose(forward.warped, model.register(moving, fixed, "ab").warped, atol=1e-6)
    assert torch.allclose(backward.affine, model.register(fixed, moving, "ba").affine, atol=1e-6)
    # the affine subnets alone give the same matrices, and given matrices are used as they are
    features = model.encode_pair(moving, fixed)
    fwd_theta, bwd_theta = model.affines_both("ab", features)
    assert torch.allclose(fwd_theta, forward.affine, atol=1e-6)
    assert torch.allclose(bwd_theta, backward.affine, atol=1e-6)
    given = forward.affine + 0.02
    again, _ = model.register_both(moving, fixed, "ab", features=features, affines=(given, bwd_theta))
    assert torch.equal(again.affine, given)
    assert not torch.allclose(again.warped_affine, forward.warped_affine)


def test_ready_for_inference_sets_eval_and_keeps_the_same_parameters() -> None:
    from firereg.config import ModelConfig
    from firereg.model import FireModel

    model = FireModel(ModelConfig(ndim=2, width=4)).train()
    before = [p.data_ptr() for p in model.parameters()]
    assert model.ready_for_inference("cpu") is model
    assert not model.training
    assert [p.data_ptr() for p in model.parameters()] == before
