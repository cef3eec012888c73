"""Fetch and store the folders a sync found changed: triage new headers, fetch the kept bodies, store
them, and checkpoint each folder's cursor in the same transaction as the batch it covers.

No database session is held across network I/O: each batch is fetched first, then stored in one short
transaction with its checkpoint. A crash at any point leaves either a batch and its checkpoint or
neither, so a rerun stores exactly what one clean run would. The next batch is fetched (and triaged)
on a thread of its own while this one is stored (`kit.ahead.run_ahead`), so the provider's server and
the database are busy at the same time, from one folder into the next; checkpoints still move in
order, from the storing thread.
Each batch's bodies are read (parsed, snippet, safe HTML) by a helper process (`inbound.readers`)
meanwhile, so that reading and storing use two cores.

A sync that finds nothing new never imports this module (`touchline.inbound.fetch.service`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from touchline.db import session_scope
from touchline.inbound.directory import Directory
from touchline.inbound.fetch.report import FolderPlan, ProgressCallback, SyncReport
from touchline.inbound.match import match
from touchline.inbound.parse import parse_headers
from touchline.inbound.readers import Reading, readers
from touchline.inbound.reports.classify import likely_report
from touchline.inbound.store.directory import directories
from touchline.inbound.store.service import Holding, RawIncoming, quarantine, store_raw_messages
from touchline.kit.ahead import run_ahead
from touchline.mailboxes import service as mailboxes
from touchline.mailboxes.providers.base import (
    MAX_MESSAGE_BYTES,
    AccessBlocked,
    AuthError,
    CursorExpired,
    FolderNotFound,
    InsecureConnectionError,
    MessageHeaders,
    OAuthConfigurationError,
    ProviderError,
    RateLimited,
    TransientError,
)
from touchline.models import EmailHolder, Mailbox, MailboxFolder

log = logging.getLogger(__name__)

BATCH_SIZE = 200
FETCH_AHEAD = 1
"""Batches fetched ahead of the one being stored: one keeps the server and the database busy at once."""

# Failures that concern the whole mailbox (its login, its quota, the network, an administrator's
# policy); any other provider error is about one folder, which is recorded and skipped for a while.
_MAILBOX_WIDE_ERRORS = (
    AuthError,
    RateLimited,
    TransientError,
    InsecureConnectionError,
    OAuthConfigurationError,
    AccessBlocked,
)


def sync_folders(
    sessions: sessionmaker[Session],
    provider: Any,
    plans: list[FolderPlan],
    workspace_id: uuid.UUID,
    user_id: uuid.UUID,
    mailbox_id: uuid.UUID,
    report: SyncReport,
    progress: ProgressCallback | None,
) -> None:
    """Fetch on one thread, store on this one, with one pipeline for all the folders: the next
    folder's first batch is fetched and read while this folder's last one is stored."""
    fetching = partial(_fetch_folders, sessions, provider, plans, workspace_id)
    for fetched in run_ahead(fetching, depth=FETCH_AHEAD, name="touchline-sync-fetch"):
        if isinstance(fetched, _FolderGone):
            _deselect(sessions, fetched, report)
            continue
        if isinstance(fetched, _FolderFailed):
            _record_failure(sessions, fetched, report)
            continue
        _store_batch(sessions, provider, fetched, workspace_id, user_id, mailbox_id, report)
        if progress is not None:
            progress(fetched.plan.name, len(fetched.batch.messages), report)


def _fetch_folders(
    sessions: sessionmaker[Session],
    provider: Any,
    plans: list[FolderPlan],
    workspace_id: uuid.UUID,
) -> Iterator[_Fetched | _FolderGone | _FolderFailed]:
    """Each folder's batches in turn, from its stored cursor; runs on the fetching thread."""
    for plan in plans:
        cursor = provider.cursor_from_json(plan.cursor) if plan.cursor else None
        restarted = False
        while True:
            try:
                yield from _fetch_batches(sessions, provider, plan, workspace_id, cursor)
                break
            except CursorExpired:
                if restarted:
                    raise
                # The server forgot where we were (UIDVALIDITY changed, history expired): re-map the
                # folder from scratch. Stored mail is recognised by its dedup key, so nothing doubles
                # or is lost; the checkpoints of batches already yielded are overtaken by the rerun's.
                restarted, cursor = True, None
            except FolderNotFound as error:
                yield _FolderGone(plan, error)
                break
            except _MAILBOX_WIDE_ERRORS:
                raise
            except ProviderError as error:
                # What was fetched before is stored already; this folder waits, the next one goes on.
                yield _FolderFailed(plan, error)
                break


