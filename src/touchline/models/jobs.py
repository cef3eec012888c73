"""Jobs waiting to reach the queue: the outbox of `touchline.worker.enqueue`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from touchline.models.base import Base, CreatedMixin, IdMixin, UTCDateTime


class PendingJob(IdMixin, CreatedMixin, Base):
    """A job recorded in the transaction that asked for it, so that it is sent to the queue if and
    only if that transaction commits, even when the queue cannot be reached just then.

    After the commit the process that asked sends it at once and deletes the row; a row that is
    still here (the queue was down, the process died) is sent by the worker's drain. `claimed_until`
    keeps a second sender off a row while one is sending it; a claim that ran out makes the row
    claimable again.
    """

    __tablename__ = "pending_jobs"
    __table_args__ = (Index("ix_pending_jobs_claimed_created", "claimed_until", "created_at"),)

    name: Mapped[str] = mapped_column(String(100))
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
