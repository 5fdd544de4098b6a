"""The core benchmark's memory columns measure something real: a larger image needs more memory."""

import argparse
import importlib.util
from pathlib import Path

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
