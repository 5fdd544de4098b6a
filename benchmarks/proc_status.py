"""Memory figures of this process from ``/proc/self/status`` (Linux), for the benchmarks."""

from __future__ import annotations

from pathlib import Path

__all__ = ["status_kb"]


def status_kb(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status``: ``VmRSS`` (resident now), ``VmHWM`` (peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")
