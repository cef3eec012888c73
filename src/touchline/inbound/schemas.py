"""API models for stored emails, their explanations, and timelines."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from touchline.models import Email


class ParticipantOut(BaseModel):
    address: str
    roles: list[str]
    outcome: str
    company: str | None
    detail: str
    created: bool


class ExplanationOut(BaseModel):
    """Why an email was kept (or logged): the rule that decided, and what each participant was."""

    action: str
    rule: str
    reason: str
    participants: list[ParticipantOut]


class EmailOut(BaseModel):
    id: uuid.UUID
    message_id: str | None
    subject: str
    date: datetime | None
    from_address: str | None
    from_name: str
    to: list[str]
    cc: list[str]
    snippet: str
    conversation_id: uuid.UUID | None
    source: str
    logged: bool
    unassigned: bool
    holders: list[str]
    folders: list[str]

    @classmethod
    def of(cls, row: Email) -> EmailOut:
        return cls(
            id=row.id,
            message_id=row.message_id,
            subject=row.subject,
            date=row.sent_at,
            from_address=row.from_address,
            from_name=row.from_name,
            to=list(row.to_addresses),
            cc=list(row.cc_addresses),
            snippet=row.snippet,
            conversation_id=row.conversation_id,
            source=row.source,
            logged=row.logged,
            unassigned=row.unassigned,
            holders=sorted({holder.user.email for holder in row.holders}),
            folders=sorted({holder.folder_name for holder in row.holders if holder.folder_name}),
        )


class EmailDetailOut(EmailOut):
    text_body: str | None
    html_body: str | None
    attachments: list[dict[str, Any]]
    companies: list[uuid.UUID]
    contacts: list[str]
    explanation: ExplanationOut


def explanation_of(row: Email) -> ExplanationOut:
    decision = row.decision or {}
    return ExplanationOut(
        action=str(decision.get("action", "")),
        rule=str(decision.get("rule", "")),
        reason=str(decision.get("reason", "")),
        participants=[ParticipantOut(**match) for match in decision.get("matches", [])],
    )


class ConversationOut(BaseModel):
    conversation_id: uuid.UUID | None
    subject: str
    last_at: datetime | None
    emails: list[EmailOut]


class TimelineOut(BaseModel):
    items: list[ConversationOut]
    total: int
    limit: int
    offset: int
