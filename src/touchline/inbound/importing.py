"""`touchline import mail`: an mbox, a maildir or a folder of messages through the same pipeline as sync."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from touchline.db import session_scope
from touchline.inbound.mailfiles import MailItem, mail_items, unreadable_reason
from touchline.inbound.reading import ReadMessage, read_messages
from touchline.inbound.store.directory import directories
from touchline.inbound.store.service import BatchOutcome, Holding, RawIncoming, store_raw_messages

BATCH = 200


@dataclass
class ImportReport(BatchOutcome):
    read: int = 0
    # (label, reason) of every item that is no readable message: a file or folder that cannot be
    # read, an empty or binary file. `touchline triage` quarantines the same items.
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def import_mail(
    sessions: sessionmaker[Session],
    workspace_id: uuid.UUID,
    user_id: uuid.UUID,
    path: Path,
    *,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    report = ImportReport()
    return _import(sessions, workspace_id, user_id, _readable(mail_items(path), report), progress, report)


def _readable(items: Iterable[MailItem], report: ImportReport) -> Iterator[tuple[str, bytes, str]]:
    """The messages among `items`; the rest are counted and reported unreadable as they pass."""
    for item in items:
        if item.raw is None:
            report.read += 1
            report.unreadable.append((item.label, item.error or "unreadable"))
        else:
            yield item.label, item.raw, item.folder


def count_messages(path: Path) -> int:
    """How many items `import_mail` will go through (headers only are read to count them)."""
    return sum(1 for _ in mail_items(path, headers_only=True))


def import_messages(
    sessions: sessionmaker[Session],
    workspace_id: uuid.UUID,
    user_id: uuid.UUID,
    messages: Iterable[tuple[str, bytes]],
    *,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Decide, store and thread each (label, raw message) for `user_id`, in batches of one transaction;
    the folder is the label's last folder. A message that is no message at all (empty, binary) is
    reported unreadable."""
    labelled = ((label, raw, _folder_of(label)) for label, raw in messages)
    return _import(sessions, workspace_id, user_id, labelled, progress, ImportReport())


def _import(
    sessions: sessionmaker[Session],
    workspace_id: uuid.UUID,
    user_id: uuid.UUID,
    messages: Iterable[tuple[str, bytes, str]],
    progress: Callable[[int], None] | None,
    report: ImportReport,
) -> ImportReport:
    pending: list[tuple[str, bytes, str]] = []

    def flush() -> None:
        # Read before the transaction opens: parsing is the dear part, and no lock waits on it.
        reads = read_messages([raw for _, raw, _ in pending])
        storing = []
        for (label, raw, folder), read in zip(pending, reads, strict=True):
            problem = unreadable_reason(raw, read.parsed) if isinstance(read, ReadMessage) else None
            if problem is None:
                storing.append((label, raw, folder, read))
            else:
                report.unreadable.append((label, problem))
        with session_scope(sessions) as session:
            directory = directories.get(session, workspace_id)
            outcome = store_raw_messages(
                session,
                workspace_id,
                directory,
                [
                    RawIncoming(
                        raw,
                        Holding(user_id=user_id, via="import", folder_name=folder),
                        label=label,
                        read=read,
                    )
                    for label, raw, folder, read in storing
                ],
                source="import",
            )
        report.kept += outcome.kept
        report.stored_new += outcome.stored_new
        report.ignored += outcome.ignored
        report.quarantined += outcome.quarantined
        if progress is not None:
            progress(len(pending))
        pending.clear()

    for message in messages:
        report.read += 1
        pending.append(message)
        if len(pending) >= BATCH:
            flush()
    if pending:
        flush()
    return report


def _folder_of(label: str) -> str:
    return label.rsplit("/", 2)[-2] if "/" in label else ""
