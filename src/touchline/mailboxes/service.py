"""Connected mailboxes: connecting, folders and their selection, disconnecting, removing synced mail,
and the admin's default synced labels. Takes a session and an Actor; never commits; no network I/O
(callers talk to providers before or after, never while holding a session)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Select, delete, func, literal, select, update
from sqlalchemy.orm import Session

from touchline.config import Settings
from touchline.kit.crypto import SecretBox
from touchline.kit.errors import ConflictError, InvalidInputError, NotFoundError, PermissionDeniedError
from touchline.mailboxes.providers.base import Folder, SpecialUse
from touchline.models import (
    BackgroundTask,
    Email,
    EmailHolder,
    Mailbox,
    MailboxFolder,
    User,
    WorkspaceSettings,
)
from touchline.models.base import UTCDateTime
from touchline.worker import enqueue
from touchline.workspace import service as workspace_service
from touchline.workspace import throttle
from touchline.workspace.permissions import Actor, Permission, parse_permissions

SYNC_JOB = "inbound.sync_mailbox"
APPLY_DEFAULT_LABELS_JOB = "mailboxes.apply_default_labels"

STATUS_CONNECTED = "connected"
STATUS_NEEDS_RECONNECT = "needs_reconnect"
STATUS_ERROR = "error"

# The folders the admin's "default synced labels" govern; every other folder stays the user's choice.
DEFAULT_LABELS = (SpecialUse.INBOX, SpecialUse.SENT)


@dataclass(frozen=True)
class ImapConnection:
    host: str
    port: int | None
    security: str  # tls | starttls | plain
    username: str


def _owner(session: Session, actor: Actor, user_id: uuid.UUID) -> User:
    """The user whose mailbox this is: the actor themself (with email_sync), or any user for admins."""
    user = workspace_service.get_user(session, actor, user_id)
    if actor.user_id != user.id and not actor.can(Permission.ADMIN_ACCESS):
        raise PermissionDeniedError("only the mailbox's own user or an admin may do this")
    if Permission.EMAIL_SYNC not in parse_permissions(list(user.role.permissions)):
        raise PermissionDeniedError(
            f"{user.email}'s role does not have the 'email_sync' permission; an admin can grant it"
        )
    return user


def get_mailbox(session: Session, actor: Actor, mailbox_id: uuid.UUID) -> Mailbox:
    mailbox = session.scalar(
        select(Mailbox).where(Mailbox.id == mailbox_id, Mailbox.workspace_id == actor.workspace_id)
    )
    if mailbox is None:
        raise NotFoundError("mailbox not found")
    if mailbox.user_id != actor.user_id and not actor.can(Permission.ADMIN_ACCESS):
        raise NotFoundError("mailbox not found")
    return mailbox


def mailbox_of_user(session: Session, actor: Actor, user_id: uuid.UUID) -> Mailbox | None:
    _owner(session, actor, user_id)
    return session.scalar(
        select(Mailbox).where(Mailbox.user_id == user_id, Mailbox.workspace_id == actor.workspace_id)
    )


def list_mailboxes(session: Session, actor: Actor) -> list[Mailbox]:
    actor.require(Permission.ADMIN_ACCESS)
    return list(
        session.scalars(
            select(Mailbox).where(Mailbox.workspace_id == actor.workspace_id).order_by(Mailbox.address)
        )
    )


def connect_mailbox(
    session: Session,
    actor: Actor,
    box: SecretBox,
    *,
    user_id: uuid.UUID,
    provider: str,
    address: str,
    connection: dict[str, Any],
    credentials: dict[str, Any],
    folders: list[Folder],
) -> Mailbox:
    """Store a mailbox whose credentials were just verified by listing its folders."""
    user = _owner(session, actor, user_id)
    if session.scalar(select(Mailbox.id).where(Mailbox.user_id == user.id)):
        raise ConflictError(f"{user.email} already has a connected mailbox; disconnect it first")
    mailbox = Mailbox(
        workspace_id=actor.workspace_id,
        user_id=user.id,
        provider=provider,
        address=address.strip().lower(),
        connection=connection,
        credentials_encrypted=box.encrypt(json.dumps(credentials)),
        status=STATUS_CONNECTED,
        folders=[],
    )
    session.add(mailbox)
    session.flush()
    save_folders(session, mailbox, folders, select_defaults=True)
    workspace_service.record_audit(
        session, actor, "mailbox.connect", "mailbox", mailbox.id, {"user": user.email, "provider": provider}
    )
    enqueue(session, SYNC_JOB, mailbox_id=str(mailbox.id))
    return mailbox


def credentials_of(mailbox: Mailbox, box: SecretBox) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(box.decrypt(mailbox.credentials_encrypted))
    return data


def store_credentials(mailbox: Mailbox, box: SecretBox, credentials: dict[str, Any]) -> None:
    mailbox.credentials_encrypted = box.encrypt(json.dumps(credentials))


def save_folders(
    session: Session, mailbox: Mailbox, folders: Iterable[Folder], *, select_defaults: bool = False
) -> None:
    """Merge the provider's folder list: new folders appear, gone ones disappear, selections stay."""
    known = {folder.provider_folder_id: folder for folder in mailbox.folders}
    seen: set[str] = set()
    for folder in folders:
        if not folder.selectable:
            continue
        seen.add(folder.id)
        row = known.get(folder.id)
        special = folder.special_use.value if folder.special_use else None
        if row is None:
            mailbox.folders.append(
                MailboxFolder(
                    workspace_id=mailbox.workspace_id,
                    provider_folder_id=folder.id,
                    name=folder.name,
                    special_use=special,
                    # A new connection starts with Inbox and Sent selected; the user changes that at will.
                    selected=select_defaults and folder.special_use in DEFAULT_LABELS,
                )
            )
        else:
            row.name, row.special_use = folder.name, special
    for folder_id, row in known.items():
        if folder_id not in seen:
            mailbox.folders.remove(row)
    session.flush()


