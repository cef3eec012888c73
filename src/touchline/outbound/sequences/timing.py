"""When a sequence step goes out: the delay after the step before, then the recipient's send window.

Pure arithmetic on aware datetimes. Days are counted on the recipient's local calendar (zoneinfo), so
a delay across a daylight-saving change keeps the local time of day, and the window is the same
wall-clock hours on every day of the year.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from touchline.kit.zones import from_wall_clock

SATURDAY: Final = 5


@dataclass(frozen=True, slots=True)
class SendWindow:
    """Local hours [start, end) on the days steps may leave; business days are Monday to Friday."""

    start: time
    end: time
    zone: ZoneInfo
    business_days_only: bool = True

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError("a send window starts before it ends, on the same day")


def _sending_day(day: date, window: SendWindow) -> bool:
    return not window.business_days_only or day.weekday() < SATURDAY


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    # A wall time skipped by a daylight-saving change (02:30 on the spring-forward night) lands just
    # after the gap (kit.zones): still inside the window.
    return from_wall_clock(datetime.combine(day, at), zone)


def add_days(moment: datetime, days: int, *, business_days: bool, zone: ZoneInfo) -> datetime:
    """`days` local days after `moment` at the same local time; only Monday-Friday count when
    `business_days` (a step due on a weekend is then moved by the window)."""
    local = moment.astimezone(zone)
    day = local.date()
    if business_days:
        remaining = days
        while remaining > 0:
            day += timedelta(days=1)
            if day.weekday() < SATURDAY:
                remaining -= 1
    else:
        day += timedelta(days=days)
    return _local(day, local.time().replace(tzinfo=None), zone)


def into_window(moment: datetime, window: SendWindow) -> datetime:
    """The first moment at or after `moment` inside the window."""
    local = moment.astimezone(window.zone)
    day = local.date()
    if _sending_day(day, window):
        opens, closes = _local(day, window.start, window.zone), _local(day, window.end, window.zone)
        if opens <= moment < closes:
            return moment.astimezone(UTC)
        if moment < opens:
            return opens
    return next_opening(moment, window)


def next_opening(moment: datetime, window: SendWindow) -> datetime:
    """The first time the window opens at or after `moment` (now, when it opens exactly now)."""
    day = moment.astimezone(window.zone).date()
    while True:
        if _sending_day(day, window):
            opens = _local(day, window.start, window.zone)
            if opens >= moment:
                return opens
        day += timedelta(days=1)


def step_due(previous: datetime, delay_days: int, window: SendWindow) -> datetime:
    """When a step goes out: `delay_days` after the step before (or the enrolment), in the window."""
    delayed = add_days(previous, delay_days, business_days=window.business_days_only, zone=window.zone)
    return into_window(delayed, window)


def due_after_pause(due: datetime, now: datetime, window: SendWindow) -> datetime:
    """When a resumed enrolment's step goes: as planned when still ahead, else (it fell due while
    paused) at the next opening of the window, not at once."""
    if due >= now:
        return due
    return next_opening(now, window)
