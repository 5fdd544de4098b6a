"""Training throughput of FIRE: steps/s and peak memory per model configuration, float32 and bf16.

Usage: python benchmarks/bench_train.py [--threads 2] [--repeats 3] [--warmup 1] [--only 2d|3d]
       [--no-memory] [--quick] [--json PATH]

A step is ``firereg.training.training_step`` (all of Eq. 1, one backward, the three Adam
optimizers) on a seeded random batch in [-1, 1]; the same model and inputs in every dtype.
Each row runs ``--warmup`` untimed steps, then ``--repeats`` timed ones, and reports the median
seconds per step and its inverse. Rows:

* 2D: the model of configs/models/t1_t2_2d.yaml (width 16) on 96x112 (a 2 mm brain slice),
  batch 4;
* 3D: the model of configs/models/t1_t2_3d_cpu.yaml with width 8 or 16, ``stem_kernel`` 7 or 3
  and ``res_blocks`` 4 or 2, batch 1, on the 4 mm grid of the SPM brain (48x56x48, what
  ``model_grid`` gives) and a 3 mm grid (60x72x60, 180x216x180 mm, set with ``data.shape``;
  ``model_grid``'s own 3 mm grid is 64x76x64).

Each row is run in float32 and under ``torch.autocast(device, torch.bfloat16)``, on the CPU and,
when ``torch.cuda.is_available()``, on CUDA too. bf16 rows also say whether every loss term stayed
finite in every step and how far the first step's total loss (before any update, so the same
weights and inputs) is from float32's, relatively. Unless ``--no-memory``, each row runs in a
fresh subprocess, which also measures its peak memory: on the CPU the growth of the peak resident
set (``VmHWM``) over the resident set after building the model and its inputs, on a GPU the
growth of ``torch.cuda.max_memory_allocated``; over all its steps, so Adam's state is included.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import yaml
from bench_core import seeded_setup, time_samples  # sibling modules: this runs as a script
from proc_status import PeakMemory, cpu_model, load_average

from firereg.config import ModelConfig, OptimConfig, from_dict
from firereg.training import NonFiniteLossError, training_step

MODELS = Path(__file__).resolve().parents[1] / "configs" / "models"
DTYPES = ("fp32", "bf16")


@dataclass(frozen=True)
class Case:
    """One model configuration: its base config file, the knobs, the grid and the batch."""

    base: str  # a file in configs/models
    size: tuple[int, ...]
    spacing_mm: float
    width: int
    stem_kernel: int = 7
    res_blocks: int = 4
    batch: int = 1

    @property
    def ndim(self) -> int:
        return len(self.size)

    def configs(self) -> tuple[ModelConfig, OptimConfig]:
        """The base file's model (with this width and these knobs) and optimizer settings."""
        data = yaml.safe_load((MODELS / self.base).read_text())
        model = from_dict(ModelConfig, data["model"])
        model = replace(model, width=self.width, stem_kernel=self.stem_kernel,
                        res_blocks=self.res_blocks)
        if model.ndim != self.ndim:
            raise ValueError(f"{self.base} is {model.ndim}D, the case is {self.ndim}D")
        return model, from_dict(OptimConfig, data.get("optim"))


def _cases_3d(size: tuple[int, ...], spacing: float, widths: tuple[int, ...],
              knobs: tuple[tuple[int, int], ...]) -> list[Case]:
    return [Case("t1_t2_3d_cpu.yaml", size, spacing, w, k, r) for w in widths for k, r in knobs]


# Every knob pair at the cheapest 3D setting; elsewhere the paper's (7, 4) and the two cheaper
# steps, stem first (the larger saving), to keep the default run near 10 minutes on 2 idle cores
# (not timed idle; 16 minutes with --threads 1 beside a training run, docs/benchmarks.md).
ALL_KNOBS = ((7, 4), (3, 4), (7, 2), (3, 2))
KNOBS = ((7, 4), (3, 4), (3, 2))
CASES_FULL = [
    Case("t1_t2_2d.yaml", (96, 112), 2.0, 16, batch=4),
    *_cases_3d((48, 56, 48), 4.0, (8,), ALL_KNOBS),
    *_cases_3d((48, 56, 48), 4.0, (16,), KNOBS),
    *_cases_3d((60, 72, 60), 3.0, (8, 16), KNOBS),
]
CASES_QUICK = [
    Case("t1_t2_2d.yaml", (32, 40), 2.0, 4, batch=2),
    # not 20 voxels (a feature grid of 5) per axis: with torch 2.13.0+cpu, the backward of T_af's
    # 7^3 stride-2 conv on a 5^3 grid corrupts the heap (oneDNN; a plain Conv3d shows it too)
    *_cases_3d((24, 24, 24), 4.0, (4,), ((7, 4), (3, 2))),
]


def run_case(case: Case, device: torch.device, dtype: str, repeats: int, warmup: int,
             memory: bool) -> dict:
    """Time ``warmup + repeats`` training steps of ``case``; with ``memory``, also their peak."""
    model_config, optim_config = case.configs()
    model, opts, x_a, x_b = seeded_setup(model_config, case.size, device, batch=case.batch,
                                         optim=optim_config)
    probe = PeakMemory(device.type) if memory else None
    steps: list[dict[str, float]] = []

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            steps.append(training_step(model, opts, x_a, x_b))
        if device.type == "cuda":
            torch.cuda.synchronize()

    result = {"params": sum(p.numel() for p in model.parameters())}
    try:
        samples = time_samples(step, repeats, warmup)
    except NonFiniteLossError as exc:
        samples, result["error"] = [], str(exc)
    result.update(
        samples_s=samples,
        median_s=statistics.median(samples) if samples else math.nan,
        first_terms=steps[0] if steps else None,
        finite=len(steps) == warmup + repeats and all(
            math.isfinite(v) for terms in steps for v in terms.values()),
        peak_mb=probe.growth_mb() if probe is not None else None,
    )
    return result


