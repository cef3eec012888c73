"""Averages of Email Engagement rates from the counts behind them. Pure: no I/O.

A record's rate is 100, 0 or null (SPEC §7). The average of a rate over a group is the share of the
records whose rate is known that are 100: a null (tracking off, or for human rates: only machines
acted) is left out of both the numerator and the denominator, never counted as 0. The counts are sums,
so groups of groups add up (a day's counts plus the next day's are the two days' counts).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, timedelta


@dataclass(frozen=True, slots=True)
class Counts:
    """The counts behind every average of one group of records."""

    sent: int = 0
    open_tracked: int = 0
    """Records whose open_rate is known (open tracking was on)."""
    opened: int = 0
    human_open_known: int = 0
    """Records whose human_open_rate is known (a person opened it, or nobody did)."""
    human_opened: int = 0
    click_tracked: int = 0
    clicked: int = 0
    human_click_known: int = 0
    human_clicked: int = 0
    replied: int = 0
    bounced: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Counts)))

    def __neg__(self) -> Counts:
        return Counts(*(-getattr(self, f.name) for f in fields(Counts)))


@dataclass(frozen=True, slots=True)
class Rates:
    """Average rates in percent (0-100); None when no record of the group has that rate known."""

    open_rate: float | None
    human_open_rate: float | None
    click_rate: float | None
    human_click_rate: float | None
    reply_rate: float | None
    bounce_rate: float | None


def share(part: int, whole: int) -> float | None:
    """`part` of `whole` in percent, rounded to 0.01; None for an empty whole."""
    if whole <= 0:
        return None
    return round(100.0 * part / whole, 2)


def rates(counts: Counts) -> Rates:
    return Rates(
        open_rate=share(counts.opened, counts.open_tracked),
        human_open_rate=share(counts.human_opened, counts.human_open_known),
        click_rate=share(counts.clicked, counts.click_tracked),
        human_click_rate=share(counts.human_clicked, counts.human_click_known),
        reply_rate=share(counts.replied, counts.sent),  # a reply rate is never null
        bounce_rate=share(counts.bounced, counts.sent),
    )


def counts_of(records: list[tuple[int | None, int | None, int | None, int | None, int, bool]]) -> Counts:
    """Counts of records given as (open_rate, human_open_rate, click_rate, human_click_rate,
    reply_rate, bounced): the reference the database's sums are checked against."""
    total = Counts()
    for open_rate, human_open, click_rate, human_click, reply_rate, bounced in records:
        total = total + Counts(
            sent=1,
            open_tracked=open_rate is not None,
            opened=open_rate == 100,
            human_open_known=human_open is not None,
            human_opened=human_open == 100,
            click_tracked=click_rate is not None,
            clicked=click_rate == 100,
            human_click_known=human_click is not None,
            human_clicked=human_click == 100,
            replied=reply_rate == 100,
            bounced=bounced,
        )
    return total


# --- rollup plans ------------------------------------------------------------------------------------


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


@dataclass(frozen=True, slots=True)
class Span:
    """Which rollup rows cover a range of UTC days: month rows of `months` (first days, both ends
    included, None: unbounded) and day rows of each of `days` (both ends included)."""

    months: tuple[date | None, date | None] | None
    days: tuple[tuple[date | None, date | None], ...]


def span(start: date | None, end: date | None) -> Span:
    """The fewest rows for `start`..`end` (None: unbounded): a month row for each whole month inside,
    day rows for the partial months at its edges."""
    first = None if start is None else (start if start.day == 1 else _next_month(start))
    last = None if end is None else _next_month(end) - timedelta(days=1)
    last_month = None if end is None else (end.replace(day=1) if last == end else _month_before(end))
    if first is not None and last_month is not None and first > last_month:
        return Span(None, ((start, end),))
    days: list[tuple[date | None, date | None]] = []
    if start is not None and first is not None and start < first:
        days.append((start, first - timedelta(days=1)))
    if end is not None and last_month is not None and end >= _next_month(last_month):
        days.append((_next_month(last_month), end))
    return Span((first, last_month), tuple(days))


def _month_before(day: date) -> date:
    first = day.replace(day=1)
    return (first - timedelta(days=1)).replace(day=1)


def period_of(day: date, period: str) -> date:
    """The first day of the day, ISO week (from Monday) or month that holds `day`."""
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day
