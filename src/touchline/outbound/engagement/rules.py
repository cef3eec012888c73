"""Engagement rules, free of I/O: which events machines made, what an email's record says, and
what is new enough to tell its sender (SPEC §7).

Each machine rule is a small predicate that returns a readable reason or None. Reasons found when a
request arrives (a HEAD request, a scanner's user agent, an Apple Private Relay address) are already
on the event; the rules here need the whole email's events and only ever add a label.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final, Literal

SOON_AFTER_SENDING: Final = timedelta(seconds=2)
"""Nobody reads an email and opens or clicks it this soon after it left: a scanner did."""
LINK_BURST: Final = timedelta(seconds=2)
"""Clicks on many links inside this span are a scanner following every link."""
LINK_BURST_LINKS: Final = 3
HONEYPOT_SPAN: Final = timedelta(seconds=10)
"""Clicks this close to a hit on the hidden honeypot link come from whatever followed it."""

BounceClass = Literal["hard", "blocked", "soft"]
BOUNCE_SEVERITY: Final[Mapping[str, int]] = {"soft": 1, "blocked": 2, "hard": 3}
"""The record keeps the worst bounce: hard > blocked > soft. `delayed` stays an event only."""
NoticeKind = Literal["open", "click", "reply", "bounce"]


@dataclass(frozen=True, slots=True)
class SentEmail:
    """What the rules need to know about a sent email."""

    sent_at: datetime | None
    track_opens: bool
    track_clicks: bool
    tracked_links: int = 0
    """How many links of its HTML part are tracked (not the pixel, not the honeypot)."""


@dataclass(frozen=True, slots=True)
class Event:
    """One engagement event as the rules see it."""

    id: str
    kind: str
    occurred_at: datetime
    link_id: str | None = None
    machine_reason: str | None = None
    bounce: str | None = None
    """A bounce event's class: hard, soft, blocked or delayed."""
    summary: str = ""
    """What a notice says about it: a click's URL, a reply's subject, a bounce's class and status."""

    @property
    def human(self) -> bool:
        return self.machine_reason is None


# --- machine labels ----------------------------------------------------------------------------------


def sent_moments_ago(email: SentEmail, event: Event) -> str | None:
    if event.kind not in ("open", "click") or email.sent_at is None:
        return None
    after = event.occurred_at - email.sent_at
    if after <= SOON_AFTER_SENDING:
        return f"{event.kind} {after.total_seconds():.1f} s after sending (within 2 s)"
    return None


def link_burst(email: SentEmail, event: Event, clicks: Sequence[Event]) -> str | None:
    """Three or more links (or every link of an email with two or more) clicked within 2 s, this
    click among them."""
    if event.kind != "click":
        return None
    for start in clicks:
        if not start.occurred_at <= event.occurred_at <= start.occurred_at + LINK_BURST:
            continue
        window = [c for c in clicks if start.occurred_at <= c.occurred_at <= start.occurred_at + LINK_BURST]
        links = {c.link_id for c in window if c.link_id is not None}
        every_link = email.tracked_links >= 2 and len(links) >= email.tracked_links
        if len(links) >= LINK_BURST_LINKS or every_link:
            described = "every link" if every_link else f"{len(links)} links"
            return f"{described} clicked within 2 s"
    return None


def near_honeypot(event: Event, honeypot_hits: Sequence[Event]) -> str | None:
    if event.kind == "honeypot":
        return "followed the hidden honeypot link"
    if event.kind != "click":
        return None
    for hit in honeypot_hits:
        if abs(event.occurred_at - hit.occurred_at) <= HONEYPOT_SPAN:
            return "click within 10 s of a hit on the hidden honeypot link"
    return None


def machine_labels(email: SentEmail, events: Sequence[Event]) -> dict[str, str]:
    """The reason for each event that the email-level rules take to be a machine's, by event id;
    events that already carry a reason keep it and are not listed."""
    clicks = sorted((e for e in events if e.kind == "click"), key=lambda e: e.occurred_at)
    hits = [e for e in events if e.kind == "honeypot"]
    chain: tuple[Callable[[Event], str | None], ...] = (
        lambda event: near_honeypot(event, hits),
        lambda event: sent_moments_ago(email, event),
        lambda event: link_burst(email, event, clicks),
    )
    labels = {}
    for event in events:
        if event.machine_reason is not None:
            continue
        for rule in chain:
            reason = rule(event)
            if reason is not None:
                labels[event.id] = reason
                break
    return labels


