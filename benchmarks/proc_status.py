"""What the benchmarks record about this process and machine, from ``/proc`` (Linux).

Memory figures of this process (``/proc/self/status``), the peak-memory growth of a measured
section on the CPU or a GPU, the CPU model (``/proc/cpuinfo``) and the load average.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["PeakMemory", "cpu_model", "load_average", "status_kb"]


def status_kb(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status``: ``VmRSS`` (resident now), ``VmHWM`` (peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def cpu_model() -> str:
    """The CPU's ``model name`` from ``/proc/cpuinfo`` (``platform`` as a fallback)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages, rounded to 0.01."""
    return [round(x, 2) for x in os.getloadavg()]


class PeakMemory:
    """Peak memory growth of this process from the moment of construction.

    On the CPU: the peak resident set (``VmHWM``) over the resident set (``VmRSS``) at
    construction; on a GPU: ``torch.cuda.max_memory_allocated`` over the allocation at
    construction (the peak statistics are reset). Build it after the model and its inputs exist,
    run the section, then read :meth:`growth_mb`. Meaningful in a fresh process, where nothing
    else raised the peak before.
    """

    def __init__(self, device_type: str) -> None:
        self.cuda = device_type == "cuda"
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            self.base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        else:
            self.base = status_kb("VmRSS") * 1024

    def growth_mb(self) -> float:
        """MB the peak rose above the baseline."""
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = status_kb("VmHWM") * 1024
        return (peak - self.base) / 2**20
