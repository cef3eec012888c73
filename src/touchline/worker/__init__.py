"""The job queue: `@job` declares a job beside its feature; `enqueue()` sends it after the commit.

Huey does the queueing: SQLite storage in the data folder by default, Redis to scale out. Jobs are
registered by name before the queue is configured, so feature modules can declare them at import time
without knowing which storage the process will use.
"""

from touchline.worker import tasks as _queue_tasks  # noqa: F401 -- declares worker.ping
from touchline.worker.queue import (
    JobContext,
    Queue,
    configure_queue,
    current_queue,
    enqueue,
    job,
)

__all__ = ["JobContext", "Queue", "configure_queue", "current_queue", "enqueue", "job"]
