"""Memory of a process, as the benchmarks that report memory read it (Linux /proc/PID/status)."""

from __future__ import annotations

from pathlib import Path


def _status_mb(pid: int | str, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} for process {pid}")


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory now (VmRSS) of process `pid`, this one by default, in MB."""
    return _status_mb(pid, "VmRSS")


def peak_rss_mb(pid: int | str = "self") -> float:
    """The highest resident memory (VmHWM) process `pid` has had, in MB."""
    return _status_mb(pid, "VmHWM")
