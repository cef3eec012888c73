"""What a sync run plans for each folder and what it reports, shared by the run and its fetching."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from touchline.mailboxes import service as mailboxes


@dataclass
class SyncReport:
    mailbox_id: uuid.UUID
    folders: int = 0
    seen: int = 0
    kept: int = 0
    stored_new: int = 0
    quarantined: int = 0
    status: str = mailboxes.STATUS_CONNECTED
    error: str | None = None
    retry_after_seconds: float | None = None
    per_folder: dict[str, int] = field(default_factory=dict)
    # Folders whose sync failed this run, with the provider's words.
    failed_folders: dict[str, str] = field(default_factory=dict)

    @property
    def ignored(self) -> int:
        return mailboxes.ignored_count(self.seen, self.kept, self.quarantined)


ProgressCallback = Callable[[str, int, "SyncReport"], None]
"""Called with a folder, how many of its messages were just checked, and the run's counts so far."""


@dataclass(frozen=True)
class FolderPlan:
    """One selected folder's part of a run: where it starts from, and how far back it looks."""

    folder_id: uuid.UUID
    provider_folder_id: str
    name: str
    cursor: dict[str, Any] | None
    since: datetime
    restart: bool
