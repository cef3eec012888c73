"""API models for connected mailboxes and background tasks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from touchline.models import BackgroundTask, Mailbox


class FolderOut(BaseModel):
    id: uuid.UUID
    name: str
    special_use: str | None
    selected: bool
    last_synced_at: datetime | None = Field(description="When the folder last synced without error")
    last_error: str | None = Field(None, description="While the folder fails: the provider's words")
    next_retry_at: datetime | None = Field(None, description="While the folder fails: when it is tried next")


class MailboxOut(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    provider: str
    address: str
    status: str
    last_error: str | None
    last_synced_at: datetime | None
    lookback_days: int | None
    folders: list[FolderOut]

    @classmethod
    def of(cls, row: Mailbox) -> MailboxOut:
        return cls(
            id=row.id,
            user_id=row.user_id,
            provider=row.provider,
            address=row.address,
            status=row.status,
            last_error=row.last_error,
            last_synced_at=row.last_synced_at,
            lookback_days=row.lookback_days,
            folders=[
                FolderOut(
                    id=f.id,
                    name=f.name,
                    special_use=f.special_use,
                    selected=f.selected,
                    last_synced_at=f.last_synced_at,
                    last_error=f.last_error,
                    next_retry_at=f.next_retry_at,
                )
                for f in row.folders
            ],
        )


class ImapConnect(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, max_length=253)
    port: int | None = Field(None, ge=1, le=65535)
    security: Literal["tls", "starttls", "plain"] = "tls"
    username: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024, repr=False)
    user_id: uuid.UUID | None = Field(None, description="Admins may connect another user's mailbox")
    smtp_host: str | None = Field(
        None, min_length=1, max_length=253, description="SMTP server for sending; the IMAP host when absent"
    )
    smtp_port: int | None = Field(None, ge=1, le=65535, description="587 when absent")
    smtp_security: Literal["tls", "starttls", "plain"] = "starttls"


class FolderSelection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    selected_folder_ids: list[uuid.UUID] = Field(max_length=10_000)


class LookbackChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lookback_days: int = Field(ge=1, le=3650)


class TaskOut(BaseModel):
    id: uuid.UUID
    kind: str
    status: str
    done: int
    total: int | None
    result: dict[str, Any]
    error: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, row: BackgroundTask) -> TaskOut:
        return cls(
            id=row.id,
            kind=row.kind,
            status=row.status,
            done=row.done,
            total=row.total,
            result=dict(row.result),
            error=row.error,
            created_at=row.created_at,
            finished_at=row.finished_at,
        )


class RemovalOut(BaseModel):
    deleted: int
    kept_for_others: int
