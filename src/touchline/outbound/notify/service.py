"""Notification settings (each user's own), recording notices as notifications per channel with
coalescing, and the delivery attempts with their backoff.

Recording locks the user's settings row, so one user's notifications are made one at a time: a
repeated event always finds the notification it joins, and the ids of one user's notifications are
committed in order, which is what lets the browser stream use them as its cursor.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from touchline.config import Settings, relay_configured
from touchline.kit.backoff import AttemptRun, BackoffPolicy, after_attempt
from touchline.kit.crypto import SecretBox
from touchline.kit.errors import InvalidInputError, PermissionDeniedError
from touchline.models import NotificationDelivery, NotificationSetting, OutboundEmail, User
from touchline.outbound.notify import CHANNELS, KINDS, TEST_KIND, repository, signature
from touchline.outbound.notify.channels import check_webhook_url, webhook_policy
from touchline.outbound.notify.messages import Notification
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor

log = logging.getLogger(__name__)

DEFAULT_KINDS: Final[Mapping[str, tuple[str, ...]]] = {
    "browser": KINDS,
    "email": (),
    "slack": (),
    "webhook": (),
}
DEFAULT_COALESCE_MINUTES: Final = 10
MAX_COALESCE_MINUTES: Final = 24 * 60
ATTEMPT_LEASE: Final = timedelta(minutes=2)
"""An attempt under way holds its delivery this long; one whose worker died is tried again after it."""
MAX_ATTEMPTS: Final = 8
RETRY_BACKOFF: Final = BackoffPolicy(
    attempts=1, window=timedelta(days=1), backoff=timedelta(seconds=30), max_backoff=timedelta(hours=1)
)
"""Each failed attempt waits twice as long as the one before: 30 s, 1 min, 2 min, ... up to an hour."""
NO_RELAY: Final = (
    "Email notifications go through the workspace's SMTP relay, and none is configured "
    "(TOUCHLINE_RELAY_SMTP_HOST): the email channel is off."
)


@dataclass(frozen=True, slots=True)
class NotificationSettings:
    """A user's settings as pages and the API show them; URLs by host only, the secret never."""

    kinds_by_channel: dict[str, tuple[str, ...]]
    slack_host: str | None
    webhook_host: str | None
    webhook_secret_set: bool
    coalesce_minutes: int
    email_available: bool
    email_unavailable_reason: str | None


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """What a user asks to change. A URL of None keeps the stored one; "" removes it."""

    kinds_by_channel: Mapping[str, Iterable[str]]
    slack_url: str | None = None
    webhook_url: str | None = None
    coalesce_minutes: int | None = None
    generate_secret: bool = False