def select_folders(
    session: Session, actor: Actor, mailbox_id: uuid.UUID, selected: set[uuid.UUID]
) -> Mailbox:
    """The user's "Update sync settings": exactly these folders are synced from now on."""
    mailbox = get_mailbox(session, actor, mailbox_id)
    _owner(session, actor, mailbox.user_id)
    unknown = selected - {folder.id for folder in mailbox.folders}
    if unknown:
        raise InvalidInputError("some of the chosen folders do not belong to this mailbox; reload the page")
    for folder in mailbox.folders:
        folder.selected = folder.id in selected
    session.flush()
    enqueue(session, SYNC_JOB, mailbox_id=str(mailbox.id))
    return mailbox


def extend_lookback(session: Session, actor: Actor, mailbox_id: uuid.UUID, days: int) -> Mailbox:
    """A user may reach further back than the workspace's window; the next sync back-fills."""
    mailbox = get_mailbox(session, actor, mailbox_id)
    settings = session.get(WorkspaceSettings, actor.workspace_id)
    minimum = settings.lookback_days if settings else 90
    if not minimum <= days <= workspace_service.MAX_LOOKBACK_DAYS:
        raise InvalidInputError(
            f"look-back days must be between {minimum} and {workspace_service.MAX_LOOKBACK_DAYS}"
        )
    mailbox.lookback_days = days
    session.flush()
    enqueue(session, SYNC_JOB, mailbox_id=str(mailbox.id))
    return mailbox


def lookback_days(workspace_days: int | None, mailbox: Mailbox) -> int:
    """The mailbox's look-back, given the workspace's (None when it has no settings row)."""
    return max(workspace_days if workspace_days is not None else 90, mailbox.lookback_days or 0)


def disconnect(session: Session, actor: Actor, mailbox_id: uuid.UUID) -> None:
    """Stops sync and forgets the credentials; the mail already stored stays."""
    mailbox = get_mailbox(session, actor, mailbox_id)
    workspace_service.record_audit(
        session, actor, "mailbox.disconnect", "mailbox", mailbox.id, {"address": mailbox.address}
    )
    # Colleagues can no longer send from an address touchline cannot send with (SPEC §5).
    workspace_service.end_public_account_usage(session, actor, [mailbox.user], "mailbox disconnected")
    session.delete(mailbox)
    session.flush()


