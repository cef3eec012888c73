"""Time zones by their IANA names (`Europe/Berlin`), and wall-clock times read and shown in one.

Stored moments are aware UTC datetimes; people type and read the wall-clock time of their
workspace's zone. zoneinfo resolves a wall time that a daylight-saving change skips (02:30 on the
spring-forward night) with the offset before the change, and one it repeats with the first of the
two: the earlier moment.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

DEFAULT_ZONE: Final = "UTC"
MAX_ZONE_NAME_CHARS: Final = 64


def zone_named(name: str | None) -> ZoneInfo | None:
    """The IANA zone called `name`, or None when there is no such zone."""
    if not name or not name.strip() or len(name) > MAX_ZONE_NAME_CHARS:
        return None
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return None


@cache
def zone_names() -> tuple[str, ...]:
    """Every zone name this system knows, sorted: the choices a page offers. Read once: listing them
    walks the zone database's files."""
    return tuple(sorted(available_timezones()))


def zone_or_default(name: str | None) -> ZoneInfo:
    """The zone called `name`; UTC stands in for a name this system's zone data does not know (only
    names `zone_named` accepted are stored, but the system's zone data may lose one)."""
    return zone_named(name) or ZoneInfo(DEFAULT_ZONE)


def zone_problem(name: str) -> str:
    """What to say about a name that is no time zone."""
    return f"{name!r} is not a time zone; use an IANA name like Europe/Berlin"


def from_wall_clock(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC moment of a naive wall-clock time read in `zone`."""
    return wall.replace(tzinfo=zone).astimezone(UTC)


def on_wall_clock(moment: datetime, zone: ZoneInfo) -> datetime:
    """An aware moment as the wall clock of `zone` shows it."""
    return moment.astimezone(zone)
