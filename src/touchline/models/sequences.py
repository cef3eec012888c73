"""Sequences (enduser playbooks): ordered template steps with delays, the endusers enrolled in them,
and one record per step run for each enrolment."""

from __future__ import annotations

import uuid
from datetime import datetime, time
from typing import Final

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, Time, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from touchline.models.base import Base, CreatedMixin, IdMixin, UTCDateTime, utcnow
from touchline.models.customers import Contact

ENROLMENT_STATES: Final = ("active", "paused", "finished", "exited", "unenrolled", "failed")
RUNNING_STATES: Final = ("active", "paused")
"""An enduser is in a sequence at most once while an enrolment is in one of these states."""
STEP_OUTCOMES: Final = ("queued", "skipped", "unsubscribed", "failed")


class Sequence(IdMixin, CreatedMixin, Base):
    """A playbook: its steps leave From `sender` as `owner` sends, inside a daily send window in
    `time_zone` (an enduser's own `time_zone` custom field wins when it names a known zone)."""

    __tablename__ = "sequences"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    sender: Mapped[str] = mapped_column(String(320))
    """The From choice: an address or `account-owner`, decided by the From rules at every step."""
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    """The user the steps are sent as (whose From choices and permissions apply)."""
    exit_on_reply: Mapped[bool] = mapped_column(Boolean, default=True)
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    window_start: Mapped[time] = mapped_column(Time)
    window_end: Mapped[time] = mapped_column(Time)
    business_days_only: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | paused
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    steps: Mapped[list[SequenceStep]] = relationship(
        back_populates="sequence",
        cascade="all, delete-orphan",
        order_by="SequenceStep.position",
        lazy="selectin",
    )


class SequenceStep(IdMixin, Base):
    """Step `position` (from 1): its template leaves `delay_days` after the step before (business
    days when the sequence sends on business days only) when its condition holds."""

    __tablename__ = "sequence_steps"
    __table_args__ = (UniqueConstraint("sequence_id", "position"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    sequence_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    template_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("templates.id"), index=True)
    """A template a step uses cannot be deleted (the foreign key refuses it)."""
    delay_days: Mapped[int] = mapped_column(Integer, default=0)
    condition: Mapped[str] = mapped_column(Text, default="")
    """One condition a line, all of which must hold (compose/conditions.py); empty: always sent."""

    sequence: Mapped[Sequence] = relationship(back_populates="steps")


class Enrolment(IdMixin, Base):
    """One enduser going through a sequence: `current_step` is the position of the next step to run
    and `next_due_at` when it runs."""

    __tablename__ = "sequence_enrolments"
    __table_args__ = (
        Index(
            "uq_sequence_enrolments_running",
            "sequence_id",
            "contact_id",
            unique=True,
            sqlite_where=text("state IN ('active', 'paused')"),
            postgresql_where=text("state IN ('active', 'paused')"),
        ),
        Index("ix_sequence_enrolments_due", "state", "next_due_at"),
        Index("ix_sequence_enrolments_sequence", "sequence_id", "state"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    sequence_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    contact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(20), default="active")
    reason: Mapped[str | None] = mapped_column(Text)
    """Why it ended (a reply, an unsubscribe, a refused step, who unenrolled it)."""
    current_step: Mapped[int] = mapped_column(Integer, default=1)
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_step_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enrolled_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    contact: Mapped[Contact] = relationship(lazy="joined")


class StepRun(IdMixin, Base):
    """What running one step for one enrolment did; at most one per step, so no step runs twice."""

    __tablename__ = "sequence_step_runs"
    __table_args__ = (UniqueConstraint("enrolment_id", "position"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    enrolment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sequence_enrolments.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    step_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sequence_steps.id", ondelete="SET NULL"))
    outcome: Mapped[str] = mapped_column(
        String(20)
    )  # queued | skipped | unsubscribed | undeliverable | failed
    outbound_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("outbound_emails.id", ondelete="SET NULL"), index=True
    )
    reason: Mapped[str | None] = mapped_column(Text)
    ran_at: Mapped[datetime] = mapped_column(UTCDateTime)
