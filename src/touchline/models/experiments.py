"""A/B tests: a bulk send or a sequence step sent with two or more template variants, the metric that
decides between them, and the decision once made (SPEC §8).

Each enduser's variant is fixed by a stable hash of (experiment, enduser) and recorded on the outbound
email (`OutboundEmail.variant`, copied to its Email Engagement record), so the counts per variant are
read from the records.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from touchline.models.base import Base, CreatedMixin, IdMixin, UTCDateTime

EXPERIMENT_METRICS: Final = ("reply_rate", "human_click_rate", "open_rate")
EXPERIMENT_STATES: Final = ("running", "decided")


class Experiment(IdMixin, CreatedMixin, Base):
    __tablename__ = "experiments"
    __table_args__ = (
        Index("ix_experiments_workspace_created", "workspace_id", "created_at"),
        Index("ix_experiments_state", "state"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    bulk_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("bulk_sends.id", ondelete="CASCADE"))
    sequence_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    sequence_step: Mapped[int | None] = mapped_column(Integer)
    metric: Mapped[str] = mapped_column(String(20))
    """reply_rate, human_click_rate or open_rate (allowed with a warning: proxies inflate opens)."""
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """[{"label": "A", "template_id": ..., "template_name": ...}, ...]; the first is the control."""
    alpha: Mapped[float] = mapped_column(Float, default=0.05)
    min_sample: Mapped[int] = mapped_column(Integer)
    horizon: Mapped[int] = mapped_column(Integer)
    test_share: Mapped[float | None] = mapped_column(Float)
    """A bulk send's first batch: this share of its audience (by a stable hash) gets the variants;
    the rest get the winner. None: everyone takes part (a sequence step)."""
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """After this time an undecided test keeps the control (the horizon in time: a bulk send's
    first batch is sent at once, and its replies may never reach the horizon in sends)."""
    state: Mapped[str] = mapped_column(String(10), default="running")
    """running, or decided (by the test, by the horizon, or by an admin)."""
    winner: Mapped[str | None] = mapped_column(String(50))
    """The winning variant's label once decided."""
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(10))
    """test (a significant difference), horizon (none by the horizon: the control is kept) or user."""
    decided_by_user: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """What the decision rested on: metric, sends and successes per variant, statistic, bound,
    p-value, alpha and reason."""
