"""Provenance and resource figures of the process running a cell: versions and host,
peak resident memory and CPU time."""

from __future__ import annotations

import os
import platform
import resource
import socket
import sys
from typing import Any

import numpy as np

import rdbench
from rdbench.spec import rdbench_fingerprint


def provenance() -> dict[str, Any]:
    """Versions and host of the process running a cell."""
    torch = sys.modules.get("torch")
    return {
        "rdbench_version": rdbench.__version__,
        "rdbench_code": rdbench_fingerprint(),
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "torch_version": None if torch is None else str(torch.__version__),  # a str subclass in torch
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


def reset_peak_memory() -> None:
    """Start this process's peak resident memory afresh (Linux), so that a worker that runs
    one cell after another reports each cell's own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass  # elsewhere the peak is the process's so far


def peak_memory_mb() -> float:
    """Peak resident memory since :func:`reset_peak_memory` (Linux), else of the process, MiB."""
    try:
        with open("/proc/self/status") as handle:
            line = next(line for line in handle if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration, ValueError, IndexError):
        # ru_maxrss is in kilobytes on Linux, bytes on macOS
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def cpu_seconds() -> float:
    """User plus system CPU time of this process so far, seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
