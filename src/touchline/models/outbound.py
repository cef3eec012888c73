"""The outbox: every email a user sends through touchline, its recipients and what became of it.

Tracking and analytics build on these rows: an email names its sender, the mailbox (or the relay) it
left through, its template, bulk send, sequence step and variant, whether opens and clicks are
tracked, and its Message-ID; each recipient row names the contact and company it reached.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from touchline.models.base import Base, CreatedMixin, IdMixin, UTCDateTime, utcnow

OUTBOUND_STATUSES: Final = ("scheduled", "queued", "sending", "sent", "failed", "unknown", "cancelled")


class OutboundEmail(IdMixin, CreatedMixin, Base):
    __tablename__ = "outbound_emails"
    __table_args__ = (
        UniqueConstraint("workspace_id", "idempotency_key"),
        Index("ix_outbound_emails_workspace_created", "workspace_id", "created_at"),
        Index("ix_outbound_emails_status_due", "status", "scheduled_for"),
        Index("ix_outbound_emails_workspace_message_id", "workspace_id", "message_id"),
        Index("ix_outbound_emails_bulk", "bulk_id"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    """The user who composed it (and sees it in their outbox)."""
    sender_choice: Mapped[str] = mapped_column(String(320))
    """What From was chosen as: an address or `account-owner` (decided again when a scheduled email
    is edited)."""
    sender_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    """Whose address it leaves from, and who holds the sent copy."""
    from_address: Mapped[str] = mapped_column(String(320))
    from_name: Mapped[str] = mapped_column(String(200), default="")
    mailbox_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("mailboxes.id", ondelete="SET NULL"))
    via: Mapped[str] = mapped_column(String(20))  # mailbox | relay
    kind: Mapped[str] = mapped_column(String(20), default="personal", server_default="personal")
    """personal | reply | bulk | sequence: bulk and sequence emails carry the unsubscribe link and
    skip endusers who used it."""
    unsubscribe_url: Mapped[str | None] = mapped_column(Text)
    """The signed one-click unsubscribe URL its List-Unsubscribe header names (bulk and sequence)."""
    company_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"))
    subject: Mapped[str] = mapped_column(Text, default="")
    html_body: Mapped[str | None] = mapped_column(Text)
    text_body: Mapped[str] = mapped_column(Text, default="")
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[list[str]] = mapped_column(JSON, default=list)
    template_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    template_name: Mapped[str | None] = mapped_column(String(200))
    template_version: Mapped[int | None] = mapped_column(Integer)
    bulk_id: Mapped[uuid.UUID | None] = mapped_column()
    sequence_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    sequence_step: Mapped[int | None] = mapped_column(Integer)
    variant: Mapped[str] = mapped_column(String(50), default="")
    track_opens: Mapped[bool] = mapped_column(Boolean, default=False)
    track_clicks: Mapped[bool] = mapped_column(Boolean, default=False)
    utm: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """UTM parameters added to its tracked links, merge fields rendered when it was queued."""
    idempotency_key: Mapped[str] = mapped_column(String(200))
    message_id: Mapped[str] = mapped_column(String(998))
    raw_message: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The bytes as first handed over: every later attempt sends exactly these."""
    provider_message_id: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    notice: Mapped[str | None] = mapped_column(Text)
    """What the last editor was told (a From that fell back to the first choice)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claim_host: Mapped[str | None] = mapped_column(String(255))
    """The host name of the process holding the claim (with `claim_pid` and `claim_started`):
    a worker on the same host takes the claim over at once when that process is gone."""
    claim_pid: Mapped[int | None] = mapped_column(Integer)
    claim_started: Mapped[str | None] = mapped_column(String(200))
    """The holder's start mark (boot id, pid namespace, start time), so a reused pid is not it."""
    claim_abandoned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When a worker on the holder's host found the holder gone: the claim may be taken over before
    its lease runs out."""
    handed_over_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """Committed by the attempt holding the claim just before the provider may take the message
    (before an SMTP DATA's final dot, before an API's send request); cleared by each new attempt.
    Unset after a crash: the message never left, so sending it again is safe."""
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    email_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("emails.id", ondelete="SET NULL"))
    """The sent copy on the timelines, once stored."""

    recipients: Mapped[list[OutboundRecipient]] = relationship(
        back_populates="email",
        cascade="all, delete-orphan",
        order_by="OutboundRecipient.position",
        lazy="selectin",
    )


class OutboundRecipient(IdMixin, Base):
    """One To or Cc address of an outbound email, with the contact and company it reached."""

    __tablename__ = "outbound_recipients"
    __table_args__ = (
        UniqueConstraint("outbound_email_id", "position"),
        Index("ix_outbound_recipients_contact", "contact_id"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    outbound_email_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("outbound_emails.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(5))  # to | cc
    address: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    first_enduser: Mapped[bool] = mapped_column(Boolean, default=False)
    """The first To address that is a contact: whom tracking credits opens and clicks to."""
    contact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    company_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"))
    refused: Mapped[str | None] = mapped_column(Text)
    """The provider's reason when it refused this recipient and took the others."""

    email: Mapped[OutboundEmail] = relationship(back_populates="recipients")
