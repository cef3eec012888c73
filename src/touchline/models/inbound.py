"""The log address's records: messages accepted and waiting to be logged, and refused attempts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from touchline.models.base import Base, CreatedMixin, IdMixin, UTCDateTime


class InboundRefusal(IdMixin, CreatedMixin, Base):
    """One message (or envelope) the log address refused, with the reason given to the sender.

    The message itself is not kept: refusing means it does not enter the workspace. What is kept is
    enough for an admin to tell a misconfigured colleague from a stranger.
    """

    __tablename__ = "inbound_refusals"
    __table_args__ = (Index("ix_inbound_refusals_workspace_created", "workspace_id", "created_at"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(10))  # smtp | http
    # rcpt (envelope only) | data (whole message, before the reply) | spool (by the worker, after a 250)
    # rcpt (envelope only) | data (whole message, before the reply) | spool (by a worker, after a 250)
    stage: Mapped[str] = mapped_column(String(10))
    code: Mapped[str] = mapped_column(String(40))  # sender-not-user, envelope-not-user, dkim-required, ...
    reason: Mapped[str] = mapped_column(Text)  # the text the sender was given
    envelope_sender: Mapped[str | None] = mapped_column(String(320))
    header_from: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str | None] = mapped_column(String(998))
    remote: Mapped[str] = mapped_column(String(100), default="")  # the connecting client's address
    size: Mapped[int | None] = mapped_column(Integer)
    dkim: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SpooledMessage(IdMixin, CreatedMixin, Base):
    """A message the log address's SMTP server accepted (its 250 was sent once this row committed),
    waiting for a worker to log it. The worker deletes the row in the transaction that logs,
    refuses or quarantines the message, so a crash at any point leaves it here to be taken again.

    A worker claims rows by moving `claimed_until` forward and counting `attempts`; a claim that
    runs out (its worker died) makes the row claimable again, and a message that has used up its
    attempts is quarantined with why instead of being tried for ever.
    """

    __tablename__ = "inbound_spool"
    __table_args__ = (Index("ix_inbound_spool_claimed_created", "claimed_until", "created_at"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(10))  # smtp
    envelope_sender: Mapped[str | None] = mapped_column(String(320))
    remote: Mapped[str] = mapped_column(String(100), default="")
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    # The DKIM result when it was already verified on acceptance (the workspace requires a pass).
    dkim: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
