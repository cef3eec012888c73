"""Which process holds something, and whether that process is gone.

A holder is named by its host name, its pid and a start mark: the kernel's boot id, the pid
namespace and the process's start time in clock ticks since boot. A pid is reused once its process
is gone, and the start time tells the new process from the old one; two containers may share a host
name and a pid, and the boot id and pid namespace tell them apart. Whether a holder is gone is
judged only from the same host, boot and pid namespace (Linux `/proc`); from anywhere else, and on
systems without `/proc`, nobody can tell, and the caller waits for the holder's lease to run out.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

PROC: Final = Path("/proc")
HOST_NAME_LENGTH: Final = 255
START_MARK_LENGTH: Final = 200

StartOf = Callable[[int], str | None]
"""The start mark of the process with this pid in this pid namespace, or None when there is none."""


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    host: str
    pid: int
    started: str
    """`<boot id>/<pid namespace>/<start ticks>`; empty where it cannot be read."""

    @classmethod
    def recorded(cls, host: str | None, pid: int | None, started: str | None) -> ProcessIdentity:
        """A holder as a row records it; a part not recorded is empty, and such a holder is never
        judged gone."""
        return cls(host or "", pid or 0, started or "")

    @property
    def machine(self) -> str:
        """The boot and pid namespace part of `started`: the processes this one can see."""
        return self.started.rpartition("/")[0]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink(PROC / "self" / "ns" / "pid")
    except OSError:
        return None


def start_ticks(stat: str) -> str | None:
    """Field 22 (starttime) of a `/proc/<pid>/stat` line. The command name (field 2) is in
    parentheses and may hold spaces and parentheses itself, so fields are counted after the last ')'."""
    after_name = stat.rpartition(")")[2].split()
    # after_name[0] is field 3 (state), so field 22 is at index 19.
    if len(after_name) < 20 or not after_name[19].isdigit():
        return None
    return after_name[19]


@cache
def _machine_mark() -> str | None:
    boot_id = _read(PROC / "sys" / "kernel" / "random" / "boot_id")
    namespace = _pid_namespace()
    if not boot_id or not namespace:
        return None
    return f"{boot_id}/{namespace}"


def started_of(pid: int) -> str | None:
    """The start mark of a process this one can see, or None when no process has this pid."""
    machine = _machine_mark()
    stat = _read(PROC / str(pid) / "stat")
    if machine is None or stat is None:
        return None
    ticks = start_ticks(stat)
    return f"{machine}/{ticks}"[:START_MARK_LENGTH] if ticks is not None else None


def this_process() -> ProcessIdentity:
    return _identity(os.getpid())  # by pid: a forked child is another process


@cache
def _identity(pid: int) -> ProcessIdentity:
    return ProcessIdentity(socket.gethostname()[:HOST_NAME_LENGTH], pid, started_of(pid) or "")


def holder_gone(holder: ProcessIdentity, here: ProcessIdentity, start_of: StartOf) -> bool:
    """True only when `holder` ran where `here` runs (same host, boot and pid namespace) and no
    process with its pid and start mark is alive; False when it lives or cannot be judged from here."""
    if not holder.started or not here.started:
        return False
    if holder.host != here.host or holder.machine != here.machine:
        return False
    return start_of(holder.pid) != holder.started
