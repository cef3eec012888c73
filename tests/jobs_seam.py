"""The jobs inbound sends to engagement tracking, as tests need them.

Production registers their handlers (touchline.jobs imports them); where none is registered yet, a
stand-in is, so that sending them works. Tests read what was sent from the queue itself
(`sent_jobs`), whichever handler is registered.
"""

from __future__ import annotations

import contextlib
from typing import Any

import touchline.jobs  # noqa: F401 -- every production handler first
from touchline.inbound.reports.model import DELIVERY_REPORT_JOB, STORED_JOB
from touchline.worker import JobContext, Queue, job


def _not_handled_here(_context: JobContext, **_kwargs: Any) -> None:
    """Stands in for engagement tracking's handler where that is not registered."""


for _name in (STORED_JOB, DELIVERY_REPORT_JOB):
    with contextlib.suppress(ValueError):  # a production handler is registered: that one is used
        job(_name)(_not_handled_here)


def sent_jobs(queue: Queue, name: str) -> list[dict[str, Any]]:
    """The keyword arguments of each pending job named `name`, oldest first."""
    return [task.kwargs for task in queue.huey.pending() if task.name == name]
