"""The training loop of ``firereg train``: the paper's procedure (§3.9) on any data source.

Batches are pure functions of ``(seed, step)`` (:class:`StepBatches`): the pairs drawn and their
random transforms are seeded by the step, so a run resumed from a checkpoint sees exactly the
batches an uninterrupted run would have seen, whatever the number of data workers.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from firereg.data.datasets import PairSample, collate_pairs
from firereg.losses import TERM_NAMES
from firereg.model import FireModel
from firereg.runtime import flushed_denormals
from firereg.spatial import warp_labels
from firereg.training.checkpoint import checkpoint_step, latest_checkpoint, load_checkpoint, save_checkpoint
from firereg.training.distributed import DistContext, init_distributed
from firereg.training.experiment import CurriculumConfig, ExperimentConfig, load_experiment, save_experiment
from firereg.training.optimizers import build_optimizers
from firereg.training.step import NonFiniteLossError, training_step

__all__ = ["StepBatches", "TrainResult", "TrainingDivergedError", "train", "validate", "PairAugmenter"]

PairAugmenter = Callable[..., PairSample]  # (sample, *, seed, strength, aligned) -> sample
CONFIG_NAME = "config.yaml"
KNOWN_TERMS = ("l_known", "known_weight", "objective")  # logged for data.source: synth
WRITTEN = (CONFIG_NAME, "log.csv", "val.csv")  # what a run writes before its first checkpoint


class TrainingDivergedError(RuntimeError):
    """The loss (or the weights) went NaN or infinite; the run stopped cleanly (see ``_diverged``).

    Attributes: ``step`` (1-based, as in log.csv), ``term`` (the loss term to blame, or
    "weights"), ``checkpoint`` (the last good checkpoint kept, or None).
    """

    def __init__(self, message: str, step: int, term: str, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.step, self.term, self.checkpoint = step, term, checkpoint


class StepBatches(Dataset):
    """Item ``step`` is the (collated) training batch of that step, or this process's share of it.

    The pairs are drawn by ``numpy.random.default_rng([seed, step])``; sample ``k`` of the batch
    is augmented with seed ``(seed, step, k)`` at the curriculum's strength for ``step``.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, *,
                 augment: PairAugmenter | None, curriculum: CurriculumConfig,
                 rank: int = 0, world_size: int = 1) -> None:
        if batch_size % world_size:
            raise ValueError(f"train.batch_size ({batch_size}) must be divisible by the number of "
                             f"processes ({world_size})")
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.augment, self.curriculum = augment, curriculum
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        return 2**31 - 1

    def __getitem__(self, step: int) -> dict:
        rng = np.random.default_rng([self.seed, step])
        picks = rng.integers(len(self.dataset), size=self.batch_size)
        samples = []
        for k in range(self.rank, self.batch_size, self.world_size):
            sample = self.dataset[int(picks[k])]
            if self.augment is not None:
                sample = self.augment(sample, seed=int(np.random.SeedSequence(
                    [self.seed, step, k]).generate_state(1)[0]),
                    strength=self.curriculum.strength(step), aligned=self.curriculum.aligned(step))
            samples.append(sample)
        return collate_pairs(samples)


def _mean_dice(a: torch.Tensor, b: torch.Tensor) -> float:
    labels = [int(v) for v in torch.unique(b) if v != 0]
    if not labels:
        return float("nan")
    scores = []
    for k in labels:
        x, y = a == k, b == k
        scores.append(2.0 * float((x & y).sum()) / max(1, int(x.sum()) + int(y.sum())))
    return float(np.mean(scores))


def validate(model: FireModel, samples: list[PairSample], device: torch.device) -> dict[str, float]:
    """Mean label Dice of the fixed labels against the moving labels, before and after
    registration with ``T_AB`` (and after ``phi_af`` only), over ``samples``."""
    model.eval()
    before, affine, after = [], [], []
    with torch.inference_mode():
        for s in samples:
            if s.labels_a is None or s.labels_b is None:
                continue
            reg = model.register(s.x_a[None].to(device), s.x_b[None].to(device), "ab")
            moving = s.labels_a[None].to(device)
            before.append(_mean_dice(s.labels_a, s.labels_b))
            affine.append(_mean_dice(warp_labels(moving, reg.affine)[0].cpu(), s.labels_b))
            after.append(_mean_dice(warp_labels(moving, reg.displacement)[0].cpu(), s.labels_b))
    model.train()
    if not after:
        return {}
    return {"dice_unaligned": float(np.nanmean(before)), "dice_affine": float(np.nanmean(affine)),
            "dice": float(np.nanmean(after)), "pairs": len(after)}


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    last_terms: dict[str, float]
    last_validation: dict[str, float]
    seconds: float
    is_main: bool = True