def run_in_subprocess(case: Case, device: torch.device, dtype: str, args: argparse.Namespace) -> dict:
    """:func:`run_case` with memory, in a fresh process (nothing else there raised the peak)."""
    command = [sys.executable, __file__, "--threads", str(args.threads), "--worker",
               json.dumps({"case": asdict(case), "device": str(device), "dtype": dtype,
                           "repeats": args.repeats, "warmup": args.warmup})]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"worker failed (rc {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _worker(spec: str) -> None:
    job = json.loads(spec)
    case = Case(**{**job["case"], "size": tuple(job["case"]["size"])})
    result = run_case(case, torch.device(job["device"]), job["dtype"], job["repeats"],
                      job["warmup"], memory=True)
    print(json.dumps(result))


HEADER = (f"{'device':<6} {'dims':>4} {'grid':>9} {'mm':>3} {'width':>5} {'stem':>4} {'res':>3} "
          f"{'batch':>5} {'params':>9} {'dtype':>5} {'s/step':>7} {'steps/s':>7} {'vs fp32':>7} "
          f"{'peak MB':>7} {'finite':>6} {'loss rel. diff':>14}")


def format_row(row: dict) -> str:
    """One line of the table for a row of :func:`main`'s results."""
    def num(value: float | None, spec: str, width: int) -> str:
        return f"{'-':>{width}}" if value is None or math.isnan(value) else f"{value:>{width}{spec}}"

    return (f"{row['device']:<6} {str(row['ndim']) + 'D':>4} {row['grid']:>9} "
            f"{row['spacing_mm']:>3g} {row['width']:>5} {row['stem_kernel']:>4} "
            f"{row['res_blocks']:>3} {row['batch']:>5} {row['params']:>9,} {row['dtype']:>5} "
            f"{num(row['median_s'], '.3f', 7)} {num(row['steps_per_s'], '.3f', 7)} "
            f"{num(row['speedup'], '.2f', 6)}{'x' if row['speedup'] else ' '} "
            f"{num(row['peak_mb'], '.0f', 7)} {'yes' if row['finite'] else 'NO':>6} "
            f"{num(row['loss_rel_diff'], '.1e', 14)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps (3; --quick 1)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--only", choices=("2d", "3d"), help="only the 2D or the 3D rows")
    parser.add_argument("--no-memory", action="store_true",
                        help="run in this process, without the peak-memory column")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke run")
    parser.add_argument("--json", metavar="PATH", help="also write the machine and rows as JSON")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be at least 1 and --warmup at least 0")
    torch.set_num_threads(args.threads)
    if args.worker:
        _worker(args.worker)
        return

    cases = CASES_QUICK if args.quick else CASES_FULL
    if args.only:
        cases = [c for c in cases if c.ndim == int(args.only[0])]
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(),
               "threads": torch.get_num_threads(), "torch": torch.__version__,
               "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
               "load_average_start": load_average()}
    print(f"# {machine['cpu']} ({machine['cores']} cores), {machine['threads']} torch threads, "
          f"torch {machine['torch']}" + (f", CUDA {machine['cuda']}" if machine["cuda"] else ""))
    print(f"# load average at start {machine['load_average_start']}")
    print(f"# median of {args.repeats} timed step(s) after {args.warmup} warm-up step(s); "
          + ("no memory column" if args.no_memory else
             "peak MB: growth over the model and its inputs, one fresh process per row"))
    print("# vs fp32: bf16 speed-up; loss rel. diff: |L_bf16 - L_fp32| / |L_fp32| of the first step")
    print(HEADER, flush=True)
    rows = []
    for device in devices:
        for case in cases:
            fp32 = None
            for dtype in DTYPES:
                if args.no_memory:
                    result = run_case(case, device, dtype, args.repeats, args.warmup, memory=False)
                else:
                    result = run_in_subprocess(case, device, dtype, args)
                row = {"device": device.type, "ndim": case.ndim, "grid": "x".join(map(str, case.size)),
                       **{k: v for k, v in asdict(case).items() if k != "size"}, "dtype": dtype,
                       **result, "steps_per_s": 1.0 / result["median_s"], "speedup": None,
                       "loss_rel_diff": None}
                if dtype == "fp32":
                    fp32 = row
                elif fp32 is not None:
                    row["speedup"] = fp32["median_s"] / row["median_s"]
                    if row["first_terms"] and fp32["first_terms"]:
                        ref = fp32["first_terms"]["total"]
                        row["loss_rel_diff"] = abs(row["first_terms"]["total"] - ref) / abs(ref)
                rows.append(row)
                print(format_row(row), flush=True)
    machine["load_average_end"] = load_average()
    print(f"# load average at end {machine['load_average_end']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "args": vars(args), "rows": rows},
                                              indent=1))
        print(f"# figures written to {args.json}")


if __name__ == "__main__":
    main()
