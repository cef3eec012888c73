"""Provider sending limits as rolling windows: may a mailbox send a message to N recipients now?

Pure arithmetic, no I/O; ``outbound.send.budget`` keeps the past sends in the database and asks here.

A window (a day, a minute) caps the messages and/or recipients sent within any span of its length:
a send made at ``t`` counts against the window until ``t + length``. When a new message does not fit,
the answer is the earliest moment it will, when enough of the oldest sends have left every window
(``NotBefore``): a bulk send that uses up today's budget continues when the window frees, and says so.
A message that can never fit (more recipients than one message may carry, or than a whole window
allows) is ``Refused``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True, slots=True)
class Window:
    length: timedelta
    name: str
    """How people say the length: "a day", "a minute"."""
    max_messages: int | None = None
    max_recipients: int | None = None

    def __post_init__(self) -> None:
        if (self.max_messages is not None and self.max_messages < 1) or (
            self.max_recipients is not None and self.max_recipients < 1
        ):
            raise ValueError("a window's caps are at least 1 (None for no cap)")


@dataclass(frozen=True, slots=True)
class SendingLimits:
    """What one way of sending allows (Gmail, Exchange Online, an SMTP server); None is no cap."""

    service_name: str
    max_recipients_per_message: int | None = None
    windows: tuple[Window, ...] = ()

    @property
    def longest_window(self) -> timedelta:
        return max((window.length for window in self.windows), default=timedelta(0))


@dataclass(frozen=True, slots=True)
class PastSend:
    at: datetime
    recipients: int


@dataclass(frozen=True, slots=True)
class Fits:
    """The message may go now."""


@dataclass(frozen=True, slots=True)
class NotBefore:
    when: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str


Decision = Fits | NotBefore | Refused


def decide(limits: SendingLimits, past: Sequence[PastSend], recipients: int, now: datetime) -> Decision:
    """Whether a message to ``recipients`` recipients fits at ``now`` beside the ``past`` sends.

    Sends stamped after ``now`` (another worker's clock) count as if made now.
    """
    if recipients < 1:
        raise ValueError("a message has at least one recipient")
    refusal = never_fits(limits, recipients)
    if refusal is not None:
        return Refused(refusal)
    earliest = now
    reason = ""
    for window in limits.windows:
        free_at = _window_frees_at(window, past, recipients, now)
        if free_at > earliest:
            earliest = free_at
            reason = _cap_reason(limits.service_name, window, past, recipients, now)
    if earliest == now:
        return Fits()
    return NotBefore(earliest, f"{reason}; it continues at {earliest.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC")


def never_fits(limits: SendingLimits, recipients: int) -> str | None:
    """Why a message to ``recipients`` recipients can never go this way, or None."""
    cap = limits.max_recipients_per_message
    if cap is not None and recipients > cap:
        return (
            f"{limits.service_name} takes at most {cap:,} recipients in one message; "
            f"this one has {recipients:,}"
        )
    for window in limits.windows:
        if window.max_recipients is not None and recipients > window.max_recipients:
            return (
                f"{limits.service_name} allows {window.max_recipients:,} recipients {window.name}; "
                f"this message has {recipients:,}"
            )
    return None


def _in_window(window: Window, past: Sequence[PastSend], now: datetime) -> list[PastSend]:
    return sorted((send for send in past if send.at > now - window.length), key=lambda send: send.at)


def has_room(window: Window, messages: int, recipients_sent: int, recipients: int) -> bool:
    """Whether a window already counting ``messages`` messages to ``recipients_sent`` recipients
    takes one more message to ``recipients`` recipients."""
    if window.max_messages is not None and messages + 1 > window.max_messages:
        return False
    return window.max_recipients is None or recipients_sent + recipients <= window.max_recipients


def _window_frees_at(window: Window, past: Sequence[PastSend], recipients: int, now: datetime) -> datetime:
    """The earliest moment from ``now`` when the message fits this window, as old sends leave it."""
    sends = _in_window(window, past, now)
    messages = len(sends)
    recipients_sent = sum(send.recipients for send in sends)
    for oldest in [None, *sends]:
        if oldest is not None:
            messages -= 1
            recipients_sent -= oldest.recipients
        if has_room(window, messages, recipients_sent, recipients):
            # A send made at t stops counting at t + length, exactly.
            return now if oldest is None else max(now, oldest.at + window.length)
    raise AssertionError("an empty window fits any message that never_fits lets through")


def _cap_reason(
    service_name: str, window: Window, past: Sequence[PastSend], recipients: int, now: datetime
) -> str:
    sends = _in_window(window, past, now)
    if window.max_messages is not None and len(sends) + 1 > window.max_messages:
        return f"{service_name} allows {window.max_messages:,} messages {window.name} from one mailbox"
    return f"{service_name} allows {window.max_recipients:,} recipients {window.name} from one mailbox"
