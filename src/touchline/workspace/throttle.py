"""Throttles kept in the database, so that every API process counts the same attempts.

Keys name what is counted: `login:account:<email>`, `login:address:<ip>`, `connect:user:<id>`.
What a count means (when to block, for how long) is touchline.kit.backoff's to decide.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from touchline.config import Settings
from touchline.kit.backoff import AttemptRun, BackoffPolicy, after_attempt, in_words, wait_left
from touchline.kit.errors import TooManyAttemptsError
from touchline.models import Throttle


def login_account_policy(settings: Settings) -> BackoffPolicy:
    return _policy(settings, settings.login_failures_per_account)


def login_address_policy(settings: Settings) -> BackoffPolicy:
    return _policy(settings, settings.login_failures_per_address)


def connect_policy(settings: Settings) -> BackoffPolicy:
    return _policy(settings, settings.mailbox_connects_per_user)


def _policy(settings: Settings, attempts: int) -> BackoffPolicy:
    return BackoffPolicy(
        attempts=attempts,
        window=timedelta(seconds=settings.throttle_window_seconds),
        max_backoff=timedelta(seconds=settings.throttle_max_backoff_seconds),
    )


def _run_of(row: Throttle | None) -> AttemptRun | None:
    if row is None:
        return None
    return AttemptRun(row.attempts, row.started_at, row.last_attempt_at, row.blocked_until, row.lockouts)


def _row(session: Session, key: str) -> Throttle | None:
    # FOR UPDATE on PostgreSQL: two processes counting the same key at once both count.
    return session.scalar(select(Throttle).where(Throttle.key == key).with_for_update())


def wait(session: Session, key: str, now: datetime) -> timedelta | None:
    """How long `key` must still wait, or None."""
    return wait_left(_run_of(session.get(Throttle, key)), now)


def count(session: Session, key: str, policy: BackoffPolicy, now: datetime) -> AttemptRun:
    """Counts one attempt under `key` and returns the run it belongs to."""
    row = _row(session, key)
    run = after_attempt(policy, _run_of(row), now)
    if row is None:
        try:
            with session.begin_nested():
                session.add(
                    Throttle(
                        key=key,
                        attempts=run.attempts,
                        started_at=run.started_at,
                        last_attempt_at=run.last_attempt_at,
                        blocked_until=run.blocked_until,
                        lockouts=run.lockouts,
                    )
                )
        except IntegrityError:
            return count(session, key, policy, now)  # another process counted the key's first attempt
        return run
    row.attempts = run.attempts
    row.started_at = run.started_at
    row.last_attempt_at = run.last_attempt_at
    row.blocked_until = run.blocked_until
    row.lockouts = run.lockouts
    session.flush()
    return run


def clear(session: Session, key: str) -> None:
    session.execute(delete(Throttle).where(Throttle.key == key))


def refuse_when_waiting(session: Session, key: str, policy: BackoffPolicy, now: datetime, what: str) -> None:
    """Counts an attempt that is allowed only so often (not only failures); raises when it must wait."""
    left = wait(session, key, now)
    if left is None:
        count(session, key, policy, now)
        return
    raise TooManyAttemptsError(
        f"Too many {what}; try again in {in_words(left)}.",
        retry_after_seconds=math.ceil(left.total_seconds()),
    )


def forget_over(session: Session, window: timedelta, now: datetime) -> int:
    """Deletes runs whose window has passed with neither an attempt nor a block: the next attempt would
    start afresh anyway (touchline.kit.backoff), so a missing row answers the same."""
    quiet_since = now - window
    result = session.execute(
        delete(Throttle).where(
            Throttle.last_attempt_at <= quiet_since,
            or_(Throttle.blocked_until.is_(None), Throttle.blocked_until <= quiet_since),
        )
    )
    return cast("CursorResult[Any]", result).rowcount
