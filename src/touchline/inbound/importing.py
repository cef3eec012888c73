"""`touchline import mail`: an mbox, a maildir or a folder of messages through the same pipeline as sync."""

from __future__ import annotations

import mailbox
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from touchline.db import session_scope
from touchline.inbound.reading import read_messages
from touchline.inbound.store.directory import directories
from touchline.inbound.store.service import BatchOutcome, Holding, RawIncoming, store_raw_messages

BATCH = 200


@dataclass
class ImportReport(BatchOutcome):
    read: int = 0


def iter_messages(path: Path) -> Iterator[tuple[str, bytes]]:
    """(label, raw bytes) of every message under `path`: an mbox file, a maildir, a folder, a file."""
    if path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir():
        box = mailbox.Maildir(path, factory=None, create=False)
        for key in sorted(box.keys()):
            yield f"{path}#{key}", box.get_bytes(key)
        return
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
            yield from iter_messages(file)
        return
    with path.open("rb") as handle:
        head = handle.read(5)
    if head == b"From ":
        box_file = mailbox.mbox(path, create=False)
        for index, key in enumerate(box_file.keys()):
            yield f"{path}#{index}", box_file.get_bytes(key)
        return
    yield str(path), path.read_bytes()


def count_messages(path: Path) -> int:
    return sum(1 for _ in iter_messages(path))


def import_mail(
    sessions: sessionmaker[Session],
    workspace_id: uuid.UUID,
    user_id: uuid.UUID,
    path: Path,
    *,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    return import_messages(sessions, workspace_id, user_id, iter_messages(path), progress=progress)


def import_messages(
    sessions: sessionmaker[Session],
    workspace_id: uuid.UUID,
    user_id: uuid.UUID,
    messages: Iterable[tuple[str, bytes]],
    *,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Decide, store and thread each (label, raw message) for `user_id`, in batches of one transaction."""
    report = ImportReport()
    pending: list[tuple[str, bytes]] = []

    def flush() -> None:
        # Read before the transaction opens: parsing is the dear part, and no lock waits on it.
        reads = read_messages([raw for _, raw in pending])
        with session_scope(sessions) as session:
            directory = directories.get(session, workspace_id)
            outcome = store_raw_messages(
                session,
                workspace_id,
                directory,
                [
                    RawIncoming(
                        raw,
                        Holding(
                            user_id=user_id,
                            via="import",
                            folder_name=label.rsplit("/", 2)[-2] if "/" in label else "",
                        ),
                        label=label,
                        read=read,
                    )
                    for (label, raw), read in zip(pending, reads, strict=True)
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

    for label, raw in messages:
        report.read += 1
        pending.append((label, raw))
        if len(pending) >= BATCH:
            flush()
    if pending:
        flush()
    return report
