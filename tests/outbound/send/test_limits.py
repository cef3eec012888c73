"""Rolling sending windows: a message goes when it fits, waits exactly as long as it must, or is refused."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from touchline.outbound.send.limits import (
    Fits,
    NotBefore,
    PastSend,
    Refused,
    SendingLimits,
    Window,
    decide,
)

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
MICROSECOND = dt.timedelta(microseconds=1)
GMAIL = SendingLimits(
    "Gmail",
    max_recipients_per_message=100,
    windows=(Window(dt.timedelta(days=1), "a day", max_messages=2000),),
)
EXCHANGE = SendingLimits(
    "Exchange Online",
    windows=(
        Window(dt.timedelta(minutes=1), "a minute", max_messages=30),
        Window(dt.timedelta(days=1), "a day", max_recipients=10_000),
    ),
)


def fits_at(limits: SendingLimits, past: list[PastSend], recipients: int, at: dt.datetime) -> bool:
    """Counted the plain way: every send made within the window's length before ``at`` (or later)."""
    for window in limits.windows:
        counted = [send for send in past if send.at > at - window.length]
        if window.max_messages is not None and len(counted) + 1 > window.max_messages:
            return False
        if window.max_recipients is not None and sum(s.recipients for s in counted) + recipients > (
            window.max_recipients
        ):
            return False
    return True


windows = st.lists(
    st.builds(
        Window,
        length=st.sampled_from([dt.timedelta(minutes=1), dt.timedelta(hours=1), dt.timedelta(days=1)]),
        name=st.just("a while"),
        max_messages=st.none() | st.integers(1, 8),
        max_recipients=st.none() | st.integers(1, 60),
    ),
    max_size=3,
).map(tuple)
limits_strategy = st.builds(
    SendingLimits,
    service_name=st.just("Mail"),
    max_recipients_per_message=st.none() | st.integers(1, 40),
    windows=windows,
)
past_sends = st.lists(
    st.builds(
        PastSend,
        at=st.integers(-2 * 86_400 * 10**6, 60 * 10**6).map(lambda us: NOW + dt.timedelta(microseconds=us)),
        recipients=st.integers(1, 30),
    ),
    max_size=40,
)


@given(limits_strategy, past_sends, st.integers(1, 50))
def test_a_message_fits_exactly_when_every_window_has_room(
    limits: SendingLimits, past: list[PastSend], recipients: int
) -> None:
    decision = decide(limits, past, recipients, NOW)

    never = (limits.max_recipients_per_message or recipients) < recipients or any(
        window.max_recipients is not None and window.max_recipients < recipients for window in limits.windows
    )
    assert isinstance(decision, Refused) == never
    if isinstance(decision, Fits):
        assert fits_at(limits, past, recipients, NOW)
    if isinstance(decision, NotBefore):
        assert decision.when > NOW
        assert not fits_at(limits, past, recipients, NOW)
        assert fits_at(limits, past, recipients, decision.when)
        assert not fits_at(limits, past, recipients, decision.when - MICROSECOND)  # not a moment later
        assert decide(limits, past, recipients, decision.when) == Fits()


@given(limits_strategy, st.lists(st.tuples(st.integers(0, 3 * 3600), st.integers(1, 30)), max_size=30))
def test_sending_each_message_when_it_is_told_never_breaks_a_cap(
    limits: SendingLimits, requests: list[tuple[int, int]]
) -> None:
    sent: list[PastSend] = []
    clock = NOW
    for delay, recipients in requests:
        clock += dt.timedelta(seconds=delay)
        decision = decide(limits, sent, recipients, clock)
        if isinstance(decision, NotBefore):
            clock = decision.when
            decision = decide(limits, sent, recipients, clock)
        if isinstance(decision, Refused):
            continue
        assert decision == Fits()
        assert fits_at(limits, sent, recipients, clock)
        sent.append(PastSend(clock, recipients))


def test_gmail_s_daily_budget_continues_a_day_after_the_first_send_and_says_so() -> None:
    first = NOW - dt.timedelta(hours=20)
    past = [PastSend(first + dt.timedelta(seconds=index), 1) for index in range(2000)]

    decision = decide(GMAIL, past, 1, NOW)

    assert decision == NotBefore(
        first + dt.timedelta(days=1),
        "Gmail allows 2,000 messages a day from one mailbox; it continues at 2026-12-06 16:00:00 UTC",
    )
    assert decide(GMAIL, past[1:], 1, NOW) == Fits()


def test_a_message_over_the_per_message_recipient_cap_is_refused_with_the_reason() -> None:
    assert decide(GMAIL, [], 101, NOW) == Refused(
        "Gmail takes at most 100 recipients in one message; this one has 101"
    )
    assert decide(GMAIL, [], 100, NOW) == Fits()


def test_exchange_s_minute_and_recipient_day_both_hold() -> None:
    busy_minute = [PastSend(NOW - dt.timedelta(seconds=59 - index), 1) for index in range(30)]
    decision = decide(EXCHANGE, busy_minute, 1, NOW)
    assert isinstance(decision, NotBefore)
    assert decision.when == NOW + dt.timedelta(seconds=1)
    assert decision.reason.startswith("Exchange Online allows 30 messages a minute from one mailbox")

    busy_day = [PastSend(NOW - dt.timedelta(hours=23), 9_990)]
    decision = decide(EXCHANGE, busy_day, 11, NOW)
    assert isinstance(decision, NotBefore)
    assert decision.when == NOW + dt.timedelta(hours=1)
    assert "10,000 recipients a day" in decision.reason
    assert decide(EXCHANGE, [], 10_001, NOW) == Refused(
        "Exchange Online allows 10,000 recipients a day; this message has 10,001"
    )


def test_no_limits_means_every_message_fits() -> None:
    past = [PastSend(NOW, 10_000)] * 100
    assert decide(SendingLimits("SMTP"), past, 5_000, NOW) == Fits()
