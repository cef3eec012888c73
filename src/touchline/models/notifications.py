"""Telling senders what came of their emails: each user's notification settings, and the delivery log.

A `NotificationSetting` says which kinds of event (open, click, reply, bounce) reach the user by which
channel (the browser, email, a Slack-compatible webhook, a signed generic webhook); the webhook URLs
and the signing secret are stored encrypted. A `NotificationDelivery` is one notification on one
channel: its status, attempts and errors, and how many repeated events it stands for.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from touchline.models.base import Base, IdMixin, UTCDateTime, utcnow

DELIVERY_STATUSES: Final = ("pending", "sent", "failed")


class NotificationSetting(IdMixin, Base):
    """One user's notification settings; a user without a row has the defaults."""

    __tablename__ = "notification_settings"

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    kinds_by_channel: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """{"browser": ["open", "click", ...], "email": [...], "slack": [...], "webhook": [...]}."""
    slack_url_encrypted: Mapped[str | None] = mapped_column(Text)
    webhook_url_encrypted: Mapped[str | None] = mapped_column(Text)
    webhook_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    coalesce_minutes: Mapped[int] = mapped_column(Integer, default=10)
    """Repeated events of one kind for one email within this window make one notification."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NotificationDelivery(Base):
    """One notification on one channel. The integer id orders a user's notifications: the browser
    stream's cursor (Last-Event-ID)."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        Index("ix_notification_deliveries_user_channel", "user_id", "channel", "id"),
        Index("ix_notification_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(10))  # browser | email | slack | webhook
    kind: Mapped[str] = mapped_column(String(10))  # open | click | reply | bounce | test
    outbound_email_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("outbound_emails.id", ondelete="CASCADE")
    )
    """The sent email it is about; None for a test notification."""
    subject: Mapped[str] = mapped_column(String(998), default="")
    recipient: Mapped[str] = mapped_column(String(320), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    """When the latest event it stands for happened."""
    status: Mapped[str] = mapped_column(String(10), default="pending")  # one of DELIVERY_STATUSES
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """Pending: when it may be tried (again); an attempt under way moves it ahead as its lease."""
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    coalesced_count: Mapped[int] = mapped_column(Integer, default=1)
    """How many events it stands for: repeats within the user's window add to it."""
