"""The backoff decision: a block after too many attempts in the window, doubling, capped, forgotten."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from touchline.kit.backoff import AttemptRun, BackoffPolicy, after_attempt, in_words, wait_left

START = datetime(2026, 12, 6, tzinfo=UTC)
POLICY = BackoffPolicy(attempts=3, window=timedelta(minutes=15), max_backoff=timedelta(minutes=10))


def test_blocks_after_the_allowed_attempts_then_doubles_up_to_the_cap() -> None:
    run: AttemptRun | None = None
    now = START
    for _ in range(2):
        run = after_attempt(POLICY, run, now)
        assert wait_left(run, now) is None
    blocks = []
    for _ in range(6):
        run = after_attempt(POLICY, run, now)
        left = wait_left(run, now)
        assert left is not None
        blocks.append(left)
        now += left
        assert wait_left(run, now) is None
    assert [block.total_seconds() / 60 for block in blocks] == [1, 2, 4, 8, 10, 10]


def test_a_quiet_window_forgets_the_run() -> None:
    run = None
    for _ in range(3):
        run = after_attempt(POLICY, run, START)
    assert run is not None
    assert run.blocked_until is not None
    later = run.blocked_until + POLICY.window
    fresh = after_attempt(POLICY, run, later)
    assert (fresh.attempts, fresh.lockouts, wait_left(fresh, later)) == (1, 0, None)


def test_attempts_spread_wider_than_the_window_never_block() -> None:
    run = None
    now = START
    for _ in range(10):
        run = after_attempt(POLICY, run, now)
        assert wait_left(run, now) is None
        now += timedelta(minutes=8)


@given(st.lists(st.integers(min_value=0, max_value=3600), max_size=40))
def test_a_wait_never_exceeds_the_cap_and_blocks_follow_the_count(gaps: list[int]) -> None:
    run: AttemptRun | None = None
    now = START
    for gap in gaps:
        now += timedelta(seconds=gap)
        before = run
        run = after_attempt(POLICY, run, now)
        left = wait_left(run, now)
        assert left is None or left <= POLICY.max_backoff
        assert (left is not None) == (run.attempts >= POLICY.attempts)
        if before is not None and run.started_at == before.started_at:
            assert run.attempts == before.attempts + 1


def test_waits_read_in_whole_minutes_rounded_up() -> None:
    assert in_words(timedelta(seconds=1)) == "1 minute"
    assert in_words(timedelta(seconds=60)) == "1 minute"
    assert in_words(timedelta(seconds=181)) == "4 minutes"
