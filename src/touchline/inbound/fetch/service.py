"""Sync one mailbox: ask the provider which selected folders changed, fetch and store those
(`touchline.inbound.fetch.folders`), and record how the run ended.

Most runs find nothing new. Where the provider can tell which folders hold nothing new without opening
them (``ChangeCheck``), those folders are neither opened nor written to one by one: a run that finds
nothing is one transaction to read the mailbox and one to record the result.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session, lazyload, sessionmaker

from touchline.config import Settings
from touchline.db import session_scope
from touchline.inbound.fetch.report import FolderPlan, ProgressCallback, SyncReport
from touchline.kit.crypto import SecretBox
from touchline.mailboxes import service as mailboxes
from touchline.mailboxes.connect import open_provider
from touchline.mailboxes.providers.base import (
    AccessBlocked,
    AuthError,
    ChangeCheck,
    InsecureConnectionError,
    OAuthConfigurationError,
    RateLimited,
    TransientError,
)
from touchline.models import Mailbox, MailboxFolder, WorkspaceSettings

__all__ = ["ProgressCallback", "SyncReport", "sync_mailbox"]


def _load(session: Session, mailbox_id: uuid.UUID) -> tuple[Mailbox, list[FolderPlan]] | None:
    """The mailbox and a plan for each selected folder, in one query (one round trip on PostgreSQL).

    Neither the mailbox's user (and role) nor its unselected folders are loaded: a sync needs neither.
    """
    rows = session.execute(
        select(Mailbox, WorkspaceSettings.lookback_days, MailboxFolder)
        .outerjoin(WorkspaceSettings, WorkspaceSettings.workspace_id == Mailbox.workspace_id)
        .outerjoin(
            MailboxFolder, and_(MailboxFolder.mailbox_id == Mailbox.id, MailboxFolder.selected.is_(True))
        )
        .where(Mailbox.id == mailbox_id)
        .order_by(MailboxFolder.name)
        .options(lazyload(Mailbox.user), lazyload(Mailbox.folders))
    ).all()
    if not rows:
        return None
    mailbox, workspace_days, _ = rows[0]
    folders = [folder for _, _, folder in rows if folder is not None]
    return mailbox, _plan(mailbox, mailboxes.lookback_days(workspace_days, mailbox), folders)


def _plan(mailbox: Mailbox, lookback: int, folders: Iterable[MailboxFolder]) -> list[FolderPlan]:
    now = datetime.now(UTC)
    anchor = mailbox.first_synced_at or now
    since = anchor - timedelta(days=lookback)
    plans = []
    for folder in folders:
        if folder.next_retry_at is not None and folder.next_retry_at > now:
            continue  # this folder failed lately and waits out its backoff; the others sync

        # A look-back extended past what this folder already covers means a back-fill from scratch;
        # already stored mail is recognised and not duplicated.
        restart = folder.synced_since is not None and since < folder.synced_since
        plans.append(
            FolderPlan(
                folder.id,
                folder.provider_folder_id,
                folder.name,
                None if restart else folder.cursor,
                since,
                restart,
            )
        )
    return plans


def sync_mailbox(
    sessions: sessionmaker[Session],
    box: SecretBox,
    mailbox_id: uuid.UUID,
    *,
    progress: ProgressCallback | None = None,
    provider_factory: Callable[[Mailbox, SecretBox], Any] | None = None,
    settings: Settings | None = None,
) -> SyncReport:
    report = SyncReport(mailbox_id)
    if provider_factory is None:
        # Gmail and Graph mailboxes need the OAuth app's settings, and a way to store refreshed tokens.
        provider_factory = partial(open_provider, settings=settings, sessions=sessions)
    with session_scope(sessions) as session:
        loaded = _load(session, mailbox_id)
        if loaded is None:
            report.status, report.error = "gone", "the mailbox was disconnected"
            return report
        mailbox, plans = loaded
        workspace_id, user_id = mailbox.workspace_id, mailbox.user_id
        try:
            provider = provider_factory(mailbox, box)
        except (InsecureConnectionError, OAuthConfigurationError, ValueError, KeyError) as error:
            mailboxes.record_sync_result(session, mailbox_id, status=mailboxes.STATUS_ERROR, error=str(error))
            report.status, report.error = mailboxes.STATUS_ERROR, str(error)
            return report
    unchanged: list[FolderPlan] = []
    checked_at = datetime.now(UTC)
    try:
        unchanged = _unchanged(provider, plans)
        report.folders = len(plans)
        for plan in unchanged:
            report.per_folder.setdefault(plan.name, 0)
            if progress is not None:
                progress(plan.name, 0, report)
        skipped = {plan.folder_id for plan in unchanged}
        changed = [plan for plan in plans if plan.folder_id not in skipped]
        if changed:
            # Only now: fetching and storing need the parsers, the matcher and the store, which a
            # sync that finds nothing new (most of them) has no use for.
            from touchline.inbound.fetch.folders import sync_folders

            sync_folders(sessions, provider, changed, workspace_id, user_id, mailbox_id, report, progress)
    except AuthError as error:
        report.status, report.error = mailboxes.STATUS_NEEDS_RECONNECT, f"{error}; reconnect the mailbox"
    except RateLimited as error:
        report.status, report.error = mailboxes.STATUS_CONNECTED, str(error)
        report.retry_after_seconds = error.retry_after_seconds
    except (InsecureConnectionError, OAuthConfigurationError) as error:
        report.status, report.error = mailboxes.STATUS_ERROR, str(error)
    except AccessBlocked as error:
        # Nothing the user can do; tried again rarely (the backoff grows to an hour) in case the
        # administrator lifts the policy.
        with session_scope(sessions) as session:
            report.retry_after_seconds = mailboxes.record_sync_result(
                session, mailbox_id, status=mailboxes.STATUS_CONNECTED, error=str(error), failed=True
            )
        report.error = str(error)
        return report
    except TransientError as error:
        # Recorded for the user to see with the backoff it earned, then raised so the caller can retry
        # from the stored cursors.
        with session_scope(sessions) as session:
            _mark_synced(session, unchanged, checked_at)
            report.retry_after_seconds = mailboxes.record_sync_result(
                session,
                mailbox_id,
                status=mailboxes.STATUS_CONNECTED,
                error=f"retrying: {error}",
                failed=True,
            )
        raise
    finally:
        provider.close()
    with session_scope(sessions) as session:
        _mark_synced(session, unchanged, checked_at)
        mailboxes.record_sync_result(
            session,
            mailbox_id,
            status=report.status,
            error=report.error,
            retry_after_seconds=report.retry_after_seconds,
        )
    return report


def _unchanged(provider: Any, plans: list[FolderPlan]) -> list[FolderPlan]:
    """The planned folders the provider says hold nothing new since their stored cursor.

    A folder without a cursor (new, or starting over) always syncs, as does one whose stored cursor
    the provider cannot read: ``_fetch_folders`` reports that.
    """
    if not isinstance(provider, ChangeCheck):
        return []
    cursors = _stored_cursors(provider, plans)
    if not cursors:
        return []
    unchanged = provider.unchanged_folders(cursors) & cursors.keys()
    return [plan for plan in plans if plan.provider_folder_id in unchanged]


def _stored_cursors(provider: Any, plans: list[FolderPlan]) -> dict[str, Any]:
    cursors: dict[str, Any] = {}
    for plan in plans:
        if plan.cursor and not plan.restart:
            try:
                cursors[plan.provider_folder_id] = provider.cursor_from_json(plan.cursor)
            except ValueError:
                continue
    return cursors


def _mark_synced(session: Session, plans: list[FolderPlan], synced_at: datetime) -> None:
    """Folders found unchanged were in sync when checked; one statement says so for all of them."""
    if plans:
        session.execute(
            update(MailboxFolder)
            .where(MailboxFolder.id.in_([plan.folder_id for plan in plans]))
            .values(last_synced_at=synced_at)
            .execution_options(synchronize_session=False)
        )