def remove_synced_emails(session: Session, actor: Actor, user_id: uuid.UUID) -> dict[str, int]:
    """What only this user holds is deleted; what others also hold stays, without this user as holder."""
    user = workspace_service.get_user(session, actor, user_id)
    if actor.user_id != user.id and not actor.can(Permission.ADMIN_ACCESS):
        raise PermissionDeniedError("only the user themself or an admin may remove a user's synced emails")
    email_ids = set(
        session.scalars(
            select(EmailHolder.email_id).where(
                EmailHolder.workspace_id == actor.workspace_id,
                EmailHolder.user_id == user.id,
                EmailHolder.via == "sync",
            )
        )
    )
    session.execute(
        delete(EmailHolder).where(
            EmailHolder.workspace_id == actor.workspace_id,
            EmailHolder.user_id == user.id,
            EmailHolder.via == "sync",
        )
    )
    still_held = (
        set(session.scalars(select(EmailHolder.email_id).where(EmailHolder.email_id.in_(email_ids))))
        if email_ids
        else set()
    )
    orphaned = email_ids - still_held
    if orphaned:
        session.execute(delete(Email).where(Email.workspace_id == actor.workspace_id, Email.id.in_(orphaned)))
    session.expire_all()
    workspace_service.record_audit(
        session,
        actor,
        "mailbox.remove_synced",
        "user",
        user.id,
        {"deleted": len(orphaned), "kept": len(still_held)},
    )
    return {"deleted": len(orphaned), "kept_for_others": len(still_held)}


MAX_BACKOFF_SECONDS = 3600


def backoff_seconds(failed_attempts: int) -> float:
    """30 s, 1 min, 2 min, ... up to an hour: a broken server is not hammered, a blip costs little."""
    return float(min(30 * 2 ** max(failed_attempts - 1, 0), MAX_BACKOFF_SECONDS))


def record_sync_result(
    session: Session,
    mailbox_id: uuid.UUID,
    *,
    status: str,
    error: str | None,
    retry_after_seconds: float | None = None,
    failed: bool = False,
) -> float | None:
    """Store how a sync ended; returns the delay before the next attempt when one must wait.

    One UPDATE, run after every sync, most of which find nothing new; only a failure reads the
    mailbox first, for the count its backoff grows with.
    """
    now = datetime.now(UTC)
    values: dict[str, Any] = {"status": status, "last_error": error}
    wait: float | None = None
    if failed:
        attempts = session.scalar(select(Mailbox.failed_attempts).where(Mailbox.id == mailbox_id))
        if attempts is None:
            return None
        values["failed_attempts"] = attempts + 1
        wait = backoff_seconds(attempts + 1)
    elif status == STATUS_CONNECTED and retry_after_seconds is None:
        values["failed_attempts"] = 0
        values["last_synced_at"] = now
        values["first_synced_at"] = func.coalesce(Mailbox.first_synced_at, literal(now, UTCDateTime()))
    if retry_after_seconds is not None:
        wait = max(wait or 0.0, retry_after_seconds)
    values["sync_not_before"] = now + timedelta(seconds=wait) if wait else None
    result = session.execute(update(Mailbox).where(Mailbox.id == mailbox_id).values(values))
    if not cast("CursorResult[Any]", result).rowcount:
        return None
    return wait


@dataclass(frozen=True)
class FolderHealth:
    """How one synced folder's sync stands, as the Email page and ``mailbox list`` show it."""

    name: str
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    next_retry_at: datetime | None

    @property
    def failing(self) -> bool:
        return self.last_error is not None


def folder_health(mailbox: Mailbox) -> list[FolderHealth]:
    return [
        FolderHealth(
            folder.name, folder.last_synced_at, folder.last_error, folder.last_error_at, folder.next_retry_at
        )
        for folder in sorted(mailbox.folders, key=lambda folder: folder.name)
        if folder.selected
    ]


