"""Shared helpers of the reliability suite: tiny models, NIfTI files good and bad, and running the
real ``firereg`` command in-process (``main([...])``) or as ``python -m firereg``."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from firereg.cli.main import main
from firereg.config import ModelConfig
from firereg.model import FireModel
from firereg.training.checkpoint import save_checkpoint

AFFINE = np.array([[2.0, 0.0, 0.0, -20.0],
                   [0.0, 2.0, 0.0, -22.0],
                   [0.0, 0.0, 2.0, -18.0],
                   [0.0, 0.0, 0.0, 1.0]])
SHAPE = (20, 22, 18)
OUTPUTS = {"warped.nii.gz", "affine.mat", "warp.nii.gz", "inverse_affine.mat", "inverse_warp.nii.gz",
           "report.json"}


def rotation(axis: int, degrees: float) -> np.ndarray:
    """The 3x3 rotation by ``degrees`` about voxel/world axis ``axis`` (0, 1 or 2)."""
    a = np.deg2rad(degrees)
    i, j = [k for k in range(3) if k != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = np.cos(a), -np.sin(a), np.sin(a), np.cos(a)
    return r


def smooth_volume(seed: int, shape=SHAPE) -> np.ndarray:
    """A smooth random volume in [0, 100] (interpolation-friendly, unlike white noise)."""
    data = gaussian_filter(np.random.default_rng(seed).random(shape), 2.0)
    data = (data - data.min()) / (data.max() - data.min())
    return (100 * data).astype(np.float32)


def save(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def tiny_model(folder: Path, ndim: int = 3, perturb: float = 0.0, seed: int = 0) -> Path:
    """A width-4 FIRE model saved as a run folder (``latest`` -> step 0). ``perturb`` adds that
    much Gaussian noise to every weight, so that the transforms depend on the images."""
    model = FireModel(ModelConfig(ndim=ndim, width=4))
    if perturb:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(perturb * torch.randn(p.shape, generator=gen))
    save_checkpoint(folder, model, 0)
    return folder


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``firereg ARGV`` in this process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, command: str, *fragments: str, status: int = 2) -> str:
    """Exit ``status``, and stderr is exactly one line ``firereg COMMAND: error: ...`` holding every
    fragment (case-insensitive), and no traceback."""
    assert code == status, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith(f"firereg {command}: error: "), line
    for fragment in fragments:
        assert fragment.lower() in line.lower(), (fragment, line)
    return line


def leftovers(folder: Path) -> list[str]:
    """Every name under ``folder`` (recursively, hidden ones included), sorted."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def snapshot(folder: Path) -> dict[str, bytes]:
    """The bytes of every file under ``folder``, by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def subprocess_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}


def firereg_process(*argv, **kwargs) -> subprocess.Popen:
    """Start ``python -m firereg ARGV`` (this interpreter), capturing text output."""
    kwargs.setdefault("env", subprocess_env())
    return subprocess.Popen([sys.executable, "-m", "firereg", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, encoding="utf-8", **kwargs)


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def training_config(phantom_root: Path, **train) -> dict:
    """A training config that runs in a few seconds on a CPU (width 4, 20 x 20 model grid)."""
    return {
        "model": {"ndim": 2, "width": 4},
        "optim": {"lr_affine": 1e-4, "lr_nonrigid": 1e-4, "lr_synthesis": 1e-3},
        "data": {"source": "phantom", "root": str(phantom_root), "modality_a": "cine",
                 "modality_b": "cine", "dims": 2, "spacing": 4.0},
        "augmentation": {"rotation": 5.0, "translation": 0.05, "min_change": 0.0, "max_change": 0.5},
        "train": {"iterations": 6, "batch_size": 2, "validate_every": 3, "validation_pairs": 1,
                  "checkpoint_every": 2, "log_every": 1, "seed": 0,
                  "curriculum": {"aligned_steps": 2, "ramp_steps": 2}, **train},
    }


# ---------------------------------------------------------------------------------------------
# bad files


def truncated(path: Path, good: Path) -> Path:
    raw = good.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    return path


def wrong_magic(path: Path, good: Path) -> Path:
    """A gzipped NIfTI whose magic (bytes 344-347, "n+1\\0") is replaced."""
    body = gzip.decompress(good.read_bytes())
    path.write_bytes(gzip.compress(body[:344] + b"XXXX" + body[348:]))
    return path


def with_spacing(path: Path, value: float, data: np.ndarray | None = None) -> Path:
    """An uncompressed NIfTI whose pixdim[1] is ``value`` as stored (nibabel would fix it on save)."""
    save(path, smooth_volume(0) if data is None else data)
    body = bytearray(path.read_bytes())
    body[80:84] = np.float32(value).tobytes()  # pixdim[1], little-endian as nibabel writes
    path.write_bytes(bytes(body))
    return path


def huge_header(path: Path, shape: tuple[int, ...], nifti2: bool = False) -> Path:
    """A header claiming ``shape`` float32 voxels, followed by 100 bytes: a few hundred bytes on disk."""
    header = nib.Nifti2Header() if nifti2 else nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.float32)
    header.set_zooms((1.0,) * len(shape))
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        header.write_to(f)
        f.write(b"\0" * 100)
    return path