def _validation_samples(dataset: Dataset, n: int, seed: int,
                        augment: PairAugmenter | None) -> list[PairSample]:
    rng = np.random.default_rng([seed, 10**6])
    picks = rng.choice(len(dataset), size=min(n, len(dataset)), replace=False)
    samples = []
    for i, index in enumerate(sorted(int(p) for p in picks)):
        sample = dataset[index]
        if augment is not None:
            sample = augment(sample, seed=10**6 + i, strength=1.0, aligned=False)
        samples.append(sample)
    return samples


def _check_resume(out: Path, config: ExperimentConfig) -> None:
    saved = load_experiment(out / CONFIG_NAME).to_dict()
    given = config.to_dict()
    for d in (saved, given):
        d["train"].pop("iterations")
    if saved != given:
        diff = [f"{sec}.{k}" for sec in given for k in set(given[sec]) | set(saved[sec])
                if given[sec].get(k) != saved[sec].get(k)]
        raise ValueError(f"{out}: --resume with a config that differs from the run's own "
                         f"({', '.join(sorted(diff))}); only train.iterations may change")


def train(config: ExperimentConfig, out_dir: str | Path, *, resume: bool = False,
          progress: bool = True, device: str = "auto",
          augment_factory: Callable[[ExperimentConfig], PairAugmenter | None] | None = None,
          datasets: dict[str, Dataset] | None = None) -> TrainResult:
    """Train FIRE as configured, writing checkpoints, ``log.csv`` and ``val.csv`` into ``out_dir``.

    Args:
        resume: continue from ``out_dir``'s latest checkpoint (same config, except
            ``train.iterations``), with the same optimizer states and batches.
        augment_factory: builds the pair augmenter (default: :func:`default_augmenter`).
        datasets: ``{"train": ..., "val": ...}`` to use instead of building them from the config.
    """
    # 3x faster 2D CPU steps; see firereg.runtime for why not in 3D
    with flushed_denormals(config.model.ndim == 2):
        return _train(config, out_dir, resume=resume, progress=progress, device=device,
                      augment_factory=augment_factory, datasets=datasets)


