"""Provider sending limits held across workers: reserve room for a message before delivering it.

``reserve`` is called in the transaction that claims a send, and its entry commits with the claim.
It first locks the budget's row (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite, inserting the row
takes the database's single write lock), so two workers reserving for one mailbox take turns and
neither sees the other's reservation only after deciding. The decision itself is
``outbound.send.limits.decide`` over the sends still inside the longest window.

A reservation whose message the provider did not take (a refusal or throttling before hand-over)
can be given back with ``release`` in the transaction that records the failure.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, func, select
from sqlalchemy.orm import Session

from touchline.config import Settings
from touchline.inbound.store.bulk import insert_ignoring_duplicates
from touchline.models import Mailbox, SendBudget, SendBudgetEntry
from touchline.outbound.send.limits import (
    Fits,
    NotBefore,
    PastSend,
    Refused,
    SendingLimits,
    Window,
    decide,
    has_room,
    never_fits,
)

RELAY_KEY = "relay"
MINUTE = Window(timedelta(minutes=1), "a minute")
DAY = Window(timedelta(days=1), "a day")
# Entries are kept this much longer than the longest window: a worker whose clock runs behind still
# counts what another worker reserved.
_CLOCK_SKEW_MARGIN = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Reserved:
    """Room was taken for the message; ``entry_id`` is None where no window applies."""

    entry_id: uuid.UUID | None


Reservation = Reserved | NotBefore | Refused


def limits_for_mailbox(mailbox: Mailbox, settings: Settings) -> SendingLimits:
    if mailbox.provider == "gmail":
        return SendingLimits(
            "Gmail",
            max_recipients_per_message=_cap(settings.send_gmail_recipients_per_message),
            windows=_windows((DAY, _cap(settings.send_gmail_messages_per_day), None)),
        )
    if mailbox.provider == "graph":
        return SendingLimits(
            "Exchange Online",
            max_recipients_per_message=_cap(settings.send_graph_recipients_per_message),
            windows=_windows(
                (MINUTE, _cap(settings.send_graph_messages_per_minute), None),
                (DAY, None, _cap(settings.send_graph_recipients_per_day)),
            ),
        )
    return SendingLimits(
        "The mailbox's SMTP server",
        max_recipients_per_message=_cap(settings.send_smtp_recipients_per_message),
        windows=_windows(
            (MINUTE, _cap(settings.send_smtp_messages_per_minute), None),
            (DAY, _cap(settings.send_smtp_messages_per_day), None),
        ),
    )


def relay_limits(settings: Settings) -> SendingLimits:
    return SendingLimits(
        "The relay",
        max_recipients_per_message=_cap(settings.send_relay_recipients_per_message),
        windows=_windows(
            (MINUTE, _cap(settings.send_relay_messages_per_minute), None),
            (DAY, _cap(settings.send_relay_messages_per_day), None),
        ),
    )


def reserve(
    session: Session, mailbox: Mailbox, recipients: int, now: datetime, settings: Settings
) -> Reservation:
    """Room for one message from ``mailbox`` to ``recipients`` recipients at ``now``, or when there
    will be (``NotBefore``, with the reason to show), or why there never will (``Refused``)."""
    limits = limits_for_mailbox(mailbox, settings)
    return _reserve(session, f"mailbox:{mailbox.id}", mailbox.id, limits, recipients, now)


def reserve_relay(session: Session, recipients: int, now: datetime, settings: Settings) -> Reservation:
    return _reserve(session, RELAY_KEY, None, relay_limits(settings), recipients, now)


def release(session: Session, reserved: Reserved) -> None:
    """Give the room back: the provider did not take the message."""
    if reserved.entry_id is not None:
        session.execute(delete(SendBudgetEntry).where(SendBudgetEntry.id == reserved.entry_id))


def _reserve(
    session: Session,
    key: str,
    mailbox_id: uuid.UUID | None,
    limits: SendingLimits,
    recipients: int,
    now: datetime,
) -> Reservation:
    refusal = never_fits(limits, recipients)
    if refusal is not None:
        return Refused(refusal)
    if not limits.windows:
        return Reserved(None)
    _lock(session, key, mailbox_id)
    horizon = now - limits.longest_window
    session.execute(
        delete(SendBudgetEntry).where(
            SendBudgetEntry.budget_key == key, SendBudgetEntry.reserved_at <= horizon - _CLOCK_SKEW_MARGIN
        )
    )
    # Counting in the database is enough while every window has room; the sends themselves are read
    # only to work out when a full window frees.
    if not all(
        has_room(window, messages, recipients_sent, recipients)
        for window, (messages, recipients_sent) in zip(
            limits.windows, _usage(session, key, limits, now), strict=True
        )
    ):
        rows = session.execute(
            select(SendBudgetEntry.reserved_at, SendBudgetEntry.recipients).where(
                SendBudgetEntry.budget_key == key, SendBudgetEntry.reserved_at > horizon
            )
        ).all()
        decision = decide(limits, [PastSend(at, count) for at, count in rows], recipients, now)
        if not isinstance(decision, Fits):
            return decision
    entry = SendBudgetEntry(budget_key=key, reserved_at=now, recipients=recipients)
    session.add(entry)
    session.flush()
    return Reserved(entry.id)


def _usage(session: Session, key: str, limits: SendingLimits, now: datetime) -> list[tuple[int, int]]:
    """Messages and recipients counted in each window at ``now``, in one query."""
    columns = []
    for window in limits.windows:
        inside = SendBudgetEntry.reserved_at > now - window.length
        columns += [
            func.count(case((inside, 1))),
            func.coalesce(func.sum(case((inside, SendBudgetEntry.recipients), else_=0)), 0),
        ]
    row = session.execute(select(*columns).where(SendBudgetEntry.budget_key == key)).one()
    return [(int(row[index]), int(row[index + 1])) for index in range(0, len(columns), 2)]


def _lock(session: Session, key: str, mailbox_id: uuid.UUID | None) -> None:
    # A write first: on SQLite it takes the write lock before anything is read, which serialises
    # reservers there; on PostgreSQL the row then exists to be locked.
    insert_ignoring_duplicates(session, SendBudget, [{"key": key, "mailbox_id": mailbox_id}])
    session.execute(select(SendBudget.key).where(SendBudget.key == key).with_for_update())


def _cap(value: int) -> int | None:
    return value or None


def _windows(*caps: tuple[Window, int | None, int | None]) -> tuple[Window, ...]:
    return tuple(
        Window(window.length, window.name, max_messages=messages, max_recipients=recipients)
        for window, messages, recipients in caps
        if messages is not None or recipients is not None
    )
