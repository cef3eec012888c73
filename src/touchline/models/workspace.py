"""Workspaces and who works in them: settings, roles, users, API tokens and the admin audit log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from touchline.kit.zones import DEFAULT_ZONE
from touchline.models.base import Base, CreatedMixin, IdMixin, UTCDateTime


class Workspace(IdMixin, CreatedMixin, Base):
    __tablename__ = "workspaces"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    # Bumped whenever anything the keep-or-ignore rules read changes, so cached directories reload.
    directory_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    settings: Mapped[WorkspaceSettings] = relationship(back_populates="workspace", uselist=False)


class WorkspaceSettings(Base):
    __tablename__ = "workspace_settings"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    internal_domains: Mapped[list[str]] = mapped_column(JSON, default=list)
    blocklist: Mapped[list[str]] = mapped_column(JSON, default=list)
    lookback_days: Mapped[int] = mapped_column(Integer, default=90)
    create_contacts_automatically: Mapped[bool] = mapped_column(Boolean, default=True)
    default_sync_inbox: Mapped[bool] = mapped_column(Boolean, default=False)
    default_sync_sent: Mapped[bool] = mapped_column(Boolean, default=False)
    log_address: Mapped[str] = mapped_column(String(320), unique=True)
    inbound_secret_encrypted: Mapped[str] = mapped_column(Text)
    # From domains whose mail the log address takes without authentication (an admin's choice).
    unauthenticated_sender_domains: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    # Whether emails not made from a template track opens and clicks (a template has its own switches).
    track_opens: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    track_clicks: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # The IANA zone people of this workspace type and read times in (scheduled sends, the outbox), and
    # the zone a new sequence's send window takes unless it names its own.
    time_zone: Mapped[str] = mapped_column(String(64), default=DEFAULT_ZONE, server_default=DEFAULT_ZONE)

    workspace: Mapped[Workspace] = relationship(back_populates="settings")


class Role(IdMixin, CreatedMixin, Base):
    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)


class User(IdMixin, CreatedMixin, Base):
    __tablename__ = "users"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    # One login identity belongs to one workspace, so the address alone identifies it at login.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("roles.id"), index=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    public_account_usage: Mapped[bool] = mapped_column(Boolean, default=False)

    role: Mapped[Role] = relationship(lazy="joined")


class ApiToken(IdMixin, CreatedMixin, Base):
    __tablename__ = "api_tokens"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(IdMixin, CreatedMixin, Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_workspace_created", "workspace_id", "created_at"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_label: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(100))
    target_type: Mapped[str] = mapped_column(String(50))
    target_id: Mapped[str] = mapped_column(String(100), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class UserSession(IdMixin, CreatedMixin, Base):
    """A page login. The browser's cookie holds a random id that is stored here only as a digest,
    so this row (not the cookie) decides whether the login still stands."""

    __tablename__ = "user_sessions"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    id_digest: Mapped[str] = mapped_column(String(64), unique=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AccountLink(IdMixin, CreatedMixin, Base):
    """A single-use, expiring link that lets one user set their password: an admin's invitation
    (`purpose` "invitation") or password reset ("reset"). Like a login, only the token's digest is
    stored; the plain token lives in the link alone. A new link for the same user and purpose
    revokes the earlier ones, so at most one of each is pending."""

    __tablename__ = "account_links"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    emailed: Mapped[bool] = mapped_column(Boolean, default=False)


class Throttle(Base):
    """The current run of attempts under one key (`login:account:<email>`, `connect:user:<id>`, ...);
    touchline.kit.backoff decides what it means."""

    __tablename__ = "throttles"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lockouts: Mapped[int] = mapped_column(Integer, default=0)