def labelled(email: SentEmail, events: Sequence[Event]) -> list[Event]:
    """The events with the email-level labels added, in time order."""
    labels = machine_labels(email, events)
    return sorted(
        (replace(e, machine_reason=labels[e.id]) if e.id in labels else e for e in events),
        key=lambda e: (e.occurred_at, e.id),
    )


# --- the record ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """An Email Engagement record's figures."""

    open_rate: int | None = None
    click_rate: int | None = None
    reply_rate: int = 0
    human_open_rate: int | None = None
    human_click_rate: int | None = None
    opens: int = 0
    clicks: int = 0
    human_opens: int = 0
    human_clicks: int = 0
    replies: int = 0
    auto_replies: int = 0
    bounces: int = 0
    bounce: BounceClass | None = None
    first_event_at: datetime | None = None
    last_event_at: datetime | None = None


def _rate(happened: bool) -> int:
    return 100 if happened else 0


def _human_rate(tracked: bool, human: bool, any_at_all: bool) -> int | None:
    """100 when a person did it; unknown when only machines did (a proxy's open says nothing about
    the person); 0 when nothing did; unknown when it was not tracked."""
    if not tracked:
        return None
    if human:
        return 100
    return None if any_at_all else 0


def worst_bounce(classes: Sequence[str | None]) -> BounceClass | None:
    ranked = [c for c in classes if c in BOUNCE_SEVERITY]
    if not ranked:
        return None
    worst = max(ranked, key=lambda c: BOUNCE_SEVERITY[c or ""])
    return worst  # type: ignore[return-value]  # one of BOUNCE_SEVERITY's keys


def outcome(email: SentEmail, events: Sequence[Event]) -> Outcome:
    """The record of an email from all of its events (labelled): a click or a reply implies an open."""
    opens = [e for e in events if e.kind == "open"]
    clicks = [e for e in events if e.kind == "click"]
    replies = [e for e in events if e.kind == "reply"]
    bounces = [e for e in events if e.kind == "bounce" and e.bounce in BOUNCE_SEVERITY]
    human_clicked = any(e.human for e in clicks)
    human_opened = any(e.human for e in opens) or human_clicked or bool(replies)
    opened = bool(opens or clicks or replies)
    times = [e.occurred_at for e in events]
    return Outcome(
        open_rate=_rate(opened) if email.track_opens else None,
        click_rate=_rate(bool(clicks)) if email.track_clicks else None,
        reply_rate=_rate(bool(replies)),
        human_open_rate=_human_rate(email.track_opens, human_opened, opened),
        human_click_rate=_human_rate(email.track_clicks, human_clicked, bool(clicks)),
        opens=len(opens),
        clicks=len(clicks),
        human_opens=sum(1 for e in opens if e.human),
        human_clicks=sum(1 for e in clicks if e.human),
        replies=len(replies),
        auto_replies=sum(1 for e in events if e.kind == "auto_reply"),
        bounces=len(bounces),
        bounce=worst_bounce([e.bounce for e in bounces]),
        first_event_at=min(times) if times else None,
        last_event_at=max(times) if times else None,
    )


# --- what to tell the sender -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class News:
    """Something the sender has not been told: the first human open, a human click, a reply, a bounce."""

    kind: NoticeKind
    event: Event


def _latest(events: Sequence[Event], count: int) -> list[Event]:
    return list(events[len(events) - count :]) if count > 0 else []


def news(before: Outcome, after: Outcome, events: Sequence[Event]) -> list[News]:
    """What a refresh found that the record did not have (events labelled, in time order); events
    that machines made are never news."""
    found: list[News] = []
    human_opens = [e for e in events if e.kind == "open" and e.human]
    if before.human_opens == 0 and human_opens:
        found.append(News("open", human_opens[0]))
    human_clicks = [e for e in events if e.kind == "click" and e.human]
    found.extend(News("click", e) for e in _latest(human_clicks, after.human_clicks - before.human_clicks))
    replies = [e for e in events if e.kind == "reply"]
    found.extend(News("reply", e) for e in _latest(replies, after.replies - before.replies))
    bounces = [e for e in events if e.kind == "bounce" and e.bounce in BOUNCE_SEVERITY]
    found.extend(News("bounce", e) for e in _latest(bounces, after.bounces - before.bounces))
    return found
