"""Atomic file writes: a file appears under its final name complete, or not at all."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_output", "atomic_write_bytes", "atomic_write_text", "staged_files", "remove_stale_staging",
           "STAGING_PREFIX", "json_text", "finite_json"]

STAGING_PREFIX = ".firereg-staging-"


@contextmanager
def atomic_output(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success rename it to ``path``.

    ``suffix`` keeps writers that look at the extension (``.nii.gz``, ``.mat``) happy. On any
    error, or a kill before the rename, the final name is untouched and the temporary file is
    removed (or, after a kill, left as a hidden ``.name.*`` file that is never read).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; give the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def staged_files(folder: str | Path) -> Iterator[Path]:
    """Yield a hidden staging folder inside ``folder``; on success move its files into ``folder``.

    A set of outputs written into the staging folder replaces the files of the same names in
    ``folder`` only once every one of them was written: an error (a full disk, a bad input found
    late) leaves ``folder`` exactly as it was, outputs of an earlier run included, and removes the
    staging folder. Subfolders are merged file by file. After a kill the staging folder is left as
    ``.firereg-staging-*``, never read; :func:`remove_stale_staging` clears it.
    """
    folder = Path(folder)
    stage = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=folder))
    try:
        yield stage
        for root, dirs, files in os.walk(stage):
            target = folder / Path(root).relative_to(stage)
            for name in dirs:
                (target / name).mkdir(exist_ok=True)
            for name in files:
                os.replace(Path(root) / name, target / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def remove_stale_staging(folder: str | Path) -> None:
    """Remove the staging folders of killed runs (call only while no other run writes here)."""
    for stale in Path(folder).glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)


def finite_json(value: Any) -> Any:
    """``value`` with every NaN or infinite float (numpy's too) replaced by None (JSON ``null``);
    mappings, lists and tuples are walked, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a numpy or torch scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_text(data: Any, **kwargs: Any) -> str:
    """Strict JSON of ``data`` (every JSON file firereg writes goes through this): non-finite
    numbers are written as ``null``, never as ``NaN`` or ``Infinity``, which strict parsers
    reject; ``allow_nan=False`` makes any that slipped through an error, not a bad file."""
    return json.dumps(finite_json(data), allow_nan=False, **kwargs)
