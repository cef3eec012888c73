"""What each way of sending has sent lately, for the providers' rolling limits (outbound.send.budget)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from touchline.models.base import Base, CreatedMixin, IdMixin, UTCDateTime


class SendBudget(CreatedMixin, Base):
    """One way of sending (``mailbox:<id>``, or ``relay``). Its row is locked while a send is reserved,
    so workers reserving for the same mailbox take turns."""

    __tablename__ = "send_budgets"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    mailbox_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("mailboxes.id", ondelete="CASCADE"), index=True
    )


class SendBudgetEntry(IdMixin, Base):
    """One message counted against its budget: when it was reserved and how many recipients it has.
    Entries older than the longest window are deleted as new ones are reserved."""

    __tablename__ = "send_budget_entries"
    __table_args__ = (Index("ix_send_budget_entries_budget_key_reserved_at", "budget_key", "reserved_at"),)

    budget_key: Mapped[str] = mapped_column(ForeignKey("send_budgets.key", ondelete="CASCADE"))
    reserved_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recipients: Mapped[int] = mapped_column(Integer)
