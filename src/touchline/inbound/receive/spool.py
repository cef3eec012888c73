"""The log address's spool: SMTP accepts a message by committing it here, and workers log it.

Accepting is what the sender waits for, so it does only what decides the reply (the SMTP server
checks that the From addresses and the envelope sender are active users of the workspace, and that
the message is authenticated for its From domain: `service.refuse_message`), then commits the raw
message to `inbound_spool` (`accept_batch`) and the 250 says so. Logging it (parsing, the
authentication again and for the record, the same checks again, the keep-or-ignore engine,
contacts, storage) is the work of `log_spooled`, run by any worker:

- a worker claims up to `CLAIM_BATCH` rows with one UPDATE (PostgreSQL skips rows another worker
  holds), reads them, logs them with `service.log_batch` and deletes them in that same transaction,
  so a crash anywhere leaves the rows to be claimed again once their claim runs out;
- a message that has been claimed `MAX_ATTEMPTS` times without being logged is quarantined with
  why, so one message that kills its worker cannot block the rest;
- what the worker's checks refuse now (a user deactivated since the message was accepted) is
  recorded for admins at stage "spool"; the sender already had its 250.

The inbound server sends the `LOG_SPOOLED_JOB` after each commit; every worker also runs it once a
minute, which picks up whatever a stopped queue or a dead worker left behind.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from touchline.db import session_scope
from touchline.inbound.receive import service
from touchline.inbound.receive.authentication import SenderChecks
from touchline.inbound.receive.service import Envelope, LogJob, LogResult
from touchline.inbound.store.bulk import table_of
from touchline.inbound.store.failsafe import database_failed
from touchline.models import SpooledMessage
from touchline.models.base import utcnow

log = logging.getLogger(__name__)

LOG_SPOOLED_JOB = "inbound.log_spooled"
CLAIM_BATCH = 64
CLAIM_LEASE = timedelta(minutes=5)
"""How long a claimed row is left to its worker; logging a batch takes well under a second."""
MAX_ATTEMPTS = 5


# --- accepting -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Offered:
    """A message accepted at DATA for one workspace, to be spooled: its raw bytes and how it came."""

    workspace_id: uuid.UUID
    raw: bytes
    envelope: Envelope


def accept_batch(session: Session, offers: Sequence[Offered]) -> list[LogResult]:
    """Spool messages whose senders were found allowed (the caller's checks); one 250 reply per
    offer, in order, each naming the spool row. Never commits."""
    now = utcnow()
    ids = [uuid.uuid4() for _ in offers]
    rows = [
        {
            "id": spool_id,
            "created_at": now,
            "workspace_id": offer.workspace_id,
            "channel": offer.envelope.channel,
            "envelope_sender": offer.envelope.sender[:320] if offer.envelope.sender is not None else None,
            "remote": offer.envelope.remote[:100],
            "raw": offer.raw,
            "attempts": 0,
        }
        for spool_id, offer in zip(ids, offers, strict=True)
    ]
    if rows:
        # One multi-row statement: the sender of each of these is waiting for the commit.
        session.execute(insert(table_of(SpooledMessage)), rows)
    return [_accepted(spool_id) for spool_id in ids]


def _accepted(spool_id: uuid.UUID) -> LogResult:
    return LogResult(
        "accepted", 250, "2.0.0", f"accepted as {spool_id}; it is logged within seconds", spool_id=spool_id
    )


# --- logging what was accepted -------------------------------------------------------------------


@dataclass
class SpoolReport:
    """What one `log_spooled` run did."""

    claimed: int = 0
    logged: int = 0
    refused: int = 0
    quarantined: int = 0
    left: int = 0
    """Claimed but not finished (the database failed); claimed again once the claim runs out."""


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: uuid.UUID
    workspace_id: uuid.UUID
    envelope: Envelope
    raw: bytes
    attempts: int


def log_spooled(
    sessions: sessionmaker[Session],
    *,
    checks: SenderChecks,
    batch: int = CLAIM_BATCH,
    lease: timedelta = CLAIM_LEASE,
    max_attempts: int = MAX_ATTEMPTS,
) -> SpoolReport:
    """Log spooled messages until none is left to claim; safe to run in many workers at once."""
    report = SpoolReport()
    while True:
        claimed = _claim(sessions, batch, lease)
        if not claimed:
            return report
        report.claimed += len(claimed)
        try:
            outcomes = _log_claimed(sessions, claimed, checks, max_attempts)
        except Exception as error:
            if not database_failed(error):
                raise
            log.warning("the database failed while logging %d spooled messages: %s", len(claimed), error)
            report.left += len(claimed)
            return report
        for outcome in outcomes:
            if outcome == "logged":
                report.logged += 1
            elif outcome == "refused":
                report.refused += 1
            elif outcome == "quarantined":
                report.quarantined += 1
            else:
                report.left += 1


def _claim(sessions: sessionmaker[Session], limit: int, lease: timedelta) -> list[_Claimed]:
    with session_scope(sessions) as session:
        now = utcnow()
        claimable = or_(SpooledMessage.claimed_until.is_(None), SpooledMessage.claimed_until < now)
        oldest = select(SpooledMessage.id).where(claimable).order_by(SpooledMessage.created_at).limit(limit)
        if session.get_bind().dialect.name == "postgresql":
            oldest = oldest.with_for_update(skip_locked=True)
        rows = session.execute(
            update(SpooledMessage)
            .where(SpooledMessage.id.in_(oldest.scalar_subquery()), claimable)
            .values(claimed_until=now + lease, attempts=SpooledMessage.attempts + 1)
            .returning(
                SpooledMessage.id,
                SpooledMessage.workspace_id,
                SpooledMessage.channel,  # kept in the row for admins reading the spool
                SpooledMessage.envelope_sender,
                SpooledMessage.remote,
                SpooledMessage.raw,
                SpooledMessage.attempts,
            )
            .execution_options(synchronize_session=False)
        ).all()
    # Only the SMTP channel spools; the HTTP channel logs while its caller waits.
    return [_Claimed(row[0], row[1], Envelope("smtp", row[3], row[4]), bytes(row[5]), row[6]) for row in rows]


def _log_claimed(
    sessions: sessionmaker[Session],
    claimed: list[_Claimed],
    checks: SenderChecks,
    max_attempts: int,
) -> list[str]:
    """Log a claimed batch in one transaction that also removes it from the spool; should that
    transaction fail for anything but the database, each message alone, so one costs only itself."""
    worn_out = [one for one in claimed if one.attempts > max_attempts]
    fresh = [one for one in claimed if one.attempts <= max_attempts]
    # Parsing and authentication (which may wait on DNS) happen before any transaction is opened.
    jobs = [
        LogJob(
            one.workspace_id,
            service.prepare(one.raw, one.envelope, checks),
            one.envelope,
            checks,
            stage="spool",
            spool_id=one.id,
        )
        for one in fresh
    ]
    try:
        return _store(sessions, worn_out, list(zip(fresh, jobs, strict=True)))
    except Exception as error:
        if database_failed(error) or len(claimed) == 1:
            raise
        log.warning("logging %d spooled messages one by one", len(claimed), exc_info=True)
    outcomes: list[str] = []
    for one in worn_out:
        outcomes.extend(_store(sessions, [one], []))
    for pair in zip(fresh, jobs, strict=True):
        try:
            outcomes.extend(_store(sessions, [], [pair]))
        except Exception as error:
            if database_failed(error):
                raise
            outcomes.append(_quarantine_alone(sessions, pair[0], error))
    return outcomes


def _store(
    sessions: sessionmaker[Session], worn_out: list[_Claimed], fresh: list[tuple[_Claimed, LogJob]]
) -> list[str]:
    with session_scope(sessions) as session:
        # Writing first makes this a write transaction from its start: on SQLite, one that read
        # first could not become a writer once another worker had committed in the meantime.
        done = [one.id for one in worn_out] + [one.id for one, _ in fresh]
        session.execute(delete(SpooledMessage).where(SpooledMessage.id.in_(done)))
        outcomes: list[str] = []
        for one in worn_out:
            error = RuntimeError(f"not logged after {one.attempts - 1} attempts; its worker may have crashed")
            result = service.quarantined(session, one.workspace_id, one.raw, one.envelope, error)
            outcomes.append(result.outcome)
        results = service.log_batch(session, [job for _, job in fresh])
        outcomes.extend(result.outcome for result in results)
    return outcomes


def _quarantine_alone(sessions: sessionmaker[Session], one: _Claimed, error: Exception) -> str:
    with session_scope(sessions) as session:
        session.execute(delete(SpooledMessage).where(SpooledMessage.id == one.id))
        result = service.quarantined(session, one.workspace_id, one.raw, one.envelope, error)
    return result.outcome


def backlog(session: Session) -> dict[str, float | int]:
    """For the operator's health check: how many accepted messages wait, and the oldest's age in
    seconds (0 when none); a growing age means no worker is logging them."""
    count, oldest = session.execute(select(func.count(), func.min(SpooledMessage.created_at))).one()
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
    return {"waiting": int(count), "oldest_seconds": round(max(age, 0.0), 1)}
