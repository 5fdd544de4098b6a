"""Time FIRE's training step (all of Eq. 1, three optimizers) and its inference path (G + one T),
and measure how much memory each needs, at several image sizes and widths.

Usage: python benchmarks/bench_core.py [--threads 2] [--repeats 3] [--quick] [--no-memory]
       [--device cpu|cuda]

Prints one row per (ndim, size, width): seconds per training step (batch 1) and per inference,
with the machine's thread count, so numbers can be compared only within one run and one machine;
and the peak memory of one inference and of one training step, each measured in a fresh
subprocess so that nothing else this process allocated counts: on the CPU the growth of the peak
resident set (``VmHWM`` of ``/proc/self/status``) over the resident set after building the model
and its inputs; on a GPU ``torch.cuda.max_memory_allocated`` over the allocation after the same.
Synthetic random inputs; neither timings nor memory depend on image content.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

from firereg.config import ModelConfig, OptimConfig
from firereg.model import FireModel
from firereg.training import FireOptimizers, build_optimizers, training_step

CASES_FULL = [
    (2, (96, 112), 16), (2, (96, 112), 32), (2, (96, 112), 64),
    (2, (192, 224), 16), (2, (384, 448), 16),
    (3, (48, 56, 48), 8), (3, (48, 56, 48), 16), (3, (96, 112, 96), 8),
]
CASES_QUICK = [(2, (96, 112), 16), (3, (48, 56, 48), 8)]


def time_samples(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def _time(fn, repeats: int) -> tuple[float, float]:
    samples = time_samples(fn, repeats)
    return statistics.mean(samples), (statistics.stdev(samples) if len(samples) > 1 else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory columns")
    parser.add_argument("--memory-worker", nargs=4, metavar=("NDIM", "SIZE", "WIDTH", "MODE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.memory_worker:
        ndim, size, width, mode = args.memory_worker
        memory_worker(int(ndim), tuple(int(v) for v in size.split("x")), int(width), mode, device)
        return
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {device}")
    what = "peak RSS growth" if device.type == "cpu" else "peak CUDA allocation growth"
    if not args.no_memory:
        print(f"# memory: {what} over the model and its inputs, one fresh process per cell")
    print(f"{'ndim':>4} {'size':>14} {'voxels':>10} {'width':>5} {'params':>10} {'train step s':>14} "
          f"{'inference s':>13}" + ("" if args.no_memory else f" {'train MB':>9} {'infer MB':>9}"))
    for ndim, size, width in CASES_QUICK if args.quick else CASES_FULL:
        params, (t_mean, t_sd), (i_mean, i_sd) = _measure(ndim, size, width, device, args.repeats)
        voxels = 1
        for n in size:
            voxels *= n
        row = (f"{ndim:>4} {'x'.join(map(str, size)):>14} {voxels:>10,} {width:>5} {params:>10,} "
               f"{t_mean:>8.3f}±{t_sd:<5.3f} {i_mean:>7.3f}±{i_sd:<5.3f}")
        if not args.no_memory:
            train_mb = measure_memory(ndim, size, width, "train", args)
            infer_mb = measure_memory(ndim, size, width, "infer", args)
            row += f" {train_mb:>9.0f} {infer_mb:>9.0f}"
        print(row, flush=True)


def memory_worker(ndim: int, size: tuple[int, ...], width: int, mode: str, device: torch.device) -> None:
    """In a fresh process: build the model and inputs, run one ``mode`` pass ("train" or "infer"),
    print ``{"mb": peak growth}`` as one JSON line."""
    from proc_status import PeakMemory  # a sibling module: this runs as a script, in a subprocess

    model, opts, x_a, x_b = _setup(ndim, size, width, device)
    memory = PeakMemory(device.type)
    if mode == "train":
        training_step(model, opts, x_a, x_b)
    else:
        with torch.inference_mode():
            model.register(x_a, x_b, "ab")
    print(json.dumps({"mb": memory.growth_mb()}))


def measure_memory(ndim: int, size: tuple[int, ...], width: int, mode: str, args) -> float:
    """Peak memory growth in MB of one ``mode`` pass, measured by :func:`memory_worker`."""
    command = [sys.executable, __file__, "--threads", str(args.threads), "--device", args.device,
               "--memory-worker", str(ndim), "x".join(map(str, size)), str(width), mode]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"memory worker failed (rc {done.returncode}):\n{done.stderr[-2000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["mb"])


def seeded_setup(config: ModelConfig, size: tuple[int, ...], device: torch.device, *,
                 batch: int = 1, optim: OptimConfig | None = None
                 ) -> tuple[FireModel, FireOptimizers, torch.Tensor, torch.Tensor]:
    """A model seeded with 0, its optimizers and two random ``(batch, 1, *size)`` inputs in [-1, 1]."""
    torch.manual_seed(0)
    model = FireModel(config).to(device)
    x_a = torch.rand(batch, 1, *size, device=device) * 2 - 1
    x_b = torch.rand(batch, 1, *size, device=device) * 2 - 1
    return model, build_optimizers(model, optim), x_a, x_b


def _setup(ndim: int, size: tuple[int, ...], width: int, device: torch.device):
    """:func:`seeded_setup` of the default model at ``ndim`` and ``width``, batch 1."""
    return seeded_setup(ModelConfig(ndim=ndim, width=width), size, device)


def _measure(ndim: int, size: tuple[int, ...], width: int, device: torch.device, repeats: int):
    """(parameter count, training-step timing, inference timing) for one configuration."""
    model, opts, x_a, x_b = _setup(ndim, size, width, device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def train() -> None:
        training_step(model, opts, x_a, x_b)
        sync()

    def infer() -> None:
        with torch.inference_mode():
            model.register(x_a, x_b, "ab")
        sync()

    params = sum(p.numel() for p in model.parameters())
    return params, _time(train, repeats), _time(infer, repeats)


if __name__ == "__main__":
    main()
