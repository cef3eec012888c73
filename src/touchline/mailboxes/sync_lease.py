"""One worker syncs a mailbox at a time, and a worker that dies lets go by itself.

The hold is a lease on the mailbox's row, claimed with one conditional UPDATE (the log spool claims
its rows the same way): `sync_holder` names the run, `sync_leased_until` says until when, and
`sync_holder_host`, `sync_holder_pid` and `sync_holder_started` name the process that runs it
(`kit.processes`). The holder renews it every third of its length from a thread of its own
(`Heartbeat`); a worker that is killed, or loses its database, stops renewing, and once the lease
runs out the next sync claims it and resumes from the folders' stored checkpoints. A sync started on
the holder's own host does not wait that long: when the holder's process is gone, it takes the
lease over at once. The queue (Redis or SQLite) holds no lock at all, so a dropped queue link cannot
leave a mailbox held.

A sync asked for while another holds the mailbox is not dropped: it sets `sync_requested`, and the
holder queues one more run when it lets go (`release` says so).
"""

from __future__ import annotations

import logging
import secrets
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from touchline.db import session_scope
from touchline.kit.processes import ProcessIdentity, StartOf, holder_gone
from touchline.models import Mailbox
from touchline.models.base import utcnow

log = logging.getLogger(__name__)


def new_holder() -> str:
    return secrets.token_hex(16)


def _rowcount(result: Any) -> int:
    return int(cast("CursorResult[Any]", result).rowcount)


def claim(
    session: Session,
    mailbox_id: uuid.UUID,
    holder: str,
    lease: timedelta,
    now: datetime,
    here: ProcessIdentity,
    start_of: StartOf,
) -> bool:
    """Take the mailbox's sync if nobody holds it, its holder's lease ran out, or its holder ran on
    this host and its process is gone (`here` is the claiming process). Never commits."""
    taken = {
        "sync_holder": holder,
        "sync_holder_host": here.host,
        "sync_holder_pid": here.pid,
        "sync_holder_started": here.started,
        "sync_leased_until": now + lease,
        "sync_requested": False,
    }
    result = session.execute(
        update(Mailbox)
        .where(
            Mailbox.id == mailbox_id,
            or_(Mailbox.sync_leased_until.is_(None), Mailbox.sync_leased_until < now),
        )
        .values(taken)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(result) == 1:
        return True
    gone = _gone_holder(session, mailbox_id, here, start_of)
    if gone is None:
        return False
    # Only if that very run still holds it: another sync may have taken it over meanwhile.
    result = session.execute(
        update(Mailbox)
        .where(Mailbox.id == mailbox_id, Mailbox.sync_holder == gone)
        .values(taken)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(result) != 1:
        return False
    log.warning("took over the sync of mailbox %s from run %s, whose process is gone", mailbox_id, gone)
    return True


def _gone_holder(
    session: Session, mailbox_id: uuid.UUID, here: ProcessIdentity, start_of: StartOf
) -> str | None:
    """The run holding the mailbox's sync when its process ran on this host and is gone."""
    row = session.execute(
        select(
            Mailbox.sync_holder,
            Mailbox.sync_holder_host,
            Mailbox.sync_holder_pid,
            Mailbox.sync_holder_started,
        ).where(Mailbox.id == mailbox_id)
    ).first()
    if row is None or row.sync_holder is None:
        return None
    process = ProcessIdentity.recorded(row.sync_holder_host, row.sync_holder_pid, row.sync_holder_started)
    return row.sync_holder if holder_gone(process, here, start_of) else None


def renew(session: Session, mailbox_id: uuid.UUID, holder: str, lease: timedelta, now: datetime) -> bool:
    """Extend the lease; False when `holder` no longer holds it (it ran out and was taken over)."""
    result = session.execute(
        update(Mailbox)
        .where(Mailbox.id == mailbox_id, Mailbox.sync_holder == holder)
        .values(sync_leased_until=now + lease)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def request_again(session: Session, mailbox_id: uuid.UUID, now: datetime) -> bool:
    """Ask the live holder for one more run after its own; False when nobody holds a live lease
    (it was let go meanwhile, so the caller may claim it itself)."""
    result = session.execute(
        update(Mailbox)
        .where(Mailbox.id == mailbox_id, Mailbox.sync_leased_until >= now)
        .values(sync_requested=True)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def release(session: Session, mailbox_id: uuid.UUID, holder: str) -> bool:
    """Let go of the lease; True when a sync was asked for meanwhile and should be queued now.

    Two conditional statements rather than a read and a write, so that a request arriving between
    them is never cleared unseen: the first lets go only when none was asked for."""
    held = (Mailbox.id == mailbox_id, Mailbox.sync_holder == holder)
    let_go = {
        "sync_holder": None,
        "sync_holder_host": None,
        "sync_holder_pid": None,
        "sync_holder_started": None,
        "sync_leased_until": None,
        "sync_requested": False,
    }
    quiet = session.execute(
        update(Mailbox)
        .where(*held, Mailbox.sync_requested.is_(False))
        .values(let_go)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(quiet):
        return False
    asked = session.execute(
        update(Mailbox).where(*held).values(let_go).execution_options(synchronize_session=False)
    )
    return _rowcount(asked) == 1


class Heartbeat:
    """Renews a held lease every third of its length until stopped; `lost` is set once the lease was
    found taken over, so the run can stop at its next checkpoint instead of syncing beside another."""

    def __init__(
        self, sessions: sessionmaker[Session], mailbox_id: uuid.UUID, holder: str, lease: timedelta
    ) -> None:
        self._sessions = sessions
        self._mailbox_id = mailbox_id
        self._holder = holder
        self._lease = lease
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name="touchline-sync-lease", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        interval = self._lease.total_seconds() / 3
        while not self._stop.wait(interval):
            try:
                with session_scope(self._sessions) as session:
                    held = renew(session, self._mailbox_id, self._holder, self._lease, utcnow())
            except Exception as error:
                # The lease runs out unless a later renewal gets through; nothing else to do here.
                log.warning("could not renew the sync lease of mailbox %s: %s", self._mailbox_id, error)
                continue
            if not held:
                log.warning("the sync lease of mailbox %s was taken over; stopping", self._mailbox_id)
                self.lost.set()
                return
