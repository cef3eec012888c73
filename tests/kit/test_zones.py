"""Time zones by name, and wall-clock times read and shown in them, across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from touchline.kit.zones import from_wall_clock, on_wall_clock, zone_named

BERLIN = ZoneInfo("Europe/Berlin")


def test_only_iana_names_are_zones() -> None:
    assert zone_named("Asia/Tokyo") == ZoneInfo("Asia/Tokyo")
    assert zone_named(" Europe/Berlin ") == BERLIN
    for name in ("Mars/Olympus", "", "   ", None, "../etc/passwd", "/etc/localtime", "Europe/" + "x" * 80):
        assert zone_named(name) is None


def test_wall_clock_times_read_in_a_zone_across_its_clock_changes() -> None:
    assert from_wall_clock(datetime(2027, 1, 5, 9, 0), BERLIN) == datetime(2027, 1, 5, 8, 0, tzinfo=UTC)
    assert from_wall_clock(datetime(2027, 7, 5, 9, 0), BERLIN) == datetime(2027, 7, 5, 7, 0, tzinfo=UTC)
    # 02:30 does not exist on the spring-forward night: read with the winter offset, just after the gap.
    assert from_wall_clock(datetime(2027, 3, 28, 2, 30), BERLIN) == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)
    # 02:30 happens twice on the fall-back night: the earlier of the two.
    assert from_wall_clock(datetime(2027, 10, 31, 2, 30), BERLIN) == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)))
def test_a_moment_shown_on_the_wall_clock_reads_back_as_itself_outside_the_repeated_hour(
    moment: datetime,
) -> None:
    wall = on_wall_clock(moment, BERLIN)
    read_back = from_wall_clock(wall.replace(tzinfo=None), BERLIN)
    # The second pass through the repeated hour of a fall-back night reads back as the first.
    assert read_back == (moment - timedelta(hours=1) if wall.fold else moment)
