"""The queueing job of a bulk send: its emails made in chunks, each chunk committed, so progress
shows as it goes and a stopped job, run again, goes on after the last chunk it committed."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.models import BulkSend
from touchline.outbound.bulk import service
from touchline.worker import JobContext, job

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
ProgressCallback = Callable[[int, int], None]
"""Told (endusers handled so far, endusers in all) after each committed chunk."""


def _now() -> datetime:
    return datetime.now(UTC)


def queue_bulk(
    sessions: sessionmaker[Session],
    box: SecretBox,
    settings: Settings,
    bulk_id: uuid.UUID,
    *,
    clock: Clock = _now,
    on_progress: ProgressCallback | None = None,
    chunk_size: int = service.CHUNK_SIZE,
) -> str | None:
    """Make the bulk send's emails; returns the status it was left in (None: no such bulk send)."""
    session = sessions()
    try:
        queueing = service.prepare(session, bulk_id, settings=settings)
        session.commit()
        if queueing is None:
            found = session.get(BulkSend, bulk_id)
            return found.status if found is not None else None
        total = queueing.plan.recipients
        done = len(queueing.plan.skipped)
        if on_progress is not None:
            on_progress(done, total)
        for chunk in service.email_chunks(queueing, chunk_size):
            done += service.queue_chunk(session, queueing, chunk, box=box, settings=settings, now=clock())
            session.commit()  # the chunk's emails and their delivery jobs, and the progress
            if on_progress is not None:
                on_progress(done, total)
        service.finish(queueing, clock())
        session.commit()
        return queueing.bulk.status
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@job(service.QUEUE_JOB, retries=3, retry_delay=30)
def queue_bulk_job(context: JobContext, *, bulk_id: str) -> None:
    status = queue_bulk(
        context.sessions, SecretBox(context.settings.secret_keys), context.settings, uuid.UUID(bulk_id)
    )
    log.info("bulk send %s: %s", bulk_id, status)


@job("outbound.bulk_resume", retries=0, every_minutes=1, at_start=True)
def resume_stalled_job(context: JobContext) -> None:
    """A bulk send whose queueing died with its worker (or its command) goes on by itself."""
    with session_scope(context.sessions) as session:
        resumed = service.resume_stalled(session, _now())
    if resumed:
        log.info("bulk sends resumed after their queueing stopped: %s", ", ".join(map(str, resumed)))
