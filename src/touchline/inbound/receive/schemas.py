"""API models for the log address, the unassigned list and refused attempts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from touchline.inbound.receive.service import LogResult
from touchline.inbound.schemas import EmailOut
from touchline.models import Company, Email
from touchline.models.inbound import InboundRefusal


class CompanyRef(BaseModel):
    id: uuid.UUID
    name: str

    @classmethod
    def of(cls, row: Company) -> CompanyRef:
        return cls(id=row.id, name=row.name)


class UnassignedEmailOut(EmailOut):
    """A logged email nobody's participants matched, with the companies its forwarded content suggests."""

    suggested_companies: list[CompanyRef]
    forwarded_participants: list[str] = Field(
        description="Addresses found inside a forwarded conversation (attached or inline)"
    )

    @classmethod
    def of_unassigned(cls, row: Email, suggestions: list[Company]) -> UnassignedEmailOut:
        forwarded = (row.decision or {}).get("forwarded") or {}
        return cls(
            **EmailOut.of(row).model_dump(),
            suggested_companies=[CompanyRef.of(company) for company in suggestions],
            forwarded_participants=[str(a) for a in forwarded.get("participants", [])],
        )


class UnassignedEmailDetailOut(UnassignedEmailOut):
    text_body: str | None
    html_body: str | None
    attachments: list[dict[str, Any]]
    log: list[dict[str, Any]] = Field(description="Who logged it, when, through which channel, and DKIM")


class AssignmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    company_ids: list[uuid.UUID] = Field(default_factory=list, max_length=100)
    contact_ids: list[uuid.UUID] = Field(default_factory=list, max_length=100)


class LoggedOut(BaseModel):
    """The outcome of a message posted to the HTTP inbound endpoint."""

    outcome: str
    email_id: uuid.UUID | None
    created: bool
    unassigned: bool
    suggested_company_ids: list[str]
    detail: str

    @classmethod
    def of(cls, result: LogResult) -> LoggedOut:
        return cls(
            outcome=result.outcome,
            email_id=result.email_id,
            created=result.created,
            unassigned=result.unassigned,
            suggested_company_ids=list(result.suggested_company_ids),
            detail=result.text,
        )


class RefusalOut(BaseModel):
    id: uuid.UUID
    created_at: datetime
    channel: str
    stage: str
    code: str
    reason: str
    envelope_sender: str | None
    header_from: str
    subject: str
    message_id: str | None
    remote: str
    size: int | None
    dkim: dict[str, Any]

    @classmethod
    def of(cls, row: InboundRefusal) -> RefusalOut:
        return cls(
            id=row.id,
            created_at=row.created_at,
            channel=row.channel,
            stage=row.stage,
            code=row.code,
            reason=row.reason,
            envelope_sender=row.envelope_sender,
            header_from=row.header_from,
            subject=row.subject,
            message_id=row.message_id,
            remote=row.remote,
            size=row.size,
            dkim=dict(row.dkim or {}),
        )


class InboundCredentialsOut(BaseModel):
    """Where to send mail for this workspace: the log address, and the HTTP endpoint with its secret."""

    log_address: str
    http_endpoint: str
    inbound_secret: str
    secret_header: str
