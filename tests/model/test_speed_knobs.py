"""``stem_kernel`` and ``res_blocks``: the defaults build the shipped architecture exactly, and the
cheaper settings build, run and are smaller."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import firereg
from firereg.config import ModelConfig, from_dict
from firereg.model import FireModel

SHIPPED = Path(firereg.__file__).parent / "pretrained" / "t1-t2-2d"
SIZES = {2: (32, 40), 3: (20, 24, 20)}


def _shipped_config(**changes) -> ModelConfig:
    data = json.loads((SHIPPED / "checkpoint.json").read_text())["model_config"]
    return from_dict(ModelConfig, {**data, **changes})


def _count(model: FireModel) -> int:
    return sum(p.numel() for p in model.parameters())


def test_defaults_give_the_shipped_parameters_exactly():
    config = _shipped_config()
    assert (config.stem_kernel, config.res_blocks) == (7, 4)  # not in the shipped checkpoint
    weights = load_file(str(SHIPPED / "model.safetensors"))
    model = FireModel(config)
    state = model.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape)
                                                             for k, v in weights.items()}
    model.load_state_dict(weights, strict=True)
    for name, value in model.state_dict().items():
        assert torch.equal(value, weights[name]), name


def test_knobs_reach_encoder_and_decoders():
    model = FireModel(ModelConfig(ndim=3, width=4, stem_kernel=3, res_blocks=2))
    assert model.encoder.stem[0].kernel_size == (3, 3, 3)
    assert len(model.encoder.res) == 2
    for decoder in (model.decoder_ab, model.decoder_ba):
        assert decoder.head[0][0].kernel_size == (3, 3, 3)
        assert len(decoder.res) == 4  # res_blocks is G's only


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("knobs", [{"stem_kernel": 3}, {"res_blocks": 2},
                                   {"stem_kernel": 3, "res_blocks": 2}])
def test_cheaper_settings_run_with_the_right_shapes_and_fewer_parameters(ndim, knobs):
    torch.manual_seed(0)
    width, size = 4, SIZES[ndim]
    base = FireModel(ModelConfig(ndim=ndim, width=width))
    model = FireModel(ModelConfig(ndim=ndim, width=width, **knobs))
    assert _count(model) < _count(base)
    x_a, x_b = torch.rand(2, 1, *size) * 2 - 1, torch.rand(2, 1, *size) * 2 - 1
    out = model(x_a, x_b)
    feat = (2, 4 * width, *(s // 4 for s in size))
    assert tuple(out.feat_a.shape) == feat and tuple(out.feat_synth_b.shape) == feat
    for name in ("synth_b", "cycle_a", "image_a_warped", "synth_a_image_warped"):
        assert tuple(getattr(out, name).shape) == (2, 1, *size), name
    assert tuple(out.nonrigid_ab.shape) == (2, ndim, *(s // 4 for s in size))
    assert all(torch.isfinite(v).all() for v in out.as_dict().values())
    reg = model.register(x_a, x_b)
    assert tuple(reg.displacement.shape) == (2, ndim, *size)
