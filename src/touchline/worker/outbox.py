"""The outbox: a job asked for in a transaction is recorded in that transaction, then queued.

`enqueue()` adds a `PendingJob` row to the caller's transaction. Once it commits, the same process
sends the transaction's jobs to the queue and deletes their rows; a rollback records and sends
nothing. When the queue cannot be reached (Redis down, its file locked) the request that asked still
succeeds: its rows stay, and `drain()` sends them later. The worker drains at start and its
scheduler every minute.

Delivery is at least once: a process that dies between sending a job and deleting its row leaves
the row to be sent again once its claim runs out, so every job must bear being run twice (each job
says how it does: docs/architecture.md, Jobs).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, delete, event, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from touchline.db import after_commit, session_scope
from touchline.models import PendingJob
from touchline.models.base import utcnow

if TYPE_CHECKING:
    from touchline.worker.queue import Queue

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=2)
"""How long a sender holds a row; a row held longer (its sender died) is sent again."""
DRAIN_BATCH = 100

_PENDING_KEY = "touchline.pending_jobs"


@dataclass(frozen=True, slots=True)
class _Pending:
    id: uuid.UUID
    name: str
    kwargs: dict[str, Any]


def record(session: Session, queue: Queue, name: str, kwargs: dict[str, Any]) -> None:
    """Record the job `name` in `session`'s transaction, to be sent to `queue` once it commits."""
    job = _Pending(uuid.uuid4(), name, kwargs)
    # Claimed by this process from the start, so that a drain does not send it beside us.
    session.add(PendingJob(id=job.id, name=name, kwargs=kwargs, claimed_until=utcnow() + CLAIM_LEASE))
    pending: list[_Pending] | None = session.info.get(_PENDING_KEY)
    if pending is None:
        pending = session.info[_PENDING_KEY] = []
        after_commit(session, partial(_send_committed, session, queue))
    pending.append(job)


def _send_committed(session: Session, queue: Queue) -> None:
    jobs: list[_Pending] = session.info.pop(_PENDING_KEY, [])
    send(session.get_bind(), queue, jobs)


@event.listens_for(Session, "after_rollback")
def _forget_pending(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)


def send(bind: Engine | Connection, queue: Queue, jobs: Sequence[_Pending]) -> tuple[int, bool]:
    """Send committed jobs in order and delete the rows of those sent; should the queue fail, the
    rest are released for a later drain. Never raises: every job is safe in its row. Returns how
    many were sent, and whether the queue took every one."""
    sent: list[uuid.UUID] = []
    done: list[uuid.UUID] = []
    for job in jobs:
        try:
            queue.send(job.name, **job.kwargs)
        except KeyError:
            # A job no longer declared (renamed by an upgrade) would block every row behind it.
            log.error("dropped the pending job %s %r: no such job", job.name, job.kwargs)
        except Exception as error:
            log.warning("the queue did not take %s (%s); it waits in the outbox", job.name, error)
            break
        else:
            sent.append(job.id)
        done.append(job.id)
    unsent = [job.id for job in jobs[len(done) :]]
    try:
        with _settling(bind) as connection:
            if done:
                connection.execute(delete(PendingJob).where(PendingJob.id.in_(done)))
            if unsent:
                connection.execute(
                    update(PendingJob).where(PendingJob.id.in_(unsent)).values(claimed_until=None)
                )
    except Exception as error:
        # The rows stay claimed until their lease runs out: the unsent ones are sent late, and the
        # sent ones once more (jobs bear that).
        log.warning("could not settle %d outbox rows: %s", len(jobs), error)
    return len(sent), not unsent


@contextmanager
def _settling(bind: Engine | Connection) -> Iterator[Connection]:
    """A transaction of its own for settling rows after a commit. The caller may still hold another
    transaction of this database (on SQLite, its write lock): give up almost at once rather than
    wait out the lock timeout, and leave the rows to their lease."""
    engine = bind if isinstance(bind, Engine) else bind.engine
    with engine.connect() as connection:
        previous = None
        if connection.dialect.name == "sqlite":
            previous = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
            connection.exec_driver_sql("PRAGMA busy_timeout = 100")
        try:
            yield connection
            connection.commit()
        finally:
            if previous is not None:
                connection.rollback()
                connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(previous)}")


def drain(sessions: sessionmaker[Session], queue: Queue, *, batch: int = DRAIN_BATCH) -> int:
    """Send every job left in the outbox, oldest first; stops early while the queue is down.
    Safe to run in many processes at once: each claims its rows. Returns how many were sent."""
    total = 0
    while True:
        with session_scope(sessions) as session:
            bind = session.get_bind()
            now = utcnow()
            claimable = or_(PendingJob.claimed_until.is_(None), PendingJob.claimed_until < now)
            oldest = select(PendingJob.id).where(claimable).order_by(PendingJob.created_at).limit(batch)
            if bind.dialect.name == "postgresql":
                oldest = oldest.with_for_update(skip_locked=True)
            rows = session.execute(
                update(PendingJob)
                .where(PendingJob.id.in_(oldest.scalar_subquery()), claimable)
                .values(claimed_until=now + CLAIM_LEASE)
                .returning(PendingJob.id, PendingJob.name, PendingJob.kwargs, PendingJob.created_at)
                .execution_options(synchronize_session=False)
            ).all()
        if not rows:
            return total
        jobs = [_Pending(row[0], row[1], row[2]) for row in sorted(rows, key=lambda row: row[3])]
        sent, taken = send(bind, queue, jobs)
        total += sent
        if not taken:  # the queue is down: the rest waits for the next drain
            return total
