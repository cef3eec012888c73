"""Sync jobs: one run per mailbox at a time, every mailbox looked at every minute."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from huey.exceptions import TaskLockedException
from sqlalchemy import or_, select

from touchline.db import session_scope
from touchline.inbound.fetch.service import sync_mailbox
from touchline.kit.crypto import SecretBox
from touchline.mailboxes import service as mailboxes
from touchline.mailboxes.providers.base import TransientError
from touchline.models import Mailbox
from touchline.worker import JobContext, job

log = logging.getLogger(__name__)

SYNC_EVERY = timedelta(seconds=50)


@job(mailboxes.SYNC_JOB, retries=0)
def sync_mailbox_job(context: JobContext, *, mailbox_id: str) -> None:
    """Retries are not the queue's: the mailbox row holds when the next attempt may run (Retry-After
    or a growing backoff), and the every-minute scheduler honours it, so a restart loses no delay."""
    try:
        with context.queue.huey.lock_task(f"mailbox-sync:{mailbox_id}"):
            report = sync_mailbox(
                context.sessions,
                SecretBox(context.settings.secret_keys),
                uuid.UUID(mailbox_id),
                settings=context.settings,
            )
    except TaskLockedException:
        # Another worker is syncing this mailbox right now; its run covers what this one would.
        return
    except TransientError as error:
        log.warning("sync of %s failed; the scheduler retries after its backoff: %s", mailbox_id, error)
        return
    log.info(
        "synced %s: %s seen, %s kept, %s quarantined",
        mailbox_id,
        report.seen,
        report.kept,
        report.quarantined,
    )


@job("inbound.schedule_syncs", retries=0, every_minutes=1)
def schedule_syncs(context: JobContext) -> None:
    """New mail reaches the timeline within a minute: every connected mailbox not synced lately is queued."""
    now = datetime.now(UTC)
    due_before = now - SYNC_EVERY
    with session_scope(context.sessions) as session:
        due = list(
            session.scalars(
                select(Mailbox.id).where(
                    Mailbox.status == mailboxes.STATUS_CONNECTED,
                    or_(Mailbox.last_synced_at.is_(None), Mailbox.last_synced_at < due_before),
                    or_(Mailbox.sync_not_before.is_(None), Mailbox.sync_not_before <= now),
                )
            )
        )
    for mailbox_id in due:
        context.queue.send(mailboxes.SYNC_JOB, mailbox_id=str(mailbox_id))
