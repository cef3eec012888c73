"""Mailboxes and what sync and logging store: emails, their holders, links, conversations, quarantine."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from touchline.models.base import Base, CreatedMixin, IdMixin, UTCDateTime
from touchline.models.workspace import User


class Mailbox(IdMixin, CreatedMixin, Base):
    """A user's connected email account. Its secrets (password or OAuth tokens) are encrypted."""

    __tablename__ = "mailboxes"
    __table_args__ = (UniqueConstraint("user_id"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(20))  # imap | gmail | graph
    address: Mapped[str] = mapped_column(String(320))
    connection: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # host, port, security, username
    credentials_encrypted: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(30), default="connected")
    last_error: Mapped[str | None] = mapped_column(Text)
    lookback_days: Mapped[int | None] = mapped_column(Integer)  # a user's extension of the workspace's
    first_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set after a rate limit (the provider's Retry-After) or a failure (growing backoff); the scheduler waits.
    sync_not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The sync lease: one worker syncs a mailbox at a time, and a lease its holder stops renewing (the
    # worker was killed, or lost the database) runs out, so another worker takes over.
    sync_holder: Mapped[str | None] = mapped_column(String(64))
    # The process running that sync (`kit.processes`): a sync started on its host takes the lease over
    # at once when that process is gone, instead of waiting for the lease to run out.
    sync_holder_host: Mapped[str | None] = mapped_column(String(255))
    sync_holder_pid: Mapped[int | None] = mapped_column(Integer)
    sync_holder_started: Mapped[str | None] = mapped_column(String(200))
    sync_leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A sync asked for while another ran: its holder queues one more run when it lets go.
    sync_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # What the syncs of this mailbox have checked, kept and quarantined since it was connected, added
    # to with every stored batch, so that the Email page shows them growing while a sync runs.
    sync_checked: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sync_kept: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sync_quarantined: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sync_counted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(lazy="joined")
    folders: Mapped[list[MailboxFolder]] = relationship(
        back_populates="mailbox", cascade="all, delete-orphan", order_by="MailboxFolder.name", lazy="selectin"
    )


class MailboxFolder(IdMixin, Base):
    """One folder or label of a mailbox, whether the user syncs it, and where its sync stands."""

    __tablename__ = "mailbox_folders"
    __table_args__ = (UniqueConstraint("mailbox_id", "provider_folder_id"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    mailbox_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    provider_folder_id: Mapped[str] = mapped_column(String(500))
    name: Mapped[str] = mapped_column(String(500))
    special_use: Mapped[str | None] = mapped_column(String(20))  # inbox | sent | drafts | trash | junk
    selected: Mapped[bool] = mapped_column(Boolean, default=False)
    cursor: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the provider's resumable sync state
    synced_since: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the look-back bound already covered
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the last sync that succeeded
    # The folder's own failures (an unexpected provider answer about it): the provider's words, when,
    # how many in a row, and when the folder is tried again; the mailbox's other folders go on.
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    mailbox: Mapped[Mailbox] = relationship(back_populates="folders")


class Conversation(IdMixin, CreatedMixin, Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_workspace_last", "workspace_id", "last_message_at"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(1000), default="")
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Email(IdMixin, CreatedMixin, Base):
    """One stored email per workspace, however many mailboxes hold it or however often it was logged."""

    __tablename__ = "emails"
    __table_args__ = (
        UniqueConstraint("workspace_id", "dedup_key"),
        Index("ix_emails_workspace_message_id", "workspace_id", "message_id"),
        Index("ix_emails_workspace_sent", "workspace_id", "sent_at"),
        Index("ix_emails_conversation", "conversation_id"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    dedup_key: Mapped[str] = mapped_column(String(998))
    message_id: Mapped[str | None] = mapped_column(String(998))
    subject: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    from_address: Mapped[str | None] = mapped_column(String(320))
    from_name: Mapped[str] = mapped_column(String(500), default="")
    to_addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    cc_addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    in_reply_to: Mapped[list[str]] = mapped_column(JSON, default=list)
    references: Mapped[list[str]] = mapped_column(JSON, default=list)
    snippet: Mapped[str] = mapped_column(Text, default="")
    text_body: Mapped[str | None] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)  # sanitised before it is stored
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    defects: Mapped[list[str]] = mapped_column(JSON, default=list)
    automatic: Mapped[str | None] = mapped_column(String(200))
    """Why this is an automatic reply (an out-of-office, Auto-Submitted, ...); None: written by a person.
    Automatic replies are neither replies nor bounces and end no sequence."""
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    provider_thread_id: Mapped[str | None] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(String(20))  # sync | log | import | send
    logged: Mapped[bool] = mapped_column(Boolean, default=False)  # also received through the log address
    unassigned: Mapped[bool] = mapped_column(Boolean, default=False)
    suggested_company_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    decision: Mapped[dict[str, Any]] = mapped_column(
        JSON, default=dict
    )  # rule, reason, per-participant matches

    holders: Mapped[list[EmailHolder]] = relationship(
        back_populates="email", cascade="all, delete-orphan", lazy="selectin"
    )


class EmailHolder(IdMixin, CreatedMixin, Base):
    """A user (through a mailbox folder, or as the logger) who holds a copy of an email."""

    __tablename__ = "email_holders"
    __table_args__ = (
        UniqueConstraint("email_id", "user_id", "folder_id", "via"),
        Index("ix_email_holders_user", "user_id"),
        Index("ix_email_holders_folder_provider", "folder_id", "provider_message_id"),
    )

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    email_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("emails.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    via: Mapped[str] = mapped_column(String(20))  # sync | log | import | send (the sent copy)
    folder_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("mailbox_folders.id", ondelete="SET NULL"))
    folder_name: Mapped[str] = mapped_column(String(500), default="")
    provider_message_id: Mapped[str | None] = mapped_column(String(500))

    email: Mapped[Email] = relationship(back_populates="holders")
    user: Mapped[User] = relationship(lazy="joined")


class EmailCompany(Base):
    __tablename__ = "email_companies"

    email_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("emails.id", ondelete="CASCADE"), primary_key=True)
    company_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class EmailContact(Base):
    __tablename__ = "email_contacts"

    email_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("emails.id", ondelete="CASCADE"), primary_key=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class QuarantinedMessage(IdMixin, CreatedMixin, Base):
    """A message that could not be processed, kept with its reason so nothing vanishes silently."""

    __tablename__ = "quarantined_messages"
    __table_args__ = (Index("ix_quarantined_workspace_created", "workspace_id", "created_at"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    mailbox_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("mailboxes.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(String(500))
    headers_excerpt: Mapped[str] = mapped_column(Text, default="")


class BackgroundTask(IdMixin, CreatedMixin, Base):
    """A long admin action run as a job, with progress and result a person can watch."""

    __tablename__ = "background_tasks"
    __table_args__ = (Index("ix_background_tasks_workspace_created", "workspace_id", "created_at"),)

    workspace_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued | running | done | failed
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int | None] = mapped_column(Integer)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ConversationLink(Base):
    """A key that ties mail to a conversation: a Message-ID seen or referenced, a provider thread id,
    or a subject-and-participants key. Children that arrive before their parents find them here too."""

    __tablename__ = "conversation_links"

    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(1000), primary_key=True)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
