"""Queries of the notification delivery log."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from touchline.models import NotificationDelivery


def recent_deliveries(
    session: Session, workspace_id: uuid.UUID, user_id: uuid.UUID, limit: int
) -> Sequence[NotificationDelivery]:
    return session.scalars(
        select(NotificationDelivery)
        .where(NotificationDelivery.workspace_id == workspace_id, NotificationDelivery.user_id == user_id)
        .order_by(NotificationDelivery.id.desc())
        .limit(limit)
    ).all()


def browser_after(
    session: Session, workspace_id: uuid.UUID, user_id: uuid.UUID, after_id: int, limit: int = 50
) -> Sequence[NotificationDelivery]:
    """The user's browser notifications after `after_id`, oldest first (the stream's next events)."""
    return session.scalars(
        select(NotificationDelivery)
        .where(
            NotificationDelivery.workspace_id == workspace_id,
            NotificationDelivery.user_id == user_id,
            NotificationDelivery.channel == "browser",
            NotificationDelivery.id > after_id,
        )
        .order_by(NotificationDelivery.id)
        .limit(limit)
    ).all()


def latest_browser_id(session: Session, workspace_id: uuid.UUID, user_id: uuid.UUID) -> int:
    latest = session.scalar(
        select(func.max(NotificationDelivery.id)).where(
            NotificationDelivery.workspace_id == workspace_id,
            NotificationDelivery.user_id == user_id,
            NotificationDelivery.channel == "browser",
        )
    )
    return int(latest or 0)


def due_ids(session: Session, now: datetime, limit: int = 200) -> list[int]:
    return list(
        session.scalars(
            select(NotificationDelivery.id)
            .where(NotificationDelivery.status == "pending", NotificationDelivery.next_attempt_at <= now)
            .order_by(NotificationDelivery.next_attempt_at)
            .limit(limit)
        )
    )


def coalescing_row(
    session: Session,
    user_id: uuid.UUID,
    channel: str,
    outbound_id: uuid.UUID,
    kind: str,
    since: datetime,
) -> NotificationDelivery | None:
    """The notification a repeated event joins: same user, channel, email and kind, made since `since`."""
    return session.scalar(
        select(NotificationDelivery)
        .where(
            NotificationDelivery.user_id == user_id,
            NotificationDelivery.channel == channel,
            NotificationDelivery.outbound_email_id == outbound_id,
            NotificationDelivery.kind == kind,
            NotificationDelivery.created_at >= since,
        )
        .order_by(NotificationDelivery.id.desc())
        .limit(1)
    )