def every_folder_failing(mailbox: Mailbox) -> bool:
    """True when the mailbox syncs folders and none of them syncs: no mail arrives from it at all."""
    health = folder_health(mailbox)
    return bool(health) and all(folder.failing for folder in health)


def health_summary(mailbox: Mailbox) -> str | None:
    """One line when folders are failing ("2 of 5 folders failing", "every folder is failing"),
    None when every synced folder is fine."""
    health = folder_health(mailbox)
    failing = [folder for folder in health if folder.failing]
    if not failing:
        return None
    if len(failing) == len(health):
        return "every synced folder is failing"
    return f"{len(failing)} of {len(health)} synced folders failing"


def sync_stalled_since(mailbox: Mailbox, now: datetime, stalled_after: timedelta) -> datetime | None:
    """When a connected mailbox's last successful sync was (or when it was connected, if none was),
    if that is longer ago than `stalled_after`: sync should have succeeded since, and something (no
    worker running, a worker stuck) keeps it from doing so. None when the mailbox is not stalled."""
    if mailbox.status != STATUS_CONNECTED:
        return None  # its status says what is wrong already
    since = mailbox.last_synced_at or mailbox.created_at
    return since if since < now - stalled_after else None


def ignored_count(checked: int, kept: int, quarantined: int) -> int:
    """Messages a sync checked and did not store: not customer mail, or held by their folder already."""
    return max(checked - kept - quarantined, 0)


@dataclass(frozen=True)
class SyncProgress:
    """Where a mailbox's sync stands, with what its syncs have counted since it was connected."""

    state: str  # waiting (no sync has run yet) | syncing | synced
    checked: int
    kept: int
    ignored: int
    quarantined: int
    last_synced_at: datetime | None


def sync_progress(mailbox: Mailbox, now: datetime) -> SyncProgress:
    """A live sync lease means a worker is syncing it now (sync_lease.py)."""
    if mailbox.sync_leased_until is not None and mailbox.sync_leased_until >= now:
        state = "syncing"
    elif mailbox.last_synced_at is None:
        state = "waiting"
    else:
        state = "synced"
    return SyncProgress(
        state=state,
        checked=mailbox.sync_checked,
        kept=mailbox.sync_kept,
        ignored=ignored_count(mailbox.sync_checked, mailbox.sync_kept, mailbox.sync_quarantined),
        quarantined=mailbox.sync_quarantined,
        last_synced_at=mailbox.last_synced_at,
    )


def stalled_after(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.sync_stalled_after_seconds)


def count_stalled(session: Session, now: datetime, stalled_after: timedelta) -> int:
    """How many connected mailboxes, across every workspace, are stalled (`sync_stalled_since`)."""
    cutoff = now - stalled_after
    return int(
        session.scalar(
            select(func.count())
            .select_from(Mailbox)
            .where(
                Mailbox.status == STATUS_CONNECTED,
                func.coalesce(Mailbox.last_synced_at, Mailbox.created_at) < cutoff,
            )
        )
        or 0
    )


def record_folder_failure(
    session: Session, folder_id: uuid.UUID, error: str, now: datetime
) -> datetime | None:
    """A folder's own failure: kept with the provider's words, and the folder waits before its next
    try, longer after each failure in a row; the mailbox's other folders go on. Returns that moment."""
    folder = session.get(MailboxFolder, folder_id)
    if folder is None:
        return None
    folder.failed_attempts = (folder.failed_attempts or 0) + 1
    folder.last_error, folder.last_error_at = error, now
    folder.next_retry_at = now + timedelta(seconds=backoff_seconds(folder.failed_attempts))
    session.flush()
    return folder.next_retry_at


def clear_folder_failure(folder: MailboxFolder) -> None:
    if folder.last_error is not None or folder.failed_attempts or folder.next_retry_at is not None:
        folder.last_error, folder.last_error_at, folder.failed_attempts, folder.next_retry_at = (
            None,
            None,
            0,
            None,
        )


def count_connect_attempt(session: Session, actor: Actor, settings: Settings, now: datetime) -> None:
    """Connecting makes the server reach a host the user typed, so each user may try only so often."""
    throttle.refuse_when_waiting(
        session,
        f"connect:user:{actor.user_id}",
        throttle.connect_policy(settings),
        now,
        "mailbox connection attempts",
    )