def _train(config: ExperimentConfig, out_dir: str | Path, *, resume: bool = False,
          progress: bool = True, device: str = "auto",
          augment_factory: Callable[[ExperimentConfig], PairAugmenter | None] | None = None,
          datasets: dict[str, Dataset] | None = None) -> TrainResult:
    ctx: DistContext = init_distributed(device)
    out = Path(out_dir)
    tc = config.train
    if ctx.is_main:
        if resume:
            last = latest_checkpoint(out)
            if last is None:
                raise ValueError(f"{out}: --resume, but the folder holds no checkpoint")
            _check_resume(out, config)
            reached = checkpoint_step(last)
            if reached >= tc.iterations:  # refused before anything is written
                raise ValueError(f"{out}: --resume, but the run is already at step {reached} and "
                                 f"{tc.iterations} iterations were asked for: nothing to do (pass "
                                 f"--iterations N with N > {reached} to train it further)")
        elif latest_checkpoint(out) is not None:
            raise ValueError(f"{out}: holds a previous run; pass --resume to continue it, or "
                             "choose another --out")
    torch.manual_seed(tc.seed)
    synth, brain_samples = None, []
    if config.data.source == "synth":
        from firereg.training import synth_source

        synth = synth_source.build_synth_source(config, ctx.device)  # refuses held-out brains
        if ctx.is_main:  # before any write
            brain_samples = synth_source.validation_brain_samples(config)
    if datasets is None:
        from firereg.training.sources import build_datasets

        datasets = build_datasets(config.data)
    augment = (augment_factory or default_augmenter)(config)
    model = FireModel(config.model).to(ctx.device)
    optimizers = build_optimizers(model, config.optim)
    start = 0
    elapsed_before = 0.0  # a resumed run's log.csv "seconds" go on from the last logged row
    if tc.init_from is not None and not resume:
        from firereg.training.checkpoint import load_initial_weights

        load_initial_weights(tc.init_from, model)  # refuses broken weights
    created = not out.exists()
    if ctx.is_main:  # only now, so that a data or init_from error leaves no run folder behind
        out.mkdir(parents=True, exist_ok=True)
        save_experiment(config, out / CONFIG_NAME)
    if resume:
        start = load_checkpoint(out, model, optimizers=optimizers).step
        if ctx.is_main:  # a killed run may have logged steps after its last checkpoint
            _truncate_csv(out / "log.csv", start)
            _truncate_csv(out / "val.csv", start)
            elapsed_before = _last_seconds(out / "log.csv")
    ctx.broadcast_parameters(model)
    val_samples = _validation_samples(datasets["val"], tc.validation_pairs, tc.seed, augment) \
        if ctx.is_main and "val" in datasets else []

    if synth is None:
        batches = StepBatches(datasets["train"], tc.batch_size, tc.seed, augment=augment,
                              curriculum=tc.curriculum, rank=ctx.rank, world_size=ctx.world_size)
        loader = DataLoader(batches, batch_size=None, sampler=range(start, tc.iterations),
                            num_workers=tc.num_workers, persistent_workers=False)
    else:  # made on the training device, in this process: no loader workers to wait for
        if tc.batch_size % ctx.world_size:
            raise ValueError(f"train.batch_size ({tc.batch_size}) must be divisible by the number of "
                             f"processes ({ctx.world_size})")
        share = range(ctx.rank, tc.batch_size, ctx.world_size)
        loader = (synth.batch(s, tc.batch_size, strength=tc.curriculum.strength(s),
                              aligned=tc.curriculum.aligned(s), indices=share)
                  for s in range(start, tc.iterations))
    log_path, val_path = out / "log.csv", out / "val.csv"
    log_columns = ["step", "seconds", *TERM_NAMES] + (list(KNOWN_TERMS) if synth is not None else [])
    val_columns = ["step", "dice_unaligned", "dice_affine", "dice", "pairs"] + (
        [f"synth_{c}" for c in ("dice_unaligned", "dice_affine", "dice", "pairs")] if brain_samples else [])
    params = [p for p in model.parameters()]
    last_terms: dict[str, float] = {}
    last_val: dict[str, Any] = {}
    begin = time.perf_counter()
    bar = tqdm(total=tc.iterations, initial=start, desc="firereg train", unit="step",
               disable=not (progress and ctx.is_main), dynamic_ncols=True)
    with bar:
        for step, batch in enumerate(loader, start=start):
            known = None
            if synth is None:
                x_a, x_b = batch["x_a"].to(ctx.device), batch["x_b"].to(ctx.device)
            else:
                x_a, x_b = batch.x_a, batch.x_b
                known = {k: getattr(batch, k) for k in ("partner_b", "clean_b", "partner_a", "clean_a")}
            try:
                last_terms = training_step(model, optimizers, x_a, x_b, max_grad_norm=tc.max_grad_norm,
                                           after_backward=lambda: ctx.average_gradients(params),
                                           known=known, known_weight=tc.supervision.weight_at(step),
                                           precision=tc.precision)
            except NonFiniteLossError as exc:
                raise _diverged(out, step + 1, exc.term, f"{exc.term} = {exc.value}", created=created,
                                is_main=ctx.is_main) from exc
            done = step + 1
            bar.update(1)
            if ctx.is_main and (done % tc.log_every == 0 or done == tc.iterations):
                bar.set_postfix(L=f"{last_terms['total']:.3f}", reg=f"{last_terms['l_reg_acc']:.3f}",
                                syn=f"{last_terms['l_syn_acc']:.3f}",
                                strength=f"{tc.curriculum.strength(step):.2f}")
                _append_csv(log_path, log_columns,
                            {"step": done,
                             "seconds": round(elapsed_before + time.perf_counter() - begin, 3),
                             **last_terms})
            if ctx.is_main and (val_samples or brain_samples) and (done % tc.validate_every == 0
                                                                   or done == tc.iterations):
                last_val = validate(model, val_samples, ctx.device)
                if brain_samples:
                    last_val.update({f"synth_{k}": v for k, v in
                                     validate(model, brain_samples, ctx.device).items()})
                if last_val:
                    _append_csv(val_path, val_columns, {"step": done, **last_val})
                    bar.write(f"step {done}: validation " + ", ".join(
                        f"{k} {v:.3f}" for k, v in last_val.items() if "dice" in k))
            if ctx.is_main and (done % tc.checkpoint_every == 0 or done == tc.iterations):
                if not all(bool(torch.isfinite(p).all()) for p in params):  # a NaN gradient, say
                    raise _diverged(out, done, "weights", "the weights hold NaN or infinite values",
                                    created=created, is_main=True)
                save_checkpoint(out, model, done, optimizers=optimizers,
                                extra={"validation": last_val, "terms": last_terms})
            ctx.barrier()
    seconds = time.perf_counter() - begin
    checksums = ctx.gather_floats(float(sum(p.detach().double().sum() for p in params)))
    if ctx.is_main:
        summary = {"steps": tc.iterations, "seconds": seconds, "validation": last_val,
                   "terms": last_terms, "processes": ctx.world_size, "device": str(ctx.device),
                   "threads": torch.get_num_threads(), "parameter_checksums": checksums}
        from firereg.atomic import atomic_write_text, json_text

        atomic_write_text(out / "summary.json", json_text(summary, indent=2))
    return TrainResult(out, tc.iterations, last_terms, last_val, seconds, ctx.is_main)