@dataclass(frozen=True, slots=True)
class Notice:
    """One event the engagement refresh tells a sender about (the ENGAGEMENT_JOB's notices)."""

    kind: str
    outbound_id: uuid.UUID
    subject: str
    recipient: str
    at: datetime
    detail: str = ""

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Notice:
        kind = str(raw["kind"])
        if kind not in KINDS:
            raise ValueError(f"unknown notice kind {kind!r}")
        return cls(
            kind=kind,
            outbound_id=uuid.UUID(str(raw["outbound_id"])),
            subject=str(raw.get("subject") or ""),
            recipient=str(raw.get("recipient") or ""),
            at=datetime.fromisoformat(str(raw["at"])),
            detail=str(raw.get("detail") or ""),
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """Everything one delivery attempt needs, read before any connection is made."""

    delivery_id: int
    channel: str
    notification: Notification
    address: str = ""
    url: str = ""
    secret: str = field(default="", repr=False)


def _self_only(actor: Actor, user_id: uuid.UUID) -> None:
    if actor.user_id is None:
        raise InvalidInputError("notification settings belong to a user: act as one")
    if actor.user_id != user_id:
        raise PermissionDeniedError("only the user themself may change their notification settings")


def _kinds(row: NotificationSetting | None) -> dict[str, tuple[str, ...]]:
    stored = row.kinds_by_channel if row is not None else DEFAULT_KINDS
    return {channel: tuple(kind for kind in KINDS if kind in stored.get(channel, ())) for channel in CHANNELS}


def _host(box: SecretBox, encrypted: str | None) -> str | None:
    if encrypted is None:
        return None
    return urlsplit(box.decrypt(encrypted)).netloc or None


def _setting_row(session: Session, user_id: uuid.UUID, *, lock: bool = False) -> NotificationSetting | None:
    query = select(NotificationSetting).where(NotificationSetting.user_id == user_id)
    return session.scalar(query.with_for_update() if lock else query)


def read_settings(session: Session, actor: Actor, box: SecretBox, settings: Settings) -> NotificationSettings:
    if actor.user_id is None:
        raise InvalidInputError("notification settings belong to a user: act as one")
    workspace_service.get_user(session, actor, actor.user_id)
    return _view(_setting_row(session, actor.user_id), box, settings)


def _view(row: NotificationSetting | None, box: SecretBox, settings: Settings) -> NotificationSettings:
    email_available = relay_configured(settings)
    return NotificationSettings(
        kinds_by_channel=_kinds(row),
        slack_host=_host(box, row.slack_url_encrypted) if row else None,
        webhook_host=_host(box, row.webhook_url_encrypted) if row else None,
        webhook_secret_set=bool(row and row.webhook_secret_encrypted),
        coalesce_minutes=row.coalesce_minutes if row else DEFAULT_COALESCE_MINUTES,
        email_available=email_available,
        email_unavailable_reason=None if email_available else NO_RELAY,
    )


def update_settings(
    session: Session,
    actor: Actor,
    box: SecretBox,
    settings: Settings,
    user_id: uuid.UUID,
    change: SettingsChange,
    now: datetime,
) -> tuple[NotificationSettings, str | None]:
    """Changes `user_id`'s settings; only that user may, admins included. Returns the settings and,
    when one was generated, the new webhook secret: shown this once, never again."""
    _self_only(actor, user_id)
    workspace_service.get_user(session, actor, user_id)
    kinds = _checked_kinds(change.kinds_by_channel)
    if kinds["email"] and not relay_configured(settings):
        raise InvalidInputError(NO_RELAY)
    row = _setting_row(session, user_id, lock=True)
    if row is None:
        row = NotificationSetting(
            workspace_id=actor.workspace_id,
            user_id=user_id,
            kinds_by_channel={channel: list(kinds) for channel, kinds in DEFAULT_KINDS.items()},
            coalesce_minutes=DEFAULT_COALESCE_MINUTES,
        )
        session.add(row)
    policy = webhook_policy(settings)
    if change.slack_url is not None:
        row.slack_url_encrypted = (
            box.encrypt(check_webhook_url(change.slack_url, policy).url) if change.slack_url.strip() else None
        )
    if change.webhook_url is not None:
        row.webhook_url_encrypted = (
            box.encrypt(check_webhook_url(change.webhook_url, policy).url)
            if change.webhook_url.strip()
            else None
        )
    secret = None
    if change.generate_secret:
        secret = signature.new_secret()
        row.webhook_secret_encrypted = box.encrypt(secret)
    if kinds["slack"] and row.slack_url_encrypted is None:
        raise InvalidInputError("Slack notifications need the Slack incoming webhook URL")
    if kinds["webhook"] and row.webhook_url_encrypted is None:
        raise InvalidInputError("webhook notifications need the webhook URL")
    if kinds["webhook"] and row.webhook_secret_encrypted is None:
        raise InvalidInputError("webhook notifications are signed: generate the signing secret first")
    if change.coalesce_minutes is not None:
        if not 0 <= change.coalesce_minutes <= MAX_COALESCE_MINUTES:
            raise InvalidInputError(f"the coalescing window is 0 to {MAX_COALESCE_MINUTES} minutes")
        row.coalesce_minutes = change.coalesce_minutes
    row.kinds_by_channel = {channel: list(chosen) for channel, chosen in kinds.items()}
    row.updated_at = now
    workspace_service.record_audit(
        session,
        actor,
        "user.notification_settings",
        "user",
        user_id,
        {"channels": {channel: list(chosen) for channel, chosen in kinds.items() if chosen}},
    )
    session.flush()
    return _view(row, box, settings), secret


def _checked_kinds(requested: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    unknown_channels = set(requested) - set(CHANNELS)
    if unknown_channels:
        raise InvalidInputError(
            f"unknown channel {sorted(unknown_channels)[0]!r}; channels: {', '.join(CHANNELS)}"
        )
    chosen: dict[str, tuple[str, ...]] = {}
    for channel in CHANNELS:
        kinds = set(requested.get(channel, ()))
        if kinds - set(KINDS):
            raise InvalidInputError(
                f"unknown kind {sorted(kinds - set(KINDS))[0]!r}; kinds: {', '.join(KINDS)}"
            )
        chosen[channel] = tuple(kind for kind in KINDS if kind in kinds)
    return chosen


def _usable_channels(row: NotificationSetting | None, settings: Settings) -> set[str]:
    usable = {"browser"}
    if relay_configured(settings):
        usable.add("email")
    if row is not None and row.slack_url_encrypted:
        usable.add("slack")
    if row is not None and row.webhook_url_encrypted and row.webhook_secret_encrypted:
        usable.add("webhook")
    return usable


def _locked_settings(session: Session, workspace_id: uuid.UUID, user_id: uuid.UUID) -> NotificationSetting:
    """The user's settings row, locked for this transaction (made with the defaults if missing)."""
    row = _setting_row(session, user_id, lock=True)
    if row is None:
        row = NotificationSetting(
            workspace_id=workspace_id,
            user_id=user_id,
            kinds_by_channel={channel: list(kinds) for channel, kinds in DEFAULT_KINDS.items()},
            coalesce_minutes=DEFAULT_COALESCE_MINUTES,
        )
        session.add(row)
        session.flush()  # a concurrent first notification for this user fails here; its job retries
        row = _setting_row(session, user_id, lock=True)
        assert row is not None
    return row


def record_notices(
    session: Session,
    settings: Settings,
    workspace_id: uuid.UUID,
    user_id: uuid.UUID,
    notices: Iterable[Notice],
    now: datetime,
) -> list[int]:
    """Each notice as a notification on every channel the user wants for its kind; a repeat within the
    user's window adds to the notification it repeats. Returns the new deliveries to attempt."""
    user = session.get(User, user_id)
    if user is None or user.workspace_id != workspace_id:
        log.warning("no user %s in workspace %s to notify", user_id, workspace_id)
        return []
    row = _locked_settings(session, workspace_id, user_id)
    kinds = _kinds(row)
    usable = _usable_channels(row, settings)
    window = timedelta(minutes=row.coalesce_minutes)
    created: list[NotificationDelivery] = []
    for notice in notices:
        outbound = session.get(OutboundEmail, notice.outbound_id)
        if outbound is None or outbound.workspace_id != workspace_id:
            log.warning(
                "notice about %s, which is not an email of workspace %s", notice.outbound_id, workspace_id
            )
            continue
        for channel in CHANNELS:
            if notice.kind not in kinds[channel] or channel not in usable:
                continue
            joined = repository.coalescing_row(
                session, user_id, channel, notice.outbound_id, notice.kind, now - window
            )
            if joined is not None and window:
                joined.coalesced_count += 1
                joined.occurred_at = max(joined.occurred_at, notice.at)
                joined.detail = notice.detail
                continue
            delivery = _new_delivery(workspace_id, user_id, channel, notice.kind, now)
            delivery.outbound_email_id = notice.outbound_id
            delivery.subject = notice.subject[:998]
            delivery.recipient = notice.recipient[:320]
            delivery.detail = notice.detail
            delivery.occurred_at = notice.at
            session.add(delivery)
            session.flush()  # each new notification is found by the notices after it
            created.append(delivery)
    return [delivery.id for delivery in created if delivery.status == "pending"]


def record_test(session: Session, actor: Actor, settings: Settings, now: datetime) -> dict[str, int]:
    """A test notification on every channel the caller has set up (the settings page's button); the
    new delivery's id by channel."""
    if actor.user_id is None:
        raise InvalidInputError("notifications belong to a user: act as one")
    workspace_service.get_user(session, actor, actor.user_id)
    row = _locked_settings(session, actor.workspace_id, actor.user_id)
    kinds = _kinds(row)
    channels = [c for c in CHANNELS if c in _usable_channels(row, settings) and (kinds[c] or c == "browser")]
    created = []
    for channel in channels:
        delivery = _new_delivery(actor.workspace_id, actor.user_id, channel, TEST_KIND, now)
        delivery.occurred_at = now
        session.add(delivery)
        created.append(delivery)
    session.flush()
    return {delivery.channel: delivery.id for delivery in created}


def _new_delivery(
    workspace_id: uuid.UUID, user_id: uuid.UUID, channel: str, kind: str, now: datetime
) -> NotificationDelivery:
    # A browser notification is delivered by being stored: the stream reads it from here.
    delivered = channel == "browser"
    return NotificationDelivery(
        workspace_id=workspace_id,
        user_id=user_id,
        channel=channel,
        kind=kind,
        status="sent" if delivered else "pending",
        attempts=1 if delivered else 0,
        next_attempt_at=None if delivered else now,
        created_at=now,
        sent_at=now if delivered else None,
        coalesced_count=1,
        subject="",
        recipient="",
        detail="",
    )


def notification_of(delivery: NotificationDelivery) -> Notification:
    return Notification(
        id=delivery.id,
        kind=delivery.kind,
        outbound_id=str(delivery.outbound_email_id) if delivery.outbound_email_id else None,
        subject=delivery.subject,
        recipient=delivery.recipient,
        detail=delivery.detail,
        at=delivery.occurred_at,
        count=delivery.coalesced_count,
    )


def claim(session: Session, box: SecretBox, delivery_id: int, now: datetime) -> Attempt | None:
    """Takes a due pending delivery for one attempt (one conditional update: two workers never both
    take it) and reads what the attempt needs; None when it is not due or not pending."""
    taken = session.execute(
        update(NotificationDelivery)
        .where(
            NotificationDelivery.id == delivery_id,
            NotificationDelivery.status == "pending",
            NotificationDelivery.next_attempt_at <= now,
        )
        .values(next_attempt_at=now + ATTEMPT_LEASE)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return None
    delivery = session.get(NotificationDelivery, delivery_id)
    assert delivery is not None
    row = _setting_row(session, delivery.user_id)
    user = session.get(User, delivery.user_id)
    notification = notification_of(delivery)
    if delivery.channel == "email":
        return Attempt(delivery_id, "email", notification, address=user.email if user else "")
    encrypted_url = (
        (row.slack_url_encrypted if delivery.channel == "slack" else row.webhook_url_encrypted)
        if row
        else None
    )
    encrypted_secret = row.webhook_secret_encrypted if row else None
    return Attempt(
        delivery_id,
        delivery.channel,
        notification,
        url=box.decrypt(encrypted_url) if encrypted_url else "",
        secret=box.decrypt(encrypted_secret) if encrypted_secret and delivery.channel == "webhook" else "",
    )


def record_sent(session: Session, delivery_id: int, now: datetime) -> None:
    delivery = session.get(NotificationDelivery, delivery_id)
    if delivery is None or delivery.status != "pending":
        return
    delivery.attempts += 1
    delivery.status = "sent"
    delivery.sent_at = now
    delivery.next_attempt_at = None
    delivery.last_error = None
    session.flush()


def record_failure(
    session: Session,
    delivery_id: int,
    reason: str,
    now: datetime,
    *,
    temporary: bool,
    retry_after_seconds: float | None = None,
) -> str | None:
    """Records a failed attempt; a temporary failure is tried again after the backoff, until
    MAX_ATTEMPTS. Returns the status it is left in."""
    delivery = session.get(NotificationDelivery, delivery_id)
    if delivery is None or delivery.status != "pending":
        return None
    delivery.attempts += 1
    delivery.last_error = reason[:2000]
    if not temporary or delivery.attempts >= MAX_ATTEMPTS:
        delivery.status = "failed"
        delivery.next_attempt_at = None
    else:
        delivery.next_attempt_at = retry_at(delivery.attempts, delivery.created_at, now, retry_after_seconds)
    session.flush()
    return delivery.status


def retry_at(
    failed_attempts: int, first_at: datetime, now: datetime, retry_after_seconds: float | None
) -> datetime:
    """When to try again after `failed_attempts` failures: RETRY_BACKOFF's doubling wait, or the
    server's Retry-After when it asks for longer (never past the longest wait)."""
    run = AttemptRun(
        attempts=failed_attempts - 1,
        started_at=first_at,
        last_attempt_at=now,
        blocked_until=now if failed_attempts > 1 else None,
        lockouts=failed_attempts - 1,
    )
    blocked_until = after_attempt(RETRY_BACKOFF, run, now).blocked_until
    assert blocked_until is not None
    if retry_after_seconds is not None:
        asked = now + min(timedelta(seconds=retry_after_seconds), RETRY_BACKOFF.max_backoff)
        blocked_until = max(blocked_until, asked)
    return blocked_until
