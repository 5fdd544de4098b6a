"""Time FIRE's training step (all of Eq. 1, three optimizers) and its inference path (G + one T).

Usage: python benchmarks/bench_core.py [--threads 2] [--repeats 3] [--quick]

Prints one row per (ndim, size, width): seconds per training step (batch 1) and per inference,
with the machine's thread count, so numbers can be compared only within one run and one machine.
Synthetic random inputs; timings do not depend on image content.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from firereg.config import ModelConfig
from firereg.model import FireModel
from firereg.training import build_optimizers, training_step

CASES_FULL = [
    (2, (96, 112), 16), (2, (96, 112), 32), (2, (96, 112), 64),
    (2, (192, 224), 16),
    (3, (48, 56, 48), 8), (3, (48, 56, 48), 16), (3, (96, 112, 96), 8),
]
CASES_QUICK = [(2, (96, 112), 16), (3, (48, 56, 48), 8)]


def _time(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.mean(samples), (statistics.stdev(samples) if len(samples) > 1 else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {device}")
    print(f"{'ndim':>4} {'size':>14} {'width':>5} {'params':>10} {'train step s':>14} "
          f"{'inference s':>13}")
    for ndim, size, width in CASES_QUICK if args.quick else CASES_FULL:
        params, (t_mean, t_sd), (i_mean, i_sd) = _measure(ndim, size, width, device, args.repeats)
        print(f"{ndim:>4} {'x'.join(map(str, size)):>14} {width:>5} {params:>10,} "
              f"{t_mean:>8.3f}±{t_sd:<5.3f} {i_mean:>7.3f}±{i_sd:<5.3f}", flush=True)


def _measure(ndim: int, size: tuple[int, ...], width: int, device: torch.device, repeats: int):
    """(parameter count, training-step timing, inference timing) for one configuration."""
    torch.manual_seed(0)
    model = FireModel(ModelConfig(ndim=ndim, width=width)).to(device)
    opts = build_optimizers(model)
    x_a = torch.rand(1, 1, *size, device=device) * 2 - 1
    x_b = torch.rand(1, 1, *size, device=device) * 2 - 1

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
