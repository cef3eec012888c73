"""Bulk sends: one template sent to the endusers that filters select, one email each or one to all.

The emails themselves are outbound emails that name their bulk send; a bulk send records what was
asked (From, template and version, mode, filters as written) and how queueing went, and each enduser
it left out with the reason.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from touchline.models.base import Base, CreatedMixin, IdMixin, UTCDateTime, utcnow

BULK_STATUSES: Final = ("queueing", "testing", "queued", "refused")


class BulkSend(IdMixin, CreatedMixin, Base):
    __tablename__ = "bulk_sends"
    __table_args__ = (Index("ix_bulk_sends_workspace_created", "workspace_id", "created_at"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    sender_choice: Mapped[str] = mapped_column(String(320))
    """An address or `account-owner`; each email's From is decided from it by the From rules."""
    template_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("templates.id", ondelete="SET NULL"))
    template_name: Mapped[str] = mapped_column(String(200))
    template_version: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(10))  # each | one
    filters: Mapped[list[str]] = mapped_column(JSON, default=list)
    """The filters as written (`company.custom.tier=gold`); all of them hold for every recipient."""
    contact_ids: Mapped[list[str] | None] = mapped_column(JSON)
    """A follow-up to an analytics cohort: only these endusers (ids as text) may be selected; None: any."""
    status: Mapped[str] = mapped_column(String(20))
    """queueing (its emails are being made), testing (its A/B test's first batch made, the rest
    waiting for the winner), queued (all made), refused (see error)."""
    error: Mapped[str | None] = mapped_column(Text)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    queued: Mapped[int] = mapped_column(Integer, default=0)
    """Endusers an email was made for (in mode one, several share an email)."""
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When its last email was made."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    track_opens: Mapped[bool | None] = mapped_column(Boolean)
    """The sender's choice for this send; None: the template's switch."""
    track_clicks: Mapped[bool | None] = mapped_column(Boolean)


class BulkSkip(IdMixin, Base):
    """An enduser a bulk send selected and made no email for, and why."""

    __tablename__ = "bulk_skips"
    __table_args__ = (UniqueConstraint("bulk_id", "contact_id"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    bulk_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bulk_sends.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    address: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(Text)
