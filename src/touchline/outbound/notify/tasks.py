"""Notification jobs: recording the engagement refresh's notices, delivering them, and the every-minute
retry of due deliveries. No session is held while a webhook or the relay is being talked to."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy.orm import Session, sessionmaker

from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.kit.errors import InvalidInputError
from touchline.kit.net import UnresolvableHostError
from touchline.outbound.notify import ENGAGEMENT_JOB, channels, messages, repository, service, signature
from touchline.outbound.notify.channels import ChannelError
from touchline.outbound.notify.service import Attempt, Notice
from touchline.worker import JobContext, enqueue, job
from touchline.workspace.permissions import Actor

log = logging.getLogger(__name__)

DELIVER_JOB: Final = "notify.deliver"
"""Delivers the notifications it names (kwargs: delivery_ids, list of int); sent after commit."""
RETRY_JOB: Final = "notify.retry_due"

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def record_and_deliver(
    sessions: sessionmaker[Session],
    box: SecretBox,
    settings: Settings,
    workspace_id: uuid.UUID,
    user_id: uuid.UUID,
    notices: list[Notice],
    *,
    clock: Clock = _now,
) -> list[int]:
    """Records the notices (committed before anything is sent) and attempts the new deliveries."""
    with session_scope(sessions) as session:
        created = service.record_notices(session, settings, workspace_id, user_id, notices, clock())
    for delivery_id in created:
        try:
            attempt(sessions, box, settings, delivery_id, clock=clock)
        except Exception:
            # The notices are stored: a retry of this job would record them twice. The delivery's
            # lease runs out and the retry sweep attempts it again.
            log.exception("notification delivery %s failed unexpectedly", delivery_id)
    return created


def attempt(
    sessions: sessionmaker[Session],
    box: SecretBox,
    settings: Settings,
    delivery_id: int,
    *,
    clock: Clock = _now,
) -> str | None:
    """One attempt at a due pending delivery; returns the status it is left in (None: not this
    attempt's to make)."""
    with session_scope(sessions) as session:
        taken = service.claim(session, box, delivery_id, clock())
    if taken is None:
        return None
    try:
        _send(taken, settings, clock)
    except ChannelError as error:
        with session_scope(sessions) as session:
            return service.record_failure(
                session,
                delivery_id,
                error.reason,
                clock(),
                temporary=error.temporary,
                retry_after_seconds=error.retry_after_seconds,
            )
    with session_scope(sessions) as session:
        service.record_sent(session, delivery_id, clock())
    return "sent"


def _send(taken: Attempt, settings: Settings, clock: Clock) -> None:
    if taken.channel == "email":
        if not taken.address:
            raise ChannelError("the user has no address", temporary=False)
        channels.send_email(settings, taken.address, taken.notification, clock())
        return
    if not taken.url:
        raise ChannelError(f"no {taken.channel} URL is set", temporary=False)
    try:
        # Checked again at every attempt: the name may lead somewhere else now.
        target = channels.check_webhook_url(taken.url, channels.webhook_policy(settings))
    except UnresolvableHostError as error:
        raise ChannelError(str(error), temporary=True) from error
    except InvalidInputError as error:
        raise ChannelError(str(error), temporary=False) from error
    if taken.channel == "slack":
        channels.post(target, messages.slack_payload(taken.notification), {})
        return
    body = messages.webhook_payload(taken.notification)
    timestamp = int(clock().timestamp())
    channels.post(target, body, signature.signed_headers(taken.secret, timestamp, body))


def retry_due(
    sessions: sessionmaker[Session], box: SecretBox, settings: Settings, *, clock: Clock = _now
) -> dict[int, str | None]:
    with session_scope(sessions) as session:
        due = repository.due_ids(session, clock())
    return {delivery_id: attempt(sessions, box, settings, delivery_id, clock=clock) for delivery_id in due}


@job(ENGAGEMENT_JOB, retries=3, retry_delay=5)
def notify_engagement(
    context: JobContext, *, workspace_id: str, user_id: str, notices: list[dict[str, Any]]
) -> None:
    parsed = []
    for raw in notices:
        try:
            parsed.append(Notice.of(raw))
        except (KeyError, ValueError) as error:
            log.warning("notice %r skipped: %s", raw, error)
    record_and_deliver(
        context.sessions,
        SecretBox(context.settings.secret_keys),
        context.settings,
        uuid.UUID(workspace_id),
        uuid.UUID(user_id),
        parsed,
    )


@job(DELIVER_JOB, retries=0)
def deliver_job(context: JobContext, *, delivery_ids: list[int]) -> None:
    box = SecretBox(context.settings.secret_keys)
    for delivery_id in delivery_ids:
        attempt(context.sessions, box, context.settings, delivery_id)


@job(RETRY_JOB, retries=0, every_minutes=1)
def retry_due_job(context: JobContext) -> None:
    """Failed attempts are tried again when their backoff ends, and deliveries whose worker died when
    their lease ends."""
    started = time.monotonic()
    outcomes = retry_due(context.sessions, SecretBox(context.settings.secret_keys), context.settings)
    if outcomes:
        log.info("%d notification deliveries attempted in %.1f s", len(outcomes), time.monotonic() - started)


def send_test(session: Session, actor: Actor, settings: Settings, now: datetime) -> dict[str, int]:
    """Records a test notification for the caller and sends the delivery job of its channels that
    leave touchline after the commit; returns the new delivery's id by channel."""
    created = service.record_test(session, actor, settings, now)
    leaving = [delivery_id for channel, delivery_id in created.items() if channel != "browser"]
    if leaving:
        enqueue(session, DELIVER_JOB, delivery_ids=leaving)
    return created
