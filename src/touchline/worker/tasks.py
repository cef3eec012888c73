"""Jobs of the queue itself."""

from __future__ import annotations

import logging
import time

from touchline.worker import outbox
from touchline.worker.queue import JobContext, job

log = logging.getLogger(__name__)

PING_REPLY_PREFIX = "ping-reply:"


@job("worker.ping", retries=0)
def ping(context: JobContext, *, reply_key: str) -> None:
    """Answers `touchline queue ping`: proves that some worker takes jobs from this queue."""
    context.queue.huey.put(PING_REPLY_PREFIX + reply_key, time.time())


@job("worker.send_pending", retries=0, every_minutes=1, at_start=True)
def send_pending(context: JobContext) -> None:
    """Sends the jobs that committed while the queue could not be reached (the outbox)."""
    sent = outbox.drain(context.sessions, context.queue)
    if sent:
        log.info("sent %d jobs that waited in the outbox", sent)
