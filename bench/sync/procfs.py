"""Memory and CPU time of a process, read from /proc: for processes the caller did not start and
cannot wait for (the reader processes a fork server starts), or that it wants to sample while they run.

Not ru_maxrss for memory: Linux carries the RSS of the parent a process was forked from into it.
"""

from __future__ import annotations

import os
from pathlib import Path


def status_mb(field: str, process: int | str = "self") -> float:
    """VmRSS (now) or VmHWM (peak) of `process` in MB; 0 when it is gone."""
    try:
        lines = Path(f"/proc/{process}/status").read_text().splitlines()
    except OSError:
        return 0.0
    for line in lines:
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(process: int) -> float:
    """User and system CPU time of `process` so far; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
