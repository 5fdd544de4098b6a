"""One 2D report written through ``firereg explain``, shared by the tests of this folder."""

from pathlib import Path

import pytest
import torch
from explain_helpers import run_cli, tiny_checkpoint, write_pair


@pytest.fixture(scope="session")
def report_2d(tmp_path_factory) -> Path:
    """A 2D report with moving and fixed labels, written into an existing empty folder."""
    root = tmp_path_factory.mktemp("explain2d")
    paths = write_pair(root / "data", (36, 40))
    run = tiny_checkpoint(root / "run", 2, perturb=0.02)
    out = root / "out"
    out.mkdir()  # an existing empty folder is accepted
    torch.manual_seed(0)
    code = run_cli(["--model", str(run), "--moving", str(paths["moving"]), "--fixed", str(paths["fixed"]),
                    "--moving-labels", str(paths["moving_labels"]), "--fixed-labels",
                    str(paths["fixed_labels"]), "--out", str(out), "--device", "cpu", "--spacing", "2"])
    assert code == 0
    return out
