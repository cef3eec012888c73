"""The jobs inbound sends to engagement tracking, as tests need them.

Their handlers are engagement tracking's (declared here first). Tests read what was sent
from the queue itself (`sent_jobs`).
"""

from __future__ import annotations

from typing import Any

from touchline.jobs import declare_all
from touchline.worker import Queue

declare_all()  # every production handler first


def sent_jobs(queue: Queue, name: str) -> list[dict[str, Any]]:
    """The keyword arguments of each pending job named `name`, oldest first."""
    # A job's name belongs to one lane, so each lane's order is the job's order.
    return [task.kwargs for huey in queue.lanes.values() for task in huey.pending() if task.name == name]
