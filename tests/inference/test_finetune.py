"""Network-mode refinement: a fitted copy, the caller's model untouched, G frozen unless asked."""

import pytest
import torch

from firereg.config import ModelConfig
from firereg.inference.finetune import FinetuneConfig, finetune_pair
from firereg.model import FireModel


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    fixed = torch.nn.functional.interpolate(torch.randn(1, 1, 6, 6), size=(24, 24), mode="bicubic",
                                            align_corners=True).tanh()
    return fixed.roll(2, dims=-1), fixed


@pytest.mark.parametrize("train_synthesis", [False, True])
def test_finetune_trains_a_copy(train_synthesis: bool) -> None:
    torch.manual_seed(1)
    model = FireModel(ModelConfig(ndim=2, width=4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    moving, fixed = _pair()
    tuned, report = finetune_pair(model, moving, fixed, "ab",
                                  FinetuneConfig(steps=3, lr=1e-3, train_synthesis=train_synthesis))
    assert tuned is not model and not tuned.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # the caller's model is untouched
    after = tuned.state_dict()
    t_changed = any(not torch.equal(after[k], before[k]) for k in before if k.startswith("transform_ab"))
    g_changed = any(not torch.equal(after[k], before[k]) for k in before if k.startswith("encoder"))
    assert t_changed
    assert g_changed == train_synthesis
    assert report["steps"] == 3 and report["loss_last_step"] == pytest.approx(report["loss_last_step"])
    assert all(p.requires_grad for p in tuned.parameters())


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="steps"):
        FinetuneConfig(steps=0)
    with pytest.raises(ValueError, match="direction"):
        finetune_pair(FireModel(ModelConfig(ndim=2, width=4)), *_pair(), "xy")


def test_cli_refuses_network_mode_without_refine(capsys) -> None:
    from firereg.cli.main import main

    code = main(["register", "--moving", "m.nii.gz", "--fixed", "f.nii.gz", "--out", "o",
                 "--refine-mode", "network"])
    assert code == 2
    assert "--refine-mode network needs --refine" in capsys.readouterr().err
