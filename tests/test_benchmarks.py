"""The benchmarks run: the core benchmark's memory columns measure something real (a larger image
needs more memory), and the training-throughput benchmark prints every row it promises."""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_core.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_core", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peak_memory_grows_with_image_size_and_training_needs_more_than_inference():
    bench = _bench()
    args = argparse.Namespace(threads=1, device="cpu")
    small = bench.measure_memory(2, (64, 64), 4, "train", args)
    large = bench.measure_memory(2, (256, 256), 4, "train", args)
    infer = bench.measure_memory(2, (256, 256), 4, "infer", args)
    assert 0 < small < large  # 16x the voxels
    assert large > 4 * small
    assert 0 < infer < large


TRAIN_BENCH = BENCH.parent / "bench_train.py"


def test_training_throughput_quick_run_prints_every_row(tmp_path):
    """``bench_train.py --quick`` prints the machine, the load and one row per configuration and
    dtype (never an assertion on speed)."""
    out = tmp_path / "rows.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(TRAIN_BENCH), "--quick", "--threads", "1", "--json",
                           str(out)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert any(line.startswith("# ") and "torch threads" in line and "torch " in line for line in lines)
    assert any(line.startswith("# load average at start [") for line in lines)
    rows = [line.split() for line in lines if line.startswith(("cpu ", "cuda "))]
    keys = [(r[0], r[1], r[2], r[4], r[5], r[6], r[7], r[9]) for r in rows]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    expected = [(device, dims, grid, "4", stem, res, batch, dtype) for device in devices
                for dims, grid, stem, res, batch in [("2D", "32x40", "7", "4", "2"),
                                                     ("3D", "24x24x24", "7", "4", "1"),
                                                     ("3D", "24x24x24", "3", "2", "1")]
                for dtype in ("fp32", "bf16")]
    assert keys == expected
    for r in rows:
        assert r[14] == "yes"  # every loss term finite
        float(r[10]), float(r[11]), float(r[13])  # s/step, steps/s, peak MB are numbers
        if r[9] == "bf16":
            assert r[12].endswith("x") and float(r[15]) >= 0  # speed-up and loss difference
        else:
            assert r[12] == "-" and r[15] == "-"
    figures = json.loads(out.read_text())
    assert len(figures["rows"]) == len(expected) and figures["machine"]["threads"] == 1
    assert all(row["peak_mb"] > 0 for row in figures["rows"])
