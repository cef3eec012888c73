"""The engagement rules: the 0/100/null table, click and reply imply an open, each machine signal with
its reason, and what is news for the sender."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from touchline.outbound.engagement import rules
from touchline.outbound.engagement.rules import Event, Outcome, SentEmail

SENT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LATER = SENT + timedelta(hours=1)


def event(
    kind: str, at: datetime = LATER, *, id: str | None = None, link: str | None = None, **more: object
) -> Event:
    return Event(id=id or f"{kind}-{at.timestamp()}-{link}", kind=kind, occurred_at=at, link_id=link, **more)  # type: ignore[arg-type]


MACHINE = "user agent GoogleImageProxy"


@pytest.mark.parametrize(
    ("track_opens", "track_clicks", "events", "expected"),
    [
        # nothing happened
        (True, True, [], (0, 0, 0, 0, 0)),
        # tracking off: unknown, whatever happened; replies are always tracked
        (False, False, [], (None, None, 0, None, None)),
        (False, False, [event("reply")], (None, None, 100, None, None)),
        # a person opened
        (True, True, [event("open")], (100, 0, 0, 100, 0)),
        # only a proxy opened: the human open rate is unknown, not 100
        (True, True, [event("open", machine_reason=MACHINE)], (100, 0, 0, None, 0)),
        # a click implies an open
        (True, True, [event("click", link="a")], (100, 100, 0, 100, 100)),
        # a scanner's click: opened and clicked, neither known of a person
        (True, True, [event("click", link="a", machine_reason=MACHINE)], (100, 100, 0, None, None)),
        # a reply implies an open, of a person
        (True, True, [event("reply")], (100, 0, 100, 100, 0)),
        # a proxy's open and a person's click
        (
            True,
            True,
            [event("open", machine_reason=MACHINE), event("click", link="a")],
            (100, 100, 0, 100, 100),
        ),
        # open tracking off, click tracked
        (False, True, [event("click", link="a")], (None, 100, 0, None, 100)),
    ],
)
def test_the_rates_table(
    track_opens: bool, track_clicks: bool, events: list[Event], expected: tuple[int | None, ...]
) -> None:
    result = rules.outcome(SentEmail(SENT, track_opens, track_clicks), events)
    assert (
        result.open_rate,
        result.click_rate,
        result.reply_rate,
        result.human_open_rate,
        result.human_click_rate,
    ) == expected


KINDS = ("open", "click", "reply", "auto_reply", "bounce", "honeypot")


@st.composite
def events_and_switches(draw: st.DrawFn) -> tuple[SentEmail, list[Event]]:
    email = SentEmail(SENT, draw(st.booleans()), draw(st.booleans()), draw(st.integers(0, 6)))
    count = draw(st.integers(0, 12))
    found = []
    for index in range(count):
        kind = draw(st.sampled_from(KINDS))
        found.append(
            Event(
                id=str(index),
                kind=kind,
                occurred_at=SENT + timedelta(milliseconds=draw(st.integers(0, 60_000))),
                link_id=draw(st.sampled_from(["a", "b", "c", "d", None])),
                machine_reason=draw(st.sampled_from([None, None, MACHINE])),
                bounce=draw(st.sampled_from(["hard", "soft", "blocked", "delayed"]))
                if kind == "bounce"
                else None,
            )
        )
    return email, found


@given(events_and_switches())
def test_rates_hold_their_meaning_for_any_events(case: tuple[SentEmail, list[Event]]) -> None:
    email, found = case
    result = rules.outcome(email, rules.labelled(email, found))
    assert result.reply_rate in (0, 100)
    for rate, tracked in (
        (result.open_rate, email.track_opens),
        (result.click_rate, email.track_clicks),
        (result.human_open_rate, email.track_opens),
        (result.human_click_rate, email.track_clicks),
    ):
        assert rate in ((0, 100, None) if tracked else (None,))
    if email.track_opens:
        assert result.open_rate in (0, 100)
    if email.track_clicks:
        assert result.click_rate == (100 if result.clicks else 0)
    if email.track_opens and (result.clicks or result.replies):
        assert result.open_rate == 100  # a click or a reply implies an open
    if result.human_open_rate == 100:
        assert result.open_rate == 100
    if email.track_opens and result.opens + result.clicks + result.replies == 0:
        assert result.open_rate == 0
        assert result.human_open_rate == 0
    assert result.human_opens <= result.opens
    assert result.human_clicks <= result.clicks


@given(events_and_switches())
def test_labels_only_ever_add(case: tuple[SentEmail, list[Event]]) -> None:
    email, found = case
    after = {e.id: e for e in rules.labelled(email, found)}
    for before in found:
        if before.machine_reason is not None:
            assert after[before.id].machine_reason == before.machine_reason


def test_an_open_within_two_seconds_of_sending_is_a_machines() -> None:
    email = SentEmail(SENT, True, True)
    labels = rules.machine_labels(
        email, [event("open", SENT + timedelta(seconds=1.5), id="soon"), event("open", id="later")]
    )
    assert labels == {"soon": "open 1.5 s after sending (within 2 s)"}


def test_three_links_clicked_within_two_seconds_are_a_machines() -> None:
    email = SentEmail(SENT, True, True, tracked_links=5)
    clicks = [
        event("click", LATER + timedelta(milliseconds=600 * n), id=f"c{n}", link=f"l{n}") for n in range(3)
    ]
    alone = event("click", LATER + timedelta(minutes=5), id="alone", link="l4")
    labels = rules.machine_labels(email, [*clicks, alone])
    assert labels == {f"c{n}": "3 links clicked within 2 s" for n in range(3)}


def test_every_link_clicked_within_two_seconds_is_a_machines() -> None:
    email = SentEmail(SENT, True, True, tracked_links=2)
    clicks = [event("click", LATER + timedelta(seconds=n), id=f"c{n}", link=f"l{n}") for n in range(2)]
    assert rules.machine_labels(email, clicks) == {
        "c0": "every link clicked within 2 s",
        "c1": "every link clicked within 2 s",
    }


def test_two_clicks_on_one_link_are_a_persons() -> None:
    email = SentEmail(SENT, True, True, tracked_links=3)
    clicks = [event("click", LATER + timedelta(seconds=n), id=f"c{n}", link="l0") for n in range(2)]
    assert rules.machine_labels(email, clicks) == {}


def test_a_honeypot_hit_marks_clicks_within_ten_seconds() -> None:
    email = SentEmail(SENT, True, True, tracked_links=9)
    hit = event("honeypot", LATER, id="hit")
    near = event("click", LATER - timedelta(seconds=9), id="near", link="a")
    after = event("click", LATER + timedelta(seconds=10), id="after", link="b")
    far = event("click", LATER + timedelta(seconds=11), id="far", link="c")
    labels = rules.machine_labels(email, [hit, near, after, far])
    assert labels == {
        "hit": "followed the hidden honeypot link",
        "near": "click within 10 s of a hit on the hidden honeypot link",
        "after": "click within 10 s of a hit on the hidden honeypot link",
    }


def test_a_request_level_reason_is_kept() -> None:
    email = SentEmail(SENT, True, True)
    head = event("open", SENT + timedelta(seconds=1), id="head", machine_reason="HEAD request")
    assert rules.machine_labels(email, [head]) == {}
    assert rules.labelled(email, [head])[0].machine_reason == "HEAD request"


def test_the_worst_bounce_is_the_records_and_a_delay_is_none() -> None:
    email = SentEmail(SENT, True, True)
    assert rules.outcome(email, [event("bounce", bounce="delayed")]).bounce is None
    found = [event("bounce", id=kind, bounce=kind) for kind in ("soft", "hard", "blocked")]
    result = rules.outcome(email, found)
    assert (result.bounce, result.bounces) == ("hard", 3)
    assert rules.outcome(email, found[::2]).bounce == "blocked"


def test_counts_and_times() -> None:
    email = SentEmail(SENT, True, True)
    found = [
        event("open", LATER, id="o1", machine_reason=MACHINE),
        event("open", LATER + timedelta(minutes=1), id="o2"),
        event("click", LATER + timedelta(minutes=2), id="c1", link="a"),
        event("auto_reply", LATER + timedelta(minutes=3), id="a1"),
    ]
    result = rules.outcome(email, found)
    assert (result.opens, result.human_opens, result.clicks, result.human_clicks, result.replies) == (
        2,
        1,
        1,
        1,
        0,
    )
    assert result.auto_replies == 1
    assert result.reply_rate == 0
    assert (result.first_event_at, result.last_event_at) == (LATER, LATER + timedelta(minutes=3))


def test_news_is_the_first_human_open_new_human_clicks_replies_and_bounces() -> None:
    email = SentEmail(SENT, True, True)
    proxy = event("open", LATER, id="proxy", machine_reason=MACHINE)
    first = [proxy]
    before = rules.outcome(email, first)
    assert rules.news(Outcome(), before, first) == []  # machine-only: nothing to tell
    person = event("open", LATER + timedelta(minutes=1), id="person")
    click = event("click", LATER + timedelta(minutes=2), id="click", link="a", summary="https://example.com/")
    second = [proxy, person, click]
    after = rules.outcome(email, second)
    assert [(n.kind, n.event.id) for n in rules.news(before, after, second)] == [
        ("open", "person"),
        ("click", "click"),
    ]
    # A refresh that finds nothing new tells nothing.
    assert rules.news(after, after, second) == []
    again = event("open", LATER + timedelta(minutes=3), id="again")
    reply = event("reply", LATER + timedelta(minutes=4), id="reply", summary="Re: hello")
    bounce = event("bounce", LATER + timedelta(minutes=5), id="bounce", bounce="hard", summary="hard 5.1.1")
    third = [*second, again, reply, bounce]
    news = rules.news(after, rules.outcome(email, third), third)
    assert [(n.kind, n.event.summary) for n in news] == [("reply", "Re: hello"), ("bounce", "hard 5.1.1")]
