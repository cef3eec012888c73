"""What the log address turned away: refused attempts, kept for admins to see."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from touchline.models.base import Base, CreatedMixin, IdMixin


class InboundRefusal(IdMixin, CreatedMixin, Base):
    """One message (or envelope) the log address refused, with the reason given to the sender.

    The message itself is not kept: refusing means it does not enter the workspace. What is kept is
    enough for an admin to tell a misconfigured colleague from a stranger.
    """

    __tablename__ = "inbound_refusals"
    __table_args__ = (Index("ix_inbound_refusals_workspace_created", "workspace_id", "created_at"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(10))  # smtp | http
    stage: Mapped[str] = mapped_column(String(10))  # rcpt (envelope only) | data (whole message)
    code: Mapped[str] = mapped_column(String(40))  # sender-not-user, envelope-not-user, dkim-required, ...
    reason: Mapped[str] = mapped_column(Text)  # the text the sender was given
    envelope_sender: Mapped[str | None] = mapped_column(String(320))
    header_from: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str | None] = mapped_column(String(998))
    remote: Mapped[str] = mapped_column(String(100), default="")  # the connecting client's address
    size: Mapped[int | None] = mapped_column(Integer)
    dkim: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
