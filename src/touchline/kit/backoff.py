"""When repeated attempts (failed sign-ins, mailbox connects) must wait, decided without any storage.

A run of attempts under one key is counted from its first attempt. Once `attempts` have been made
within `window`, the key is blocked for `backoff`; every further attempt after a block ends blocks it
again for twice as long as the previous block, up to `max_backoff`. The count starts afresh when
`window` has passed since the run's first attempt, or, once the run has been blocked, when `window`
passes with neither an attempt nor a block.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta


@dataclass(frozen=True)
class BackoffPolicy:
    attempts: int
    window: timedelta
    backoff: timedelta = timedelta(minutes=1)
    max_backoff: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a policy allows at least one attempt")


@dataclass(frozen=True)
class AttemptRun:
    attempts: int
    started_at: datetime
    last_attempt_at: datetime
    blocked_until: datetime | None = None
    lockouts: int = 0


def wait_left(run: AttemptRun | None, now: datetime) -> timedelta | None:
    """How long the key must still wait, or None when an attempt may be made now."""
    if run is None or run.blocked_until is None or run.blocked_until <= now:
        return None
    return run.blocked_until - now


def after_attempt(policy: BackoffPolicy, run: AttemptRun | None, now: datetime) -> AttemptRun:
    """The run once one more attempt (that counts) has been made at `now`."""
    if run is None or _is_over(policy, run, now):
        run = AttemptRun(attempts=0, started_at=now, last_attempt_at=now)
    attempts = run.attempts + 1
    if attempts < policy.attempts:
        return replace(run, attempts=attempts, last_attempt_at=now)
    lockouts = run.lockouts + 1
    block = min(policy.backoff * 2 ** (lockouts - 1), policy.max_backoff)
    return replace(run, attempts=attempts, last_attempt_at=now, blocked_until=now + block, lockouts=lockouts)


def _is_over(policy: BackoffPolicy, run: AttemptRun, now: datetime) -> bool:
    quiet_since = max(run.last_attempt_at, run.blocked_until or run.last_attempt_at)
    if run.lockouts:
        return now - quiet_since >= policy.window
    return now - run.started_at >= policy.window


def in_words(wait: timedelta) -> str:
    """A wait as people read it, rounded up to whole minutes: "1 minute", "4 minutes"."""
    minutes = max(1, math.ceil(wait.total_seconds() / 60))
    return f"{minutes} minute" if minutes == 1 else f"{minutes} minutes"


def retry_delay(
    failed_attempts: int,
    *,
    retry_after_seconds: float | None,
    base_seconds: float,
    max_seconds: float,
    random: Callable[[], float],
) -> float:
    """How long to wait before retrying a throttled request, after ``failed_attempts`` (1 or more).

    Exponential backoff with full jitter (a random wait up to ``base * 2**(attempts-1)``, capped), so
    that clients throttled together do not come back together; never shorter than the server's
    Retry-After, which says when it will accept requests again.
    """
    ceiling = min(base_seconds * 2.0 ** max(failed_attempts - 1, 0), max_seconds)
    jittered: float = random() * ceiling
    return max(retry_after_seconds or 0.0, jittered)
