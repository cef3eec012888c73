"""Sync jobs: one run per mailbox at a time, every mailbox looked at every minute.

One run at a time is a lease on the mailbox's row (`mailboxes.sync_lease`): a worker that dies
mid-sync stops renewing it, and the next sync takes over once it runs out, from the stored
checkpoints; on the dead worker's own host, at once. A worker asked to stop hands its mailbox back
after the batch it is storing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from touchline.db import session_scope
from touchline.inbound.fetch.service import SyncReport, sync_mailbox
from touchline.kit.crypto import SecretBox
from touchline.kit.processes import ProcessIdentity, holder_gone, started_of, this_process
from touchline.mailboxes import service as mailboxes
from touchline.mailboxes import sync_lease
from touchline.mailboxes.providers.base import TransientError
from touchline.models import Mailbox
from touchline.models.base import utcnow
from touchline.worker import JobContext, Queue, job
from touchline.worker.queue import stopping

log = logging.getLogger(__name__)

SYNC_EVERY = timedelta(seconds=50)
CLAIM_TRIES = 3


class HandedBack(Exception):
    """Raised between batches when the worker is stopping or the lease was taken over."""


@job(mailboxes.SYNC_JOB, retries=0, lane="long")
def sync_mailbox_job(context: JobContext, *, mailbox_id: str) -> dict[str, object]:
    """Retries are not the queue's: the mailbox row holds when the next attempt may run (Retry-After
    or a growing backoff), and the every-minute scheduler honours it, so a restart loses no delay."""
    mailbox = uuid.UUID(mailbox_id)
    lease = timedelta(seconds=context.settings.sync_lease_seconds)
    try:
        with holding_sync(context.sessions, context.queue, mailbox, lease) as heartbeat:
            if heartbeat is None:
                # Another worker is syncing this mailbox; it runs once more after its own run,
                # for this request.
                return {"outcome": "queued_after_running_sync"}

            def checkpoint(folder: str, stored: int, report: SyncReport) -> None:
                if stopping.is_set() or heartbeat.lost.is_set():
                    raise HandedBack

            report = sync_mailbox(
                context.sessions,
                SecretBox(context.settings.secret_keys),
                mailbox,
                settings=context.settings,
                progress=checkpoint,
            )
    except HandedBack:
        # Stopping: the rest of the run is queued for another worker. Taken over: the new holder
        # runs it already.
        return {
            "outcome": "taken_over" if heartbeat is not None and heartbeat.lost.is_set() else "handed_back"
        }
    except TransientError as error:
        log.warning("sync of %s failed; the scheduler retries after its backoff: %s", mailbox_id, error)
        return {"outcome": "retry_later", "reason": str(error)}
    return _counts(report)


@contextmanager
def holding_sync(
    sessions: sessionmaker[Session], queue: Queue, mailbox: uuid.UUID, lease: timedelta
) -> Iterator[sync_lease.Heartbeat | None]:
    """Holds the mailbox's sync for the block, whoever runs it (a worker's job or `touchline sync`):
    yields the lease's heartbeat, or None when another holds it live (it is then asked for one more
    run). The block raises `HandedBack` once `heartbeat.lost` is set (taken over), or when it stops
    early on its own (the rest is then queued). The lease is let go when the block ends."""
    holder = sync_lease.new_holder()
    if not _claim_or_request(sessions, mailbox, holder, lease):
        yield None
        return
    again = False
    try:
        with sync_lease.Heartbeat(sessions, mailbox, holder, lease) as heartbeat:
            try:
                yield heartbeat
            except HandedBack:
                again = not heartbeat.lost.is_set()
                raise
    finally:
        _let_go(sessions, queue, mailbox, holder, again=again)


def _let_go(
    sessions: sessionmaker[Session], queue: Queue, mailbox: uuid.UUID, holder: str, *, again: bool
) -> None:
    """Release the lease, then queue the run asked for meanwhile, or the rest of a handed-back one
    (`again`). Should the database or the queue be out of reach, the lease runs out by itself and
    the every-minute scheduler finds the mailbox due anyway."""
    try:
        with session_scope(sessions) as session:
            again = sync_lease.release(session, mailbox, holder) or again
    except Exception as error:
        log.warning("could not release the sync lease of %s: %s", mailbox, error)
    if again:
        try:
            queue.send(mailboxes.SYNC_JOB, mailbox_id=str(mailbox))
        except Exception as error:
            log.warning("could not queue the next sync of %s; the scheduler will: %s", mailbox, error)


def _claim_or_request(
    sessions: sessionmaker[Session], mailbox: uuid.UUID, holder: str, lease: timedelta
) -> bool:
    """Claim the mailbox's sync, or ask its live holder for one more run; True when claimed."""
    for _ in range(CLAIM_TRIES):
        with session_scope(sessions) as session:
            now = utcnow()
            if sync_lease.claim(session, mailbox, holder, lease, now, this_process(), started_of):
                return True
            if sync_lease.request_again(session, mailbox, now):
                return False
        # The holder let go between the two statements: try to claim again.
    return False


def _counts(report: SyncReport) -> dict[str, object]:
    counts: dict[str, object] = {
        "outcome": report.status,
        "folders": report.folders,
        "seen": report.seen,
        "kept": report.kept,
        "stored_new": report.stored_new,
        "quarantined": report.quarantined,
    }
    if report.error:
        counts["reason"] = report.error
    if report.failed_folders:
        counts["failed_folders"] = len(report.failed_folders)
    return counts


@job("inbound.schedule_syncs", retries=0, every_minutes=1)
def schedule_syncs(context: JobContext) -> dict[str, object]:
    """New mail reaches the timeline within a minute: every connected mailbox not synced lately is
    queued, except those another worker holds a live lease on (its run covers them). A live lease
    whose holder ran on this host and is gone is queued too, and its sync takes the lease over: a
    worker restarted after a crash resumes its mailboxes within a minute, not after their leases."""
    now = datetime.now(UTC)
    due_before = now - SYNC_EVERY
    here = this_process()
    with session_scope(context.sessions) as session:
        rows = session.execute(
            select(
                Mailbox.id,
                Mailbox.sync_leased_until,
                Mailbox.sync_holder_host,
                Mailbox.sync_holder_pid,
                Mailbox.sync_holder_started,
            ).where(
                Mailbox.status == mailboxes.STATUS_CONNECTED,
                or_(Mailbox.last_synced_at.is_(None), Mailbox.last_synced_at < due_before),
                or_(Mailbox.sync_not_before.is_(None), Mailbox.sync_not_before <= now),
                or_(
                    Mailbox.sync_leased_until.is_(None),
                    Mailbox.sync_leased_until < now,
                    Mailbox.sync_holder_host == here.host,
                ),
            )
        ).all()
    due = [
        row.id
        for row in rows
        if row.sync_leased_until is None
        or row.sync_leased_until < now
        or holder_gone(
            ProcessIdentity.recorded(row.sync_holder_host, row.sync_holder_pid, row.sync_holder_started),
            here,
            started_of,
        )
    ]
    for mailbox_id in due:
        context.queue.send(mailboxes.SYNC_JOB, mailbox_id=str(mailbox_id))
    return {"queued": len(due)}
