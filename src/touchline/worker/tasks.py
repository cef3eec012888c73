"""Jobs of the queue itself."""

from __future__ import annotations

import time

from touchline.worker.queue import JobContext, job

PING_REPLY_PREFIX = "ping-reply:"


@job("worker.ping", retries=0)
def ping(context: JobContext, *, reply_key: str) -> None:
    """Answers `touchline queue ping`: proves that some worker takes jobs from this queue."""
    context.queue.huey.put(PING_REPLY_PREFIX + reply_key, time.time())
