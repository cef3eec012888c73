"""API models of the outbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, cast

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from touchline.models import OutboundEmail

Kind = Literal["personal", "reply", "bulk", "sequence"]
Status = Literal["scheduled", "queued", "sending", "sent", "failed", "unknown", "cancelled"]


class RecipientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(min_length=3, max_length=320)
    name: str = Field("", max_length=200)


class UtmIn(BaseModel):
    """UTM parameters added to the email's tracked links (never replacing a link's own); merge fields
    such as `{{ company.name }}` are filled in for the recipient when it is queued."""

    model_config = ConfigDict(extra="forbid")

    utm_source: str | None = Field(None, max_length=200)
    utm_medium: str | None = Field(None, max_length=200)
    utm_campaign: str | None = Field(None, max_length=200)
    utm_content: str | None = Field(None, max_length=200)


class SendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sender: str = Field(
        alias="from",
        max_length=320,
        description="Your address, a colleague's public address, or `account-owner` (company sends)",
    )
    to: list[RecipientIn] = Field(min_length=1, max_length=100)
    cc: list[RecipientIn] = Field(default_factory=list, max_length=100)
    subject: str = Field("", max_length=998, description="Needed unless template_id is given")
    html: str = Field("", max_length=1_000_000, description="Needed unless template_id is given")
    text: str | None = Field(None, max_length=1_000_000, description="Derived from the HTML when absent")
    template_id: uuid.UUID | None = Field(
        None, description="Render subject and bodies from this stored template for the first To recipient"
    )
    send_at: AwareDatetime | None = Field(None, description="Schedule it; editable until it leaves")
    in_reply_to_email_id: uuid.UUID | None = Field(
        None, description="A stored email this one answers: it is threaded with its conversation"
    )
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Sending the same key again returns the email made the first time",
    )
    track_opens: bool | None = Field(
        None, description="Track opens; default: the template's switch, else the workspace's setting"
    )
    track_clicks: bool | None = Field(
        None, description="Track clicks; default: the template's switch, else the workspace's setting"
    )
    utm: UtmIn | None = Field(None, description="UTM parameters; each one given replaces the template's")


class ScheduledChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sender: str | None = Field(None, alias="from", max_length=320)
    to: list[RecipientIn] | None = Field(None, min_length=1, max_length=100)
    cc: list[RecipientIn] | None = Field(None, max_length=100)
    subject: str | None = Field(None, max_length=998)
    html: str | None = Field(None, min_length=1, max_length=1_000_000)
    text: str | None = Field(None, max_length=1_000_000)
    send_at: AwareDatetime | None = None


class RecipientOut(BaseModel):
    kind: Literal["to", "cc"]
    address: str
    name: str
    first_enduser: bool
    contact_id: uuid.UUID | None
    company_id: uuid.UUID | None
    refused: str | None


class OutboundOut(BaseModel):
    id: uuid.UUID
    status: Status
    message_id: str
    sender: str = Field(serialization_alias="from")
    sender_choice: str
    via: Literal["mailbox", "relay"]
    mailbox_id: uuid.UUID | None
    created_by: uuid.UUID | None
    sender_user_id: uuid.UUID | None
    company_id: uuid.UUID | None
    kind: Kind
    to: list[str]
    cc: list[str]
    first_recipient: str | None
    recipients: list[RecipientOut]
    subject: str
    template_id: uuid.UUID | None
    template: str | None
    template_version: int | None
    bulk_id: uuid.UUID | None
    sequence_id: uuid.UUID | None
    sequence_step: int | None
    variant: str
    track_opens: bool
    track_clicks: bool
    provider_message_id: str | None
    idempotency_key: str
    error: str | None
    notice: str | None = Field(description="What the last edit changed on its own (a From that fell back)")
    attempts: int
    created_at: datetime
    scheduled_for: datetime | None
    sent_at: datetime | None
    updated_at: datetime
    email_id: uuid.UUID | None = Field(description="The sent copy on the timelines")

    @classmethod
    def of(cls, row: OutboundEmail) -> OutboundOut:
        recipients = [
            RecipientOut(
                kind="to" if r.kind == "to" else "cc",
                address=r.address,
                name=r.name,
                first_enduser=r.first_enduser,
                contact_id=r.contact_id,
                company_id=r.company_id,
                refused=r.refused,
            )
            for r in row.recipients
        ]
        return cls(
            id=row.id,
            status=row.status,
            message_id=row.message_id,
            sender=row.from_address,
            sender_choice=row.sender_choice,
            via="relay" if row.via == "relay" else "mailbox",
            mailbox_id=row.mailbox_id,
            created_by=row.created_by,
            sender_user_id=row.sender_user_id,
            company_id=row.company_id,
            kind=cast(Kind, row.kind),
            to=[r.address for r in recipients if r.kind == "to"],
            cc=[r.address for r in recipients if r.kind == "cc"],
            first_recipient=next((r.address for r in recipients if r.first_enduser), None),
            recipients=recipients,
            subject=row.subject,
            template_id=row.template_id,
            template=row.template_name,
            template_version=row.template_version,
            bulk_id=row.bulk_id,
            sequence_id=row.sequence_id,
            sequence_step=row.sequence_step,
            variant=row.variant,
            track_opens=row.track_opens,
            track_clicks=row.track_clicks,
            provider_message_id=row.provider_message_id,
            idempotency_key=row.idempotency_key,
            error=row.error,
            notice=row.notice,
            attempts=row.attempts,
            created_at=row.created_at,
            scheduled_for=row.scheduled_for,
            sent_at=row.sent_at,
            updated_at=row.updated_at,
            email_id=row.email_id,
        )