# --- the admin's default synced labels -----------------------------------------------------------


def start_apply_default_labels(
    session: Session, actor: Actor, *, shown: tuple[bool, bool] | None = None
) -> BackgroundTask:
    """ "Apply to all users": a job over the users who exist now, as the settings' checkboxes say.

    `shown`: the Inbox and Sent boxes as they were on the admin's screen, saved as the defaults
    first, so that what is applied is what was seen (not what was saved before they were changed).
    """
    actor.require(Permission.ADMIN_ACCESS)
    settings = workspace_service.get_settings(session, actor)
    if shown is not None:
        settings.default_sync_inbox, settings.default_sync_sent = shown
    user_ids = [
        str(user_id)
        for user_id in session.scalars(select(User.id).where(User.workspace_id == actor.workspace_id))
    ]
    task = BackgroundTask(
        workspace_id=actor.workspace_id,
        kind="apply_default_labels",
        status="queued",
        created_by=actor.user_id,
        parameters={
            "inbox": settings.default_sync_inbox,
            "sent": settings.default_sync_sent,
            "user_ids": user_ids,
        },
        total=len(user_ids),
        done=0,
        result={},
    )
    session.add(task)
    session.flush()
    workspace_service.record_audit(
        session,
        actor,
        "settings.apply_default_labels",
        "background_task",
        task.id,
        {"inbox": settings.default_sync_inbox, "sent": settings.default_sync_sent, "users": len(user_ids)},
    )
    enqueue(session, APPLY_DEFAULT_LABELS_JOB, task_id=str(task.id))
    return task


def apply_default_labels_to_user(
    session: Session, workspace_id: uuid.UUID, user_id: uuid.UUID, *, inbox: bool, sent: bool
) -> str:
    """Set Inbox and Sent of one user's mailbox as the admin chose; other folders stay as they are."""
    mailbox = session.scalar(
        select(Mailbox).where(Mailbox.user_id == user_id, Mailbox.workspace_id == workspace_id)
    )
    if mailbox is None:
        return "no mailbox"
    wanted = {SpecialUse.INBOX.value: inbox, SpecialUse.SENT.value: sent}
    changed = False
    for folder in mailbox.folders:
        if folder.special_use in wanted and folder.selected != wanted[folder.special_use]:
            folder.selected = wanted[folder.special_use]
            changed = True
    session.flush()
    if changed:
        enqueue(session, SYNC_JOB, mailbox_id=str(mailbox.id))
    return "changed" if changed else "unchanged"


# Tasks over the whole workspace: only admins see them, whoever started them.
ADMIN_TASK_KINDS = frozenset({"apply_default_labels"})


def _visible_tasks(actor: Actor) -> Select[BackgroundTask]:
    """The actor's own tasks, or every task of the workspace for an admin."""
    statement = select(BackgroundTask).where(BackgroundTask.workspace_id == actor.workspace_id)
    if actor.can(Permission.ADMIN_ACCESS):
        return statement
    return statement.where(
        BackgroundTask.created_by == actor.user_id, BackgroundTask.kind.not_in(ADMIN_TASK_KINDS)
    )


def get_task(session: Session, actor: Actor, task_id: uuid.UUID) -> BackgroundTask:
    task = session.scalar(_visible_tasks(actor).where(BackgroundTask.id == task_id))
    if task is None:
        raise NotFoundError("task not found")
    return task


def latest_tasks(session: Session, actor: Actor, kind: str, limit: int = 5) -> list[BackgroundTask]:
    return list(
        session.scalars(
            _visible_tasks(actor)
            .where(BackgroundTask.kind == kind)
            .order_by(BackgroundTask.created_at.desc())
            .limit(limit)
        )
    )


def count_holdings(session: Session, workspace_id: uuid.UUID, user_id: uuid.UUID) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(EmailHolder)
            .where(EmailHolder.workspace_id == workspace_id, EmailHolder.user_id == user_id)
        )
        or 0
    )
