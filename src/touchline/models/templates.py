"""Stored email templates: what a team writes once and sends to many, alone, in bulk or in a sequence."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from touchline.models.base import Base, CreatedMixin, IdMixin, UTCDateTime, utcnow


class Template(IdMixin, CreatedMixin, Base):
    """A template's current text. `version` grows with every edit, and each outbound email records the
    version it was rendered from, so engagement can be read per version."""

    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    """None: the text part is derived from the rendered HTML."""
    track_opens: Mapped[bool] = mapped_column(Boolean, default=True)
    track_clicks: Mapped[bool] = mapped_column(Boolean, default=True)
    utm: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """UTM parameters (utm_source, utm_medium, utm_campaign, utm_content) added to its tracked links;
    values may hold merge fields. None: none."""
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
