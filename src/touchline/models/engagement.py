"""What happened to the emails touchline sent: the links it issued for tracking, and every event.

A tracked email gets one `TrackedLink` per tracked link of its HTML part, one for its open pixel and
one for its hidden honeypot link; each carries an opaque random token, the only thing its URL holds.
Every open, click, honeypot hit, reply, automatic reply and bounce is kept as an `EngagementEvent`;
those likely made by machines keep the reason (`machine_reason`), and are never dropped.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, PrimaryKeyConstraint, String, Text
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
    # Every read of events names the sent email. Not indexed by workspace: each tracking hit would
    # pay for that entry in its commit, and only deleting a workspace would use it.
    __table_args__ = (Index("ix_engagement_events_outbound_at", "outbound_email_id", "occurred_at"),)

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


class EmailEngagement(IdMixin, Base):
    """The Email Engagement record of one sent email (SPEC §7): who sent it to whom, from what, and its
    rates, counts, bounce and first and last event. Made when the email is recorded sent and brought
    up to date from all its events by the refresh job."""

    __tablename__ = "email_engagements"
    __table_args__ = (
        Index("ix_email_engagements_workspace_sent", "workspace_id", "sent_at"),
        Index("ix_email_engagements_template", "workspace_id", "template_id"),
        Index("ix_email_engagements_sequence", "workspace_id", "sequence_id", "sequence_step"),
        Index("ix_email_engagements_bulk", "bulk_id"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    outbound_email_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("outbound_emails.id", ondelete="CASCADE"), unique=True
    )
    sender_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    """Who composed the email: members see the records of their own emails, as in the outbox."""
    contact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    """The first enduser in To: every outcome is credited to them, whoever acted."""
    recipient_address: Mapped[str] = mapped_column(String(320))
    company_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"))
    template_id: Mapped[uuid.UUID | None] = mapped_column()
    template_name: Mapped[str | None] = mapped_column(String(200))
    template_version: Mapped[int | None] = mapped_column(Integer)
    sequence_id: Mapped[uuid.UUID | None] = mapped_column()
    sequence_step: Mapped[int | None] = mapped_column(Integer)
    bulk_id: Mapped[uuid.UUID | None] = mapped_column()
    variant: Mapped[str] = mapped_column(String(50), default="")
    track_opens: Mapped[bool] = mapped_column(Boolean)
    track_clicks: Mapped[bool] = mapped_column(Boolean)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    open_rate: Mapped[int | None] = mapped_column(Integer)
    """100 opened (a click or a reply counts), 0 not, None: open tracking was off."""
    click_rate: Mapped[int | None] = mapped_column(Integer)
    reply_rate: Mapped[int] = mapped_column(Integer, default=0)
    human_open_rate: Mapped[int | None] = mapped_column(Integer)
    """100 a person opened it; None unknown (tracking off, or only machines opened it); 0 nobody did."""
    human_click_rate: Mapped[int | None] = mapped_column(Integer)
    opens: Mapped[int] = mapped_column(Integer, default=0)
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    human_opens: Mapped[int] = mapped_column(Integer, default=0)
    human_clicks: Mapped[int] = mapped_column(Integer, default=0)
    replies: Mapped[int] = mapped_column(Integer, default=0)
    auto_replies: Mapped[int] = mapped_column(Integer, default=0)
    bounces: Mapped[int] = mapped_column(Integer, default=0)
    bounce: Mapped[str | None] = mapped_column(String(10))
    """The worst bounce: hard, blocked or soft (a delay is an event, not a bounce class)."""
    first_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


NO_ID: Final = uuid.UUID(int=0)
"""Stands for "none" in a rollup key: a primary key holds no NULL, and ON CONFLICT never matches one."""
ROLLUP_DIMENSIONS: Final = ("total", "template", "sequence", "step", "variant")
ROLLUP_GRAINS: Final = ("day", "month")


class EngagementRollup(Base):
    """The sums of the Email Engagement records sent in one UTC day or month, per creator and sender,
    for one grouping dimension: `total` (no key), `template` and `sequence` (`key_id`), `step`
    (`key_id` and `key_step`) or `variant` (`key_text`). Every record counts once in each of the ten
    (dimension, grain) slices. Changed in the transaction that changes the records (by difference),
    so it is exactly as fresh as they are; analytics read it instead of the records when the filter
    allows (outbound.analytics.rollup)."""

    __tablename__ = "engagement_rollups"
    __table_args__ = (
        PrimaryKeyConstraint(
            "workspace_id",
            "dimension",
            "grain",
            "period_start",
            "created_by",
            "sender_user_id",
            "key_id",
            "key_step",
            "key_text",
            name="pk_engagement_rollups",
        ),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    dimension: Mapped[str] = mapped_column(String(10))  # one of ROLLUP_DIMENSIONS
    grain: Mapped[str] = mapped_column(String(5))  # day | month
    period_start: Mapped[date] = mapped_column(Date)
    """The UTC day, or the first day of the UTC month, the records were sent in."""
    created_by: Mapped[uuid.UUID] = mapped_column()
    """Members see the records of their own emails: the records' creator (NO_ID for none). Not a
    foreign key: a deleted user's rows keep their id, and readers treat unknown ids as none."""
    sender_user_id: Mapped[uuid.UUID] = mapped_column()
    key_id: Mapped[uuid.UUID] = mapped_column()
    key_step: Mapped[int] = mapped_column(Integer)  # -1 for none
    key_text: Mapped[str] = mapped_column(String(50))
    sent: Mapped[int] = mapped_column(Integer, default=0)
    open_tracked: Mapped[int] = mapped_column(Integer, default=0)
    opened: Mapped[int] = mapped_column(Integer, default=0)
    human_open_known: Mapped[int] = mapped_column(Integer, default=0)
    human_opened: Mapped[int] = mapped_column(Integer, default=0)
    click_tracked: Mapped[int] = mapped_column(Integer, default=0)
    clicked: Mapped[int] = mapped_column(Integer, default=0)
    human_click_known: Mapped[int] = mapped_column(Integer, default=0)
    human_clicked: Mapped[int] = mapped_column(Integer, default=0)
    replied: Mapped[int] = mapped_column(Integer, default=0)
    bounced: Mapped[int] = mapped_column(Integer, default=0)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    template_name: Mapped[str | None] = mapped_column(String(200))
    """The greatest template name sent with (a deleted template keeps it as its label)."""
