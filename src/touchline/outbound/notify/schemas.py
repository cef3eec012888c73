"""API models for a user's notification settings and delivery log."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from touchline.models import NotificationDelivery
from touchline.outbound.notify.service import NotificationSettings


class ChannelKinds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    browser: list[str] = Field(default_factory=list, description="Kinds shown in the browser")
    email: list[str] = Field(default_factory=list, description="Kinds emailed to you through the relay")
    slack: list[str] = Field(default_factory=list, description="Kinds posted to the Slack webhook")
    webhook: list[str] = Field(default_factory=list, description="Kinds posted, signed, to the webhook")


class NotificationSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: ChannelKinds = Field(description="Which kinds (open, click, reply, bounce) reach each channel")
    slack_url: str | None = Field(
        default=None, description="A Slack-compatible incoming webhook URL; null keeps it, empty removes it"
    )
    webhook_url: str | None = Field(
        default=None, description="The generic webhook URL (https); null keeps it, empty removes it"
    )
    coalesce_minutes: int | None = Field(
        default=None,
        description="Repeats of one kind for one email within this many minutes make one notification",
    )
    generate_secret: bool = Field(
        default=False, description="Make a new webhook signing secret; it is in this answer only"
    )


class NotificationSettingsOut(BaseModel):
    channels: ChannelKinds
    slack_host: str | None = Field(description="The host of the Slack webhook URL, when one is set")
    webhook_host: str | None = Field(description="The host of the webhook URL, when one is set")
    webhook_secret_set: bool
    webhook_secret: str | None = Field(
        default=None, description="The new signing secret, only in the answer that generated it"
    )
    coalesce_minutes: int
    email_available: bool
    email_unavailable_reason: str | None

    @classmethod
    def of(cls, settings: NotificationSettings, secret: str | None = None) -> NotificationSettingsOut:
        kinds = settings.kinds_by_channel
        return cls(
            channels=ChannelKinds(**{channel: list(chosen) for channel, chosen in kinds.items()}),
            slack_host=settings.slack_host,
            webhook_host=settings.webhook_host,
            webhook_secret_set=settings.webhook_secret_set,
            webhook_secret=secret,
            coalesce_minutes=settings.coalesce_minutes,
            email_available=settings.email_available,
            email_unavailable_reason=settings.email_unavailable_reason,
        )


class DeliveryOut(BaseModel):
    id: int
    channel: str
    kind: str
    outbound_id: uuid.UUID | None
    subject: str
    recipient: str
    detail: str
    status: str = Field(description="pending, sent or failed")
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    coalesced_count: int = Field(description="How many events this notification stands for")

    @classmethod
    def of(cls, row: NotificationDelivery) -> DeliveryOut:
        return cls(
            id=row.id,
            channel=row.channel,
            kind=row.kind,
            outbound_id=row.outbound_email_id,
            subject=row.subject,
            recipient=row.recipient,
            detail=row.detail,
            status=row.status,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            last_error=row.last_error,
            created_at=row.created_at,
            sent_at=row.sent_at,
            coalesced_count=row.coalesced_count,
        )