@dataclass(frozen=True)
class _FolderGone:
    plan: FolderPlan
    error: FolderNotFound


def _deselect(sessions: sessionmaker[Session], gone: _FolderGone, report: SyncReport) -> None:
    with session_scope(sessions) as session:
        folder = session.get(MailboxFolder, gone.plan.folder_id)
        if folder is not None:
            folder.selected = False
    report.error = f"{gone.plan.name}: {gone.error}; it was deselected, pick it again if it was renamed"


@dataclass(frozen=True)
class _FolderFailed:
    plan: FolderPlan
    error: ProviderError


def _record_failure(sessions: sessionmaker[Session], failed: _FolderFailed, report: SyncReport) -> None:
    message = str(failed.error)
    with session_scope(sessions) as session:
        retry_at = mailboxes.record_folder_failure(session, failed.plan.folder_id, message, datetime.now(UTC))
    log.warning("folder %s failed; retrying after %s: %s", failed.plan.name, retry_at, message)
    report.failed_folders[failed.plan.name] = message
    report.error = "; ".join(f"{name}: {error}" for name, error in report.failed_folders.items())


@dataclass(frozen=True)
class _Fetched:
    """One batch of new headers, triaged, with the bodies of the messages it keeps."""

    plan: FolderPlan
    batch: Any
    raw_messages: list[Any]
    reading: Reading
    too_big: set[str]
    directory: Directory | None


def _fetch_batches(
    sessions: sessionmaker[Session],
    provider: Any,
    plan: FolderPlan,
    workspace_id: uuid.UUID,
    cursor: Any,
) -> Iterator[_Fetched]:
    """Network and triage: header batches from the provider, decided, and the kept bodies fetched.

    Triage may read the directory before the batch being stored has added its new contacts. That
    changes no decision: contacts are only created for addresses that already match by domain
    (SPEC 2.5), and storing decides every message again on the whole message.
    """
    for batch in provider.fetch_new_headers(
        plan.provider_folder_id, cursor, since=plan.since, batch_size=BATCH_SIZE
    ):
        messages: tuple[MessageHeaders, ...] = batch.messages
        wanted: list[MessageHeaders] = []
        directory = None
        if messages:  # an empty batch only moves the checkpoint: no directory, no look-ups
            # Reads only: a plain session, which on SQLite never waits for the batch being stored
            # (a writing `session_scope` would take the write lock).
            with sessions() as session:
                directory = directories.get(session, workspace_id)
                held = _already_held(session, plan.folder_id, [m.provider_message_id for m in messages])
            wanted = [
                message
                for message in messages
                if message.provider_message_id not in held and _wanted(message.raw_headers, directory)
            ]
        too_big = {
            m.provider_message_id
            for m in wanted
            if m.size_bytes is not None and m.size_bytes > MAX_MESSAGE_BYTES
        }
        raw_messages = (
            provider.fetch_raw_messages(
                plan.provider_folder_id,
                [m.provider_message_id for m in wanted if m.provider_message_id not in too_big],
            )
            if wanted
            else []
        )
        # Providers that learn a size only while reading the body (Graph) stop at the limit.
        too_big |= {raw.provider_message_id for raw in raw_messages if raw.oversized}
        raw_messages = [raw for raw in raw_messages if not raw.oversized]
        # Read (parsed, snippet, safe HTML) by a helper process while the batch before is stored.
        reading = readers().submit([raw.raw for raw in raw_messages])
        yield _Fetched(plan, batch, raw_messages, reading, too_big, directory)


