"""The three Adam optimizers of §3.9 and the training step."""

import pytest
import torch

from firereg.config import ModelConfig, OptimConfig
from firereg.model import FireModel
from firereg.training import NonFiniteLossError, build_optimizers, training_step


def _setup(ndim=2, width=4, optim=None):
    model = FireModel(ModelConfig(ndim=ndim, width=width))
    return model, build_optimizers(model, optim)


def test_three_optimizers_with_the_papers_rates_over_disjoint_groups_covering_the_model():
    model, opts = _setup()
    rates = {name: [g["lr"] for g in opt.param_groups] for name, opt in opts.items()}
    assert rates == {"affine": [1e-5], "nonrigid": [5e-5], "synthesis": [1e-4]}
    assert all(isinstance(opt, torch.optim.Adam) for _, opt in opts.items())
    held = {name: {id(p) for g in opt.param_groups for p in g["params"]} for name, opt in opts.items()}
    assert not held["affine"] & held["nonrigid"]
    assert not held["affine"] & held["synthesis"]
    assert not held["nonrigid"] & held["synthesis"]
    assert set().union(*held.values()) == {id(p) for p in model.parameters()}
    affine_ids = {id(p) for p in model.transform_ab.affine.parameters()}
    assert affine_ids <= held["affine"]
    assert {id(p) for p in model.encoder.parameters()} <= held["synthesis"]
    assert {id(p) for p in model.transform_ba.nonrigid.parameters()} <= held["nonrigid"]


def test_training_step_updates_every_group_and_reports_named_floats():
    model, opts = _setup(optim=OptimConfig(lr_affine=1e-3, lr_nonrigid=1e-3, lr_synthesis=1e-3))
    x_a, x_b = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1
    before = {k: [p.detach().clone() for p in v] for k, v in model.parameter_groups().items()}
    terms = training_step(model, opts, x_a, x_b)
    terms = training_step(model, opts, x_a, x_b)  # the zero-initialised heads move on step 2
    assert all(isinstance(v, float) for v in terms.values()) and "total" in terms
    for name, params in model.parameter_groups().items():
        moved = sum(float((p.detach() - q).abs().sum()) for p, q in zip(params, before[name], strict=True))
        assert moved > 0, name


def test_training_step_refuses_a_non_finite_loss_without_touching_parameters():
    model, opts = _setup()
    x = torch.rand(1, 1, 32, 32)
    x_nan = x.clone()
    x_nan[0, 0, 3, 3] = float("nan")
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(NonFiniteLossError, match="total loss"):
        training_step(model, opts, x, x_nan)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))


def test_optimizer_state_round_trips():
    model, opts = _setup()
    x = torch.rand(1, 1, 32, 32)
    training_step(model, opts, x, x)
    state = opts.state_dict()
    _, fresh = _setup()
    fresh_model = FireModel(ModelConfig(ndim=2, width=4))
    fresh = build_optimizers(fresh_model)
    fresh.load_state_dict(state)
    assert fresh.state_dict()["affine"]["state"].keys() == state["affine"]["state"].keys()
    with pytest.raises(ValueError, match="missing"):
        fresh.load_state_dict({"affine": state["affine"]})
