"""Process identities for tests of what is held by a process (sync leases, outbox claims)."""

from __future__ import annotations

import subprocess
import sys

from touchline.kit.processes import ProcessIdentity, started_of, this_process


def exited_process() -> ProcessIdentity:
    """The identity a process of this host had, taken while it lived; it has exited since."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    started = started_of(child.pid)
    assert child.stdin is not None
    child.stdin.close()
    child.wait(timeout=30)
    assert started is not None
    return ProcessIdentity(this_process().host, child.pid, started)