def _wanted(raw_headers: bytes, directory: Directory) -> bool:
    """Customer mail, and delivery reports (which match no customer): those are fetched whole.
    Storing classifies the report and sends it on instead of storing it."""
    headers = parse_headers(raw_headers)
    return match(headers, directory).kept or likely_report(raw_headers, headers.sender, headers.subject)


def _already_held(session: Session, folder_id: uuid.UUID, provider_ids: list[str]) -> set[str]:
    if not provider_ids:
        return set()
    return {
        value
        for value in session.scalars(
            select(EmailHolder.provider_message_id).where(
                EmailHolder.folder_id == folder_id, EmailHolder.provider_message_id.in_(provider_ids)
            )
        )
        if value
    }


def _store_batch(
    sessions: sessionmaker[Session],
    provider: Any,
    fetched: _Fetched,
    workspace_id: uuid.UUID,
    user_id: uuid.UUID,
    mailbox_id: uuid.UUID,
    report: SyncReport,
) -> None:
    """Store a fetched batch and move the folder's checkpoint past it, in one transaction."""
    plan, batch, raw_messages, too_big, directory = (
        fetched.plan,
        fetched.batch,
        fetched.raw_messages,
        fetched.too_big,
        fetched.directory,
    )
    read = fetched.reading.result()
    messages: tuple[MessageHeaders, ...] = batch.messages
    counted_before = (report.kept, report.quarantined)
    report.seen += len(messages)
    threads = {m.provider_message_id: m.provider_thread_id for m in messages}
    with session_scope(sessions) as session:
        for provider_id in too_big:
            quarantine(
                session,
                workspace_id,
                source="sync",
                mailbox_id=mailbox_id,
                provider_message_id=provider_id,
                reason=f"larger than {MAX_MESSAGE_BYTES // (1024 * 1024)} MB; not stored",
            )
            report.quarantined += 1
        if raw_messages:
            assert directory is not None  # bodies are fetched only for messages the directory kept
            # Each message is decided again on the whole message: the provider's header block may
            # have been partial.
            outcome = store_raw_messages(
                session,
                workspace_id,
                directory,
                [
                    RawIncoming(
                        raw.raw,
                        Holding(
                            user_id=user_id,
                            via="sync",
                            folder_id=plan.folder_id,
                            folder_name=plan.name,
                            provider_message_id=raw.provider_message_id,
                            provider_thread_id=threads.get(raw.provider_message_id),
                            provider=getattr(provider, "kind", "imap"),
                        ),
                        label="",
                        read=read_one,
                    )
                    for raw, read_one in zip(raw_messages, read, strict=True)
                ],
                source="sync",
                mailbox_id=mailbox_id,
            )
            report.kept += outcome.kept
            report.stored_new += outcome.stored_new
            report.quarantined += outcome.quarantined
        if messages:
            # In the batch's own transaction: the Email page reads the counts while the sync runs.
            session.execute(
                update(Mailbox)
                .where(Mailbox.id == mailbox_id)
                .values(
                    sync_checked=Mailbox.sync_checked + len(messages),
                    sync_kept=Mailbox.sync_kept + report.kept - counted_before[0],
                    sync_quarantined=Mailbox.sync_quarantined + report.quarantined - counted_before[1],
                    sync_counted_at=datetime.now(UTC),
                )
                .execution_options(synchronize_session=False)
            )
        folder = session.get(MailboxFolder, plan.folder_id)
        if folder is not None:
            folder.cursor = batch.cursor.to_json()
            folder.last_synced_at = datetime.now(UTC)
            mailboxes.clear_folder_failure(folder)
            if folder.synced_since is None or plan.since < folder.synced_since or plan.restart:
                folder.synced_since = plan.since
    report.per_folder[plan.name] = report.per_folder.get(plan.name, 0) + len(messages)
