"""What happened to the emails touchline sent: the links it issued for tracking, and every event.

A tracked email gets one `TrackedLink` per tracked link of its HTML part, one for its open pixel and
one for its hidden honeypot link; each carries an opaque random token, the only thing its URL holds.
Every open, click, honeypot hit, reply, automatic reply and bounce is kept as an `EngagementEvent`;
those likely made by machines keep the reason (`machine_reason`), and are never dropped.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from touchline.models.base import Base, IdMixin, UTCDateTime, utcnow

LINK_KINDS: Final = ("open", "click", "honeypot")
EVENT_KINDS: Final = ("open", "click", "honeypot", "reply", "auto_reply", "bounce")


class TrackedLink(IdMixin, Base):
    """A token touchline issued for one sent email: its pixel, one of its links, or its honeypot."""

    __tablename__ = "tracked_links"
    __table_args__ = (Index("ix_tracked_links_outbound", "outbound_email_id"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    outbound_email_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("outbound_emails.id", ondelete="CASCADE"))
    token: Mapped[str] = mapped_column(String(64), unique=True)
    """At least 96 random bits, URL-safe; maps to this row and nothing else."""
    kind: Mapped[str] = mapped_column(String(10))  # open | click | honeypot
    url: Mapped[str | None] = mapped_column(Text)
    """Where a click redirects: the link as written in the email, with its UTM parameters added."""
    position: Mapped[int] = mapped_column(Integer, default=0)
    """The link's place among the email's tracked links (0 for the pixel and the honeypot)."""


class EngagementEvent(IdMixin, Base):
    """One thing that happened to a sent email, as it arrived."""

    __tablename__ = "engagement_events"
    __table_args__ = (
        Index("ix_engagement_events_outbound_at", "outbound_email_id", "occurred_at"),
        Index("ix_engagement_events_workspace_at", "workspace_id", "occurred_at"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    outbound_email_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("outbound_emails.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(12))  # one of EVENT_KINDS
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    link_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tracked_links.id", ondelete="SET NULL"))
    """The pixel, link or honeypot hit (opens, clicks, honeypot hits)."""
    method: Mapped[str | None] = mapped_column(String(8))
    """The HTTP method of a tracking request (GET or HEAD)."""
    user_agent: Mapped[str | None] = mapped_column(String(500))
    machine_reason: Mapped[str | None] = mapped_column(String(300))
    """Why the event is taken to be a machine's (a scanner's user agent, a HEAD request, an Apple
    Private Relay address, within 2 s of sending, ...); None: taken as a person's. The client's
    address itself is not kept: only this reason, decided when the request arrives."""
    email_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("emails.id", ondelete="SET NULL"))
    """The stored inbound email of a reply or an automatic reply."""
    contact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    """Who acted, when known (a reply's sender, a bounce's recipient)."""
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Kind-specific facts: a bounce's class, status, recipient and diagnostic."""
