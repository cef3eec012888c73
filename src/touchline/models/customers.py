"""Customers: companies with their email domains, endusers (contacts) at them, and the typed custom
fields a workspace defines for both."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from touchline.models.base import Base, CreatedMixin, IdMixin, UTCDateTime
from touchline.models.workspace import User


class Company(IdMixin, CreatedMixin, Base):
    __tablename__ = "companies"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    account_owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_touch_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    domains: Mapped[list[CompanyDomain]] = relationship(
        back_populates="company",
        cascade="all, delete-orphan",
        order_by="CompanyDomain.domain",
        lazy="selectin",
    )
    account_owner: Mapped[User | None] = relationship(lazy="joined")


class CompanyDomain(IdMixin, Base):
    __tablename__ = "company_domains"
    # A domain names one company per workspace, so domain matching is never ambiguous.
    __table_args__ = (UniqueConstraint("workspace_id", "domain"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    company_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    domain: Mapped[str] = mapped_column(String(253))

    company: Mapped[Company] = relationship(back_populates="domains")


class Contact(IdMixin, CreatedMixin, Base):
    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("workspace_id", "email"),
        Index("ix_contacts_workspace_company", "workspace_id", "company_id"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    company_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"))
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_touch_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set by the enduser's unsubscribe link; bulk and sequence emails skip them while it is set.
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set by a hard bounce; later sends skip the address with this reason until an admin clears it.
    undeliverable_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    undeliverable_reason: Mapped[str | None] = mapped_column(Text)

    company: Mapped[Company | None] = relationship(lazy="joined")


class CustomFieldDefinition(IdMixin, CreatedMixin, Base):
    """One custom field of companies or of contacts: its key (`company.custom.<key>` in templates and
    filters), the label people see, and the type every stored value has (text, number or date)."""

    __tablename__ = "custom_field_definitions"
    __table_args__ = (UniqueConstraint("workspace_id", "kind", "key"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
