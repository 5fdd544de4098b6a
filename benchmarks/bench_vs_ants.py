"""Time FIRE's CPU inference against ANTs (affine and SyN) on the same pairs, with the same threads.

Usage: FIREREG_CACHE=... python benchmarks/bench_vs_ants.py [--threads 2] [--repeats 3]
       [--ants-repeats 1] [--slices 20,24,28] [--skip-3d] [--skip-memory] [--json PATH]

Checks the pipeline's performance targets, all measured in one run on one machine:

* 2D: CPU inference per pair takes at most 1/5 of ANTs SyN's time. Pairs are axial slices of the
  SPM avg152 brain from the offline cache (test split): T1 (moving, rotated and shifted slightly
  by resampling its voxels, the affine unchanged) onto T2 (fixed), with the shipped ``t1-t2-2d``
  model at its card's spacing.
* 3D at 2 mm: the same for the whole T1 -> T2 volume pair. No 3D model is shipped, so an
  *untrained* width-8 3D model is used: inference time does not depend on the weights.
* Peak memory of 3D inference at 1.28 mm (model grid) stays under 4 GB, measured in a
  subprocess (so this process's memory does not count): VmHWM of ``/proc/self/status`` (absolute
  peak RSS), and the same minus the RSS after imports and model construction.

FIRE's time is ``register_pair`` end to end (preprocessing, G and both transformation networks,
resampling onto the original grids, folding and inverse-consistency report), after one untimed
warm-up. "FIRE affine" is ``register_pair(affine_only=True)``: the same network pass, with the
non-rigid field zeroed in the outputs. ANTs' time is ``registration_seconds`` (the
``ants.registration`` call alone, in a worker with ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` set to
``--threads``); the ratio FIRE / SyN uses it, which favours ANTs. Methods are interleaved pair by
pair so that a changing background load hits all of them alike; the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from proc_status import cpu_model, load_average, status_kb  # a sibling module: run as a script
from scipy import ndimage

from firereg.config import ModelConfig
from firereg.data.image import Image
from firereg.data.io import read_image, write_image
from firereg.data.preprocessing import PreprocessConfig
from firereg.evaluation.ants_baselines import ants_affine, ants_syn
from firereg.inference.image_affine import ImageAffineConfig
from firereg.inference.refine import RefineConfig
from firereg.inference.register_pair import common_model_shape, register_pair
from firereg.model import FireModel
from firereg.pretrained.registry import load_pretrained

TARGET_RATIO = 1 / 5
REFINE_LIMIT_2D_S, REFINE_LIMIT_3D_S = 1.0, 10.0  # what --refine may add per pair (refinement issue)
MEMORY_LIMIT_GB = 4.0
MODEL_2D = "t1-t2-2d"
CONFIG_3D = ModelConfig(ndim=3, width=8, affine_channels=(16, 32, 64), affine_hidden=64,
                        affine_pooling="moments")
# A small rigid misalignment of the moving image: degrees about the last in-plane axis, voxels.
ROTATION_DEG, SHIFT_VOXELS = 4.0, (3.0, -2.0, 1.0)


# --------------------------------------------------------------------------- machine and data
def dataset_dir() -> Path:
    cache = os.environ.get("FIREREG_CACHE")
    if not cache:
        sys.exit("set FIREREG_CACHE to the offline cache (datasets/spm_avg152 from `firereg data prepare`)")
    folder = Path(cache) / "datasets" / "spm_avg152"
    if not (folder / "t1.nii.gz").is_file():
        sys.exit(f"{folder}: no t1.nii.gz; run `firereg data prepare` first")
    return folder


def misalign(image: Image) -> Image:
    """``image`` with its voxels rotated by ROTATION_DEG (in the first two axes) and shifted."""
    d = image.ndim
    angle = np.deg2rad(ROTATION_DEG)
    matrix = np.eye(d)
    matrix[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    centre = (np.array(image.spatial_shape) - 1) / 2
    offset = centre - matrix @ centre - np.array(SHIFT_VOXELS[:d])
    data = ndimage.affine_transform(np.asarray(image.data, np.float32), matrix, offset=offset,
                                    order=1, mode="constant", cval=0.0)
    return image.with_data(data.astype(np.float32))


# --------------------------------------------------------------------------- timing
def fire_seconds(model: FireModel, moving: Image, fixed: Image, config: PreprocessConfig,
                 affine_only: bool, stages: dict[str, list[float]] | None = None,
                 refine: RefineConfig | None = None,
                 image_affine: ImageAffineConfig | None = None) -> float:
    """Seconds of one ``register_pair`` call; its per-stage timings are appended to ``stages``."""
    start = time.perf_counter()
    result = register_pair(model, moving, fixed, direction="ab", preprocess_config=config,
                           affine_only=affine_only, device="cpu", refine=refine,
                           image_affine=image_affine)
    seconds = time.perf_counter() - start
    if stages is not None:
        timings = dict(result.report["timings"])
        timings["report_s"] = seconds - sum(timings.values())  # folding, inverse consistency
        for stage, value in timings.items():
            stages.setdefault(stage, []).append(value)
    return seconds


def time_pairs(pairs: list[tuple[str, Image, Image]], model: FireModel, config: PreprocessConfig,
               repeats: int, ants_repeats: int, threads: int, ants_warm: bool,
               stages: dict[str, list[float]]) -> dict[str, list[float]]:
    """Per-pair samples (seconds) of every method; methods interleaved pair by pair.

    The stage timings of the full FIRE runs are appended to ``stages``.
    """
    samples: dict[str, list[float]] = {"fire": [], "fire_affine": [], "fire_refine": [],
                                       "fire_refine_image": [], "ants_affine": [],
                                       "ants_syn_mi": [], "ants_syn_mi_total": []}
    _, moving0, fixed0 = pairs[0]
    fire_seconds(model, moving0, fixed0, config, affine_only=False)  # warm-up, untimed
    if not ants_warm:  # start the ANTs worker and its ITK once, untimed
        ants_affine(moving0, fixed0, threads=threads)
    for name, moving, fixed in pairs:
        print(f"  {name}: ", end="", flush=True)
        for _ in range(repeats):
            samples["fire"].append(fire_seconds(model, moving, fixed, config, False, stages))
            samples["fire_affine"].append(fire_seconds(model, moving, fixed, config, affine_only=True))
            samples["fire_refine"].append(fire_seconds(model, moving, fixed, config, False,
                                                       refine=RefineConfig()))
            samples["fire_refine_image"].append(fire_seconds(  # what `register --refine` runs
                model, moving, fixed, config, False, refine=RefineConfig(),
                image_affine=ImageAffineConfig(metric="mi")))
        print("FIRE done, ", end="", flush=True)
        for _ in range(ants_repeats):
            samples["ants_affine"].append(ants_affine(moving, fixed, threads=threads).registration_seconds)
            syn = ants_syn(moving, fixed, metric="mi", threads=threads)
            samples["ants_syn_mi"].append(syn.registration_seconds)
            samples["ants_syn_mi_total"].append(syn.total_seconds)
        print("ANTs done", flush=True)
    return samples


def summarize(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    out = {}
    for method, values in samples.items():
        out[method] = {"n": len(values), "mean_s": statistics.mean(values),
                       "sd_s": statistics.stdev(values) if len(values) > 1 else 0.0,
                       "samples_s": [round(v, 4) for v in values]}
    syn = out["ants_syn_mi"]["mean_s"]
    for method in out:
        out[method]["ratio_to_syn"] = out[method]["mean_s"] / syn
    return out


# --------------------------------------------------------------------------- memory (subprocess)
def memory_worker(moving_path: str, fixed_path: str, spacing: float, threads: int) -> None:
    """Run in a fresh process: register once and print peak memory as one JSON line."""
    import resource

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = FireModel(CONFIG_3D).eval()
    baseline_kb = status_kb("VmRSS")  # after imports and model construction
    moving, fixed = read_image(moving_path, ndim=3), read_image(fixed_path, ndim=3)
    config = PreprocessConfig(spacing=spacing)
    start = time.perf_counter()
    result = register_pair(model, moving, fixed, direction="ab", preprocess_config=config)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "input_shape": list(fixed.spatial_shape), "input_spacing_mm": list(fixed.spacing),
        "model_grid_shape": result.report["model_grid_shape"], "spacing_mm": spacing,
        "baseline_rss_mb": baseline_kb / 1024, "peak_rss_mb": status_kb("VmHWM") / 1024,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "seconds": seconds, "threads": torch.get_num_threads()}))


def measure_memory(moving: Image, fixed: Image, spacing: float, threads: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_vs_ants_") as tmp:
        moving_path, fixed_path = Path(tmp) / "moving.nii.gz", Path(tmp) / "fixed.nii.gz"
        write_image(moving, moving_path)
        write_image(fixed, fixed_path)
        proc = subprocess.run([sys.executable, __file__, "--memory-worker", str(moving_path),
                               str(fixed_path), "--spacing", str(spacing), "--threads", str(threads)],
                              capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"memory worker failed (rc {proc.returncode}):\n{proc.stderr[-2000:]}")
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["increment_mb"] = figures["peak_rss_mb"] - figures["baseline_rss_mb"]
    figures["pass"] = figures["peak_rss_mb"] < MEMORY_LIMIT_GB * 1024
    return figures


def upsample_to_1mm(image: Image) -> Image:
    """``image`` on a grid of 1 mm voxels covering the same field of view (linear interpolation)."""
    factors = np.array(image.spacing)
    # grid_mode: voxel corners stay in place, new voxel j sits at old index (j + 0.5) / f - 0.5
    data = ndimage.zoom(np.asarray(image.data, np.float32), factors, order=1, grid_mode=True,
                        mode="nearest")
    affine = image.affine.copy()
    affine[:3, :3] = image.affine[:3, :3] / factors  # columns of 1 mm along the same directions
    affine[:3, 3] = image.affine[:3, 3] + image.affine[:3, :3] @ ((1 - factors) / (2 * factors))
    return Image(data, affine, 3, source=f"{image.source} (1 mm)")


# --------------------------------------------------------------------------- printing
ROWS = [("fire", "FIRE (register_pair)"), ("fire_affine", "FIRE affine only"),
        ("fire_refine", "FIRE + feature refine only"),
        ("fire_refine_image", "FIRE --refine (image aff.)"),
        ("ants_affine", "ANTs Affine"), ("ants_syn_mi", "ANTs SyN (MI)"),
        ("ants_syn_mi_total", "ANTs SyN (MI) + outputs")]


def stage_means(stages: dict[str, list[float]]) -> dict[str, float]:
    return {stage: statistics.mean(values) for stage, values in stages.items()}


def print_table(title: str, summary: dict[str, dict[str, float]], stages: dict[str, float],
                refine_limit_s: float) -> tuple[bool, bool]:
    print(f"\n## {title}")
    print(f"{'method':<26} {'n':>3} {'mean s/pair':>12} {'SD s':>9} {'/ SyN':>8}")
    for key, label in ROWS:
        row = summary[key]
        print(f"{label:<26} {row['n']:>3} {row['mean_s']:>12.3f} {row['sd_s']:>9.3f} "
              f"{row['ratio_to_syn']:>8.4f}")
    print("FIRE stages (mean s): " + ", ".join(f"{k.removesuffix('_s')} {v:.3f}"
                                                for k, v in stages.items()))
    ratio = summary["fire"]["ratio_to_syn"]
    ok = ratio <= TARGET_RATIO
    print(f"target FIRE / SyN <= {TARGET_RATIO:.2f}: {ratio:.4f} "
          f"(SyN / FIRE = {1 / ratio:.2f}) -> {'PASS' if ok else 'FAIL'}")
    added = summary["fire_refine_image"]["mean_s"] - summary["fire"]["mean_s"]
    refine_ok = added <= refine_limit_s
    print(f"target --refine (image affine + feature refinement) adds <= {refine_limit_s:.0f} s per pair: "
          f"{added:.3f} s "
          f"-> {'PASS' if refine_ok else 'FAIL'}")
    return ok, refine_ok


# --------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch and ITK threads")
    parser.add_argument("--repeats", type=int, default=3, help="FIRE runs per pair (after a warm-up)")
    parser.add_argument("--ants-repeats", type=int, default=1, help="ANTs runs per pair")
    parser.add_argument("--slices", default="20,24,28", help="axial slices k of the 2D pairs")
    parser.add_argument("--repeats-3d", type=int, default=2, help="FIRE runs of the 3D pair")
    parser.add_argument("--skip-2d", action="store_true")
    parser.add_argument("--skip-3d", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-spacing", type=float, default=1.28)
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--memory-worker", nargs=2, metavar=("MOVING", "FIXED"), help=argparse.SUPPRESS)
    parser.add_argument("--spacing", type=float, default=1.28, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_worker:
        memory_worker(*args.memory_worker, args.spacing, args.threads)
        return

    torch.set_num_threads(args.threads)
    import ants  # noqa: F401  (fail early when antspyx is missing)

    folder = dataset_dir()
    figures: dict = {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "antspyx": getattr(ants, "__version__", "unknown"),
                    "torch_threads": torch.get_num_threads(), "itk_threads": args.threads,
                    "load_average_start": load_average()},
        "settings": {"repeats": args.repeats, "ants_repeats": args.ants_repeats,
                     "misalignment": {"rotation_deg": ROTATION_DEG, "shift_voxels": SHIFT_VOXELS},
                     "ants_syn": "ants_syn(metric='mi'): antspyx 'SyN', reg_iterations 40x20x0",
                     "ants_affine": "ants_affine(): antspyx 'Affine', 2100x1200x1200x10"},
        "target_ratio": TARGET_RATIO, "memory_limit_gb": MEMORY_LIMIT_GB,
    }
    print(f"# {figures['machine']['cpu']} ({os.cpu_count()} cores), torch {torch.__version__}, "
          f"antspyx {figures['machine']['antspyx']}, {torch.get_num_threads()} torch threads, "
          f"{args.threads} ITK threads, load average {figures['machine']['load_average_start']}")
    busy = figures["machine"]["load_average_start"][0]
    if busy + args.threads > (os.cpu_count() or 1) + 0.5:
        print(f"# WARNING: loaded machine (1-min load {busy} + {args.threads} threads > "
              f"{os.cpu_count()} cores): timings are inflated, multi-threaded torch most of all "
              "(OpenMP threads wait on descheduled peers)")
    verdicts = {}
    ants_warm = False

    if not args.skip_2d:
        model, card = load_pretrained(MODEL_2D)
        config = PreprocessConfig(spacing=card.spacing_mm)
        pairs = []
        for k in (int(s) for s in args.slices.split(",")):
            slice_dir = folder / "slices" / f"k{k:03d}"
            fixed = read_image(slice_dir / "t2.nii.gz", ndim=2)
            moving = misalign(read_image(slice_dir / "t1.nii.gz", ndim=2))
            pairs.append((f"k{k:03d}", moving, fixed))
        shape = common_model_shape(pairs[0][1], pairs[0][2], config)
        print(f"\n2D: {len(pairs)} pairs (slices {args.slices}) of {pairs[0][2].spatial_shape} at "
              f"2 mm, model {MODEL_2D} (trained, width {model.config.width}), model grid "
              f"{shape} at {card.spacing_mm} mm")
        stages: dict[str, list[float]] = {}
        summary = summarize(time_pairs(pairs, model, config, args.repeats, args.ants_repeats,
                                       args.threads, ants_warm, stages))
        ants_warm = True
        figures["2d"] = {"pairs": [p[0] for p in pairs], "image_shape": list(pairs[0][2].spatial_shape),
                         "model": MODEL_2D, "model_grid_shape": list(shape),
                         "spacing_mm": card.spacing_mm, "methods": summary,
                         "fire_stages_mean_s": stage_means(stages)}
        verdicts["2d_ratio"], verdicts["2d_refine"] = print_table(
            "2D, per pair (T1 slice -> T2 slice)", summary, stage_means(stages), REFINE_LIMIT_2D_S)

    t1, t2 = read_image(folder / "t1.nii.gz", ndim=3), read_image(folder / "t2.nii.gz", ndim=3)
    moving_3d = misalign(t1)
    if not args.skip_3d:
        torch.manual_seed(0)
        model = FireModel(CONFIG_3D).eval()
        config = PreprocessConfig(spacing=2.0)
        shape = common_model_shape(moving_3d, t2, config)
        print(f"\n3D: the whole T1 -> T2 volume {t2.spatial_shape} at 2 mm, UNTRAINED width-8 3D "
              f"model (no 3D model is shipped; inference time does not depend on the weights), "
              f"model grid {shape} at 2.0 mm")
        stages = {}
        summary = summarize(time_pairs([("volume", moving_3d, t2)], model, config, args.repeats_3d,
                                       args.ants_repeats, args.threads, ants_warm, stages))
        figures["3d"] = {"image_shape": list(t2.spatial_shape), "model": "untrained FireModel "
                         f"{CONFIG_3D}", "model_grid_shape": list(shape), "spacing_mm": 2.0,
                         "methods": summary, "fire_stages_mean_s": stage_means(stages)}
        verdicts["3d_ratio"], verdicts["3d_refine"] = print_table(
            "3D at 2 mm, per pair (T1 volume -> T2 volume)", summary, stage_means(stages),
            REFINE_LIMIT_3D_S)

    if not args.skip_memory:
        print(f"\nPeak memory of 3D inference at {args.memory_spacing} mm (untrained width-8 model, "
              "fresh subprocess per row):")
        rows = [("SPM pair, 2 mm files", moving_3d, t2),
                ("same, resampled to 1 mm files", upsample_to_1mm(moving_3d), upsample_to_1mm(t2))]
        figures["memory"] = []
        print(f"{'input':<31} {'input grid':>13} {'model grid':>13} {'base MB':>8} "
              f"{'peak MB':>8} {'incr. MB':>9} {'s':>6}  < {MEMORY_LIMIT_GB:g} GB")
        for label, moving, fixed in rows:
            m = measure_memory(moving, fixed, args.memory_spacing, args.threads)
            m["input"] = label
            figures["memory"].append(m)
            print(f"{label:<31} {'x'.join(map(str, m['input_shape'])):>13} "
                  f"{'x'.join(map(str, m['model_grid_shape'])):>13} {m['baseline_rss_mb']:>8.0f} "
                  f"{m['peak_rss_mb']:>8.0f} {m['increment_mb']:>9.0f} {m['seconds']:>6.2f}  "
                  f"{'PASS' if m['pass'] else 'FAIL'}")
        verdicts["3d_memory"] = all(m["pass"] for m in figures["memory"])
        print("(peak = VmHWM, the absolute peak RSS of the process; base = RSS after imports and "
              "model construction; the verdict uses the absolute peak)")

    figures["machine"]["load_average_end"] = load_average()
    figures["verdicts"] = verdicts
    print(f"\nload average at start {figures['machine']['load_average_start']}, at end "
          f"{figures['machine']['load_average_end']} ({os.cpu_count()} cores)")
    print("verdicts: " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in verdicts.items()))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
