"""API models of Email Engagement records and events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from touchline.models import EmailEngagement, EngagementEvent, OutboundEmail

Bounce = Literal["hard", "soft", "blocked"]


class EngagementOut(BaseModel):
    email_id: uuid.UUID
    """The outbound email's id."""
    message_id: str
    subject: str
    sender_user_id: uuid.UUID | None
    first_recipient: str
    contact_id: uuid.UUID | None
    company_id: uuid.UUID | None
    template_id: uuid.UUID | None
    template: str | None
    template_version: int | None
    sequence_id: uuid.UUID | None
    step: int | None
    bulk_id: uuid.UUID | None
    variant: str
    track_opens: bool
    track_clicks: bool
    sent_at: datetime
    open_rate: int | None
    click_rate: int | None
    reply_rate: int
    human_open_rate: int | None
    human_click_rate: int | None
    opens: int
    clicks: int
    human_opens: int
    human_clicks: int
    replies: int
    auto_replies: int
    bounce: str | None
    events: int
    first_event_at: datetime | None
    last_event_at: datetime | None

    @classmethod
    def of(cls, record: EmailEngagement, row: OutboundEmail, events: int) -> EngagementOut:
        return cls(
            email_id=row.id,
            message_id=row.message_id,
            subject=row.subject,
            sender_user_id=record.sender_user_id,
            first_recipient=record.recipient_address,
            contact_id=record.contact_id,
            company_id=record.company_id,
            template_id=record.template_id,
            template=record.template_name,
            template_version=record.template_version,
            sequence_id=record.sequence_id,
            step=record.sequence_step,
            bulk_id=record.bulk_id,
            variant=record.variant,
            track_opens=record.track_opens,
            track_clicks=record.track_clicks,
            sent_at=record.sent_at,
            open_rate=record.open_rate,
            click_rate=record.click_rate,
            reply_rate=record.reply_rate,
            human_open_rate=record.human_open_rate,
            human_click_rate=record.human_click_rate,
            opens=record.opens,
            clicks=record.clicks,
            human_opens=record.human_opens,
            human_clicks=record.human_clicks,
            replies=record.replies,
            auto_replies=record.auto_replies,
            bounce=record.bounce,
            events=events,
            first_event_at=record.first_event_at,
            last_event_at=record.last_event_at,
        )


class EngagementPage(BaseModel):
    items: list[EngagementOut]
    next_cursor: str | None
    """Pass as `cursor` for the next page; None on the last."""


class EventOut(BaseModel):
    id: uuid.UUID
    kind: str
    occurred_at: datetime
    url: str | None
    """The link a click followed."""
    machine_reason: str | None
    """Why it is taken to be a machine's; None: a person's."""
    method: str | None
    email_id: uuid.UUID | None
    """The stored reply or automatic reply."""
    contact_id: uuid.UUID | None
    detail: dict[str, Any]

    @classmethod
    def of(cls, event: EngagementEvent, url: str | None) -> EventOut:
        return cls(
            id=event.id,
            kind=event.kind,
            occurred_at=event.occurred_at,
            url=url,
            machine_reason=event.machine_reason,
            method=event.method,
            email_id=event.email_id,
            contact_id=event.contact_id,
            detail=dict(event.detail or {}),
        )
