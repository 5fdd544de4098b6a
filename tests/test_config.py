"""Configs: defaults follow the paper, bad values and unknown keys are refused, YAML round-trips."""

import pytest

from firereg.config import ConfigError, ModelConfig, OptimConfig, from_dict, load_yaml, save_yaml


def test_defaults_are_the_papers():
    model, optim = ModelConfig(), OptimConfig()
    assert model.width == 64 and model.feature_channels == 256
    assert model.resolved_affine_channels == (8, 16, 20)
    assert model.affine_kernels == (7, 5, 2)
    assert (model.stem_kernel, model.res_blocks) == (7, 4)
    assert (optim.lr_affine, optim.lr_nonrigid, optim.lr_synthesis) == (1e-5, 5e-5, 1e-4)


def test_affine_widths_scale_with_width_but_keep_a_floor():
    assert ModelConfig(width=128).resolved_affine_channels == (16, 32, 40)
    assert ModelConfig(width=8).resolved_affine_channels == (4, 4, 4)
    assert ModelConfig(width=32).resolved_affine_hidden == 16


@pytest.mark.parametrize("kwargs", [{"ndim": 4}, {"width": 0}, {"in_channels": -1},
                                    {"affine_channels": (1, 2)}, {"padding_mode": "circularish"},
                                    {"stem_kernel": 4}, {"stem_kernel": 0}, {"stem_kernel": 3.0},
                                    {"res_blocks": -1}, {"res_blocks": True}])
def test_bad_model_values_are_refused(kwargs):
    with pytest.raises(ConfigError, match="ModelConfig"):
        ModelConfig(**kwargs)


@pytest.mark.parametrize("kwargs", [{"lr_affine": 0.0}, {"lr_synthesis": 2.0},
                                    {"betas": (0.9, 1.5)}, {"lr_nonrigid": "fast"}])
def test_bad_optim_values_are_refused(kwargs):
    with pytest.raises(ConfigError, match="OptimConfig"):
        OptimConfig(**kwargs)


def test_unknown_keys_are_named():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['widht'\]"):
        from_dict(ModelConfig, {"widht": 16})


def test_yaml_round_trip(tmp_path):
    config = ModelConfig(ndim=3, width=16, affine_channels=(4, 8, 10))
    path = tmp_path / "model.yaml"
    save_yaml(config, path)
    assert load_yaml(ModelConfig, path) == config
    path.write_text("- not\n- a mapping\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(ModelConfig, path)
    path.write_text("width: [unclosed\n")
    with pytest.raises(ConfigError, match="YAML"):
        load_yaml(ModelConfig, path)