def _diverged(out: Path, step: int, term: str, what: str, *, created: bool,
              is_main: bool) -> TrainingDivergedError:
    """Stop a run whose loss went non-finite at ``step`` (1-based), leaving nothing half-made.

    No checkpoint is written after the bad step (its parameters were not changed). With a
    checkpoint, the run folder is left as a kill after it would leave it: ``latest`` names the
    last good checkpoint, and the log rows (kept for the diagnosis) are dropped by ``--resume``.
    Without one, what this run wrote is removed: the run folder when it made it, else its files.
    """
    import shutil

    last = latest_checkpoint(out) if is_main and out.is_dir() else None
    if is_main and last is None:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for name in WRITTEN:
                (out / name).unlink(missing_ok=True)
    lower = "lower the optim learning rates, or set train.max_grad_norm"
    if last is not None:
        kept = (f"the run stopped; its last good checkpoint, {last.name}, is kept (--resume would "
                f"diverge again at this step: {lower}, and start a new run from it with "
                f"train.init_from: {last})")
    else:
        kept = f"no checkpoint had been written, so the run left nothing behind ({lower})"
    return TrainingDivergedError(f"{out}: training diverged at step {step}: {what}; {kept}", step, term, last)


def _truncate_csv(path: Path, last_step: int) -> None:
    """Keep the header and the complete rows of steps ``<= last_step`` (those a resumed run will
    not log again); a row torn by a kill is dropped too."""
    if not path.exists():
        return
    lines = path.read_bytes().decode("utf-8", errors="replace").splitlines(keepends=True)
    if not lines or not lines[0].endswith("\n"):
        path.unlink()
        return
    header, rows = lines[0], lines[1:]

    def keep(row: str) -> bool:
        head = row.split(",", 1)[0]
        return (row.endswith("\n") and row.count(",") == header.count(",") and head.isdigit()
                and int(head) <= last_step)

    kept = [r for r in rows if keep(r)]
    if len(kept) != len(rows):
        from firereg.atomic import atomic_write_text

        atomic_write_text(path, header + "".join(kept))


def _last_seconds(path: Path) -> float:
    """The ``seconds`` of the last row of a (truncated) log.csv; 0 when there is none, so that a
    resumed run's training-time column keeps counting instead of restarting at 0."""
    if not path.exists():
        return 0.0
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if len(lines) < 2:
        return 0.0
    column = lines[0].split(",").index("seconds") if "seconds" in lines[0].split(",") else -1
    try:
        return float(lines[-1].split(",")[column]) if column >= 0 else 0.0
    except (ValueError, IndexError):
        return 0.0


def _append_csv(path: Path, columns: list[str], row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v)
                         for k, v in row.items()})
        f.flush()


def default_augmenter(config: ExperimentConfig) -> PairAugmenter | None:
    """The paper's augmentation (§4.1) from ``config.augmentation``: independent random affine +
    non-rigid transforms of the moving and fixed images, each with its labels."""
    from firereg.training.augment_pairs import make_pair_augmenter

    return make_pair_augmenter(config.augmentation, config.model.ndim)
