"""When steps go out: delays in calendar or business days, the send window, zones and their clock
changes. Pure arithmetic, checked by example and by property."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from touchline.outbound.sequences.timing import (
    SendWindow,
    add_days,
    due_after_pause,
    into_window,
    next_opening,
    step_due,
)

BERLIN = ZoneInfo("Europe/Berlin")
ZONES = [
    ZoneInfo(name)
    for name in ("UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata")
]
WORKING_HOURS = SendWindow(time(9), time(17), BERLIN)


def _berlin(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).astimezone(UTC)


def test_business_days_skip_the_weekend() -> None:
    friday = _berlin("2026-12-11T10:00")
    assert add_days(friday, 1, business_days=True, zone=BERLIN) == _berlin("2026-12-14T10:00")
    assert add_days(friday, 5, business_days=True, zone=BERLIN) == _berlin("2026-12-18T10:00")
    assert add_days(friday, 1, business_days=False, zone=BERLIN) == _berlin("2026-12-12T10:00")


def test_a_day_across_the_clock_change_keeps_the_local_hour() -> None:
    saturday = _berlin("2027-03-27T10:00")
    sunday = add_days(saturday, 1, business_days=False, zone=BERLIN)
    assert sunday - saturday == timedelta(hours=23)
    assert sunday.astimezone(BERLIN).hour == 10


def test_the_window_moves_a_step_to_the_next_opening() -> None:
    assert into_window(_berlin("2026-12-07T07:30"), WORKING_HOURS) == _berlin("2026-12-07T09:00")
    assert into_window(_berlin("2026-12-07T12:00"), WORKING_HOURS) == _berlin("2026-12-07T12:00")
    assert into_window(_berlin("2026-12-07T17:00"), WORKING_HOURS) == _berlin("2026-12-08T09:00")
    assert into_window(_berlin("2026-12-11T18:00"), WORKING_HOURS) == _berlin("2026-12-14T09:00")
    every_day = SendWindow(time(9), time(17), BERLIN, business_days_only=False)
    assert into_window(_berlin("2026-12-11T18:00"), every_day) == _berlin("2026-12-12T09:00")


def test_a_window_opening_inside_a_skipped_hour_opens_just_after_it() -> None:
    night = SendWindow(time(2, 30), time(4), BERLIN, business_days_only=False)
    opens = into_window(_berlin("2027-03-28T00:00"), night)
    assert opens == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)  # 03:30 summer time


def test_a_step_overdue_after_a_pause_waits_for_the_next_opening() -> None:
    due = _berlin("2026-12-08T10:00")
    assert due_after_pause(due, _berlin("2026-12-07T12:00"), WORKING_HOURS) == due
    assert due_after_pause(due, _berlin("2026-12-10T13:00"), WORKING_HOURS) == _berlin("2026-12-11T09:00")


def test_inverted_windows_are_refused() -> None:
    with pytest.raises(ValueError, match="starts before it ends"):
        SendWindow(time(17), time(9), BERLIN)


moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC))
windows = st.builds(
    lambda zone, start, length, business: SendWindow(
        time(start // 60, start % 60),
        time(min(start + length, 1439) // 60, min(start + length, 1439) % 60),
        zone,
        business,
    ),
    st.sampled_from(ZONES),
    st.integers(0, 22 * 60),
    st.integers(1, 12 * 60),
    st.booleans(),
)


def _inside(moment: datetime, window: SendWindow) -> bool:
    local = moment.astimezone(window.zone)
    weekday_ok = not window.business_days_only or local.weekday() < 5
    opens = datetime.combine(local.date(), window.start, tzinfo=window.zone).astimezone(UTC)
    closes = datetime.combine(local.date(), window.end, tzinfo=window.zone).astimezone(UTC)
    return weekday_ok and opens <= moment < closes


@given(moments, windows)
def test_into_window_is_never_early_lands_inside_and_keeps_what_is_inside(
    moment: datetime, window: SendWindow
) -> None:
    moved = into_window(moment, window)
    assert moved >= moment
    assert _inside(moved, window)
    assert into_window(moved, window) == moved
    if _inside(moment, window):
        assert moved == moment


@given(moments, windows)
def test_a_moment_outside_waits_for_the_very_next_opening(moment: datetime, window: SendWindow) -> None:
    moved = into_window(moment, window)
    if moved > moment:
        assert moved == next_opening(moment, window)
        assert moved.astimezone(window.zone).time() >= window.start
        assert not _inside(max(moment, moved - timedelta(minutes=1)), window)


@given(moments, st.integers(0, 30), st.booleans(), st.sampled_from(ZONES))
def test_a_delay_is_at_least_that_many_days_of_the_calendar(
    moment: datetime, days: int, business: bool, zone: ZoneInfo
) -> None:
    later = add_days(moment, days, business_days=business, zone=zone)
    local_days = (later.astimezone(zone).date() - moment.astimezone(zone).date()).days
    assert local_days >= days
    if business:
        # Every 5 business days span one weekend: at most 2 more days per started week, plus one.
        assert local_days <= days + 2 * (days // 5 + 1)
        start = moment.astimezone(zone).date()
        counted = sum(1 for n in range(1, local_days + 1) if (start + timedelta(days=n)).weekday() < 5)
        assert counted == days
    else:
        assert local_days == days


@given(moments, st.integers(0, 30), windows)
def test_a_step_is_due_inside_the_window_and_after_its_delay(
    moment: datetime, days: int, window: SendWindow
) -> None:
    due = step_due(moment, days, window)
    assert _inside(due, window)
    assert due >= add_days(moment, days, business_days=window.business_days_only, zone=window.zone)
