"""Sending budgets in the database: reserved, refused, continued later, given back, and shared by workers."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team
from touchline.config import Settings
from touchline.db import session_scope
from touchline.models import Mailbox, SendBudgetEntry
from touchline.outbound.send.budget import Reservation, Reserved, release, reserve, reserve_relay
from touchline.outbound.send.limits import NotBefore, Refused

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


def add_mailbox(sessions: sessionmaker[Session], team: Team, provider: str, user_id: uuid.UUID) -> uuid.UUID:
    with session_scope(sessions) as session:
        mailbox = Mailbox(
            workspace_id=team.workspace_id,
            user_id=user_id,
            provider=provider,
            address=f"{provider}@team-a.example",
            credentials_encrypted="",
        )
        session.add(mailbox)
        session.flush()
        return mailbox.id


def reserve_in_own_transaction(
    sessions: sessionmaker[Session],
    mailbox_id: uuid.UUID,
    recipients: int,
    now: dt.datetime,
    settings: Settings,
) -> Reservation:
    with session_scope(sessions) as session:
        mailbox = session.get_one(Mailbox, mailbox_id)
        return reserve(session, mailbox, recipients, now, settings)


def entries(sessions: sessionmaker[Session]) -> int:
    with session_scope(sessions) as session:
        return session.scalar(select(func.count()).select_from(SendBudgetEntry)) or 0


@pytest.fixture
def gmail_mailbox(sessions: sessionmaker[Session], team: Team) -> uuid.UUID:
    return add_mailbox(sessions, team, "gmail", team.member_id)


def test_a_mailbox_over_its_daily_budget_continues_when_the_day_s_first_send_leaves_the_window(
    sessions: sessionmaker[Session], settings: Settings, gmail_mailbox: uuid.UUID
) -> None:
    settings.send_gmail_messages_per_day = 3
    sent_at = [NOW + dt.timedelta(minutes=minutes) for minutes in (0, 5, 10)]
    for moment in sent_at:
        assert isinstance(reserve_in_own_transaction(sessions, gmail_mailbox, 1, moment, settings), Reserved)

    over = reserve_in_own_transaction(sessions, gmail_mailbox, 1, NOW + dt.timedelta(hours=2), settings)

    assert over == NotBefore(
        sent_at[0] + dt.timedelta(days=1),
        "Gmail allows 3 messages a day from one mailbox; it continues at 2026-12-07 12:00:00 UTC",
    )
    later = reserve_in_own_transaction(
        sessions, gmail_mailbox, 1, sent_at[0] + dt.timedelta(days=1), settings
    )
    assert isinstance(later, Reserved)
    assert entries(sessions) == 4


def test_old_entries_are_deleted_as_new_ones_are_reserved(
    sessions: sessionmaker[Session], settings: Settings, gmail_mailbox: uuid.UUID
) -> None:
    for day in range(3):
        reserve_in_own_transaction(sessions, gmail_mailbox, 1, NOW + dt.timedelta(days=day), settings)

    assert entries(sessions) == 2  # the first day's send is past the window and its margin


def test_a_message_over_the_recipient_cap_is_refused_and_takes_no_room(
    sessions: sessionmaker[Session], settings: Settings, gmail_mailbox: uuid.UUID
) -> None:
    refused = reserve_in_own_transaction(sessions, gmail_mailbox, 101, NOW, settings)

    assert refused == Refused("Gmail takes at most 100 recipients in one message; this one has 101")
    assert entries(sessions) == 0


def test_room_given_back_can_be_reserved_again(
    sessions: sessionmaker[Session], settings: Settings, gmail_mailbox: uuid.UUID
) -> None:
    settings.send_gmail_messages_per_day = 1
    first = reserve_in_own_transaction(sessions, gmail_mailbox, 1, NOW, settings)
    assert isinstance(first, Reserved)
    assert isinstance(reserve_in_own_transaction(sessions, gmail_mailbox, 1, NOW, settings), NotBefore)

    with session_scope(sessions) as session:
        release(session, first)

    assert isinstance(reserve_in_own_transaction(sessions, gmail_mailbox, 1, NOW, settings), Reserved)


def test_exchange_counts_recipients_per_day_and_smtp_is_unlimited_unless_configured(
    sessions: sessionmaker[Session], settings: Settings, team: Team
) -> None:
    graph_mailbox = add_mailbox(sessions, team, "graph", team.admin_id)
    imap_mailbox = add_mailbox(sessions, team, "imap", team.member_id)
    assert isinstance(reserve_in_own_transaction(sessions, graph_mailbox, 400, NOW, settings), Reserved)
    settings.send_graph_recipients_per_day = 500

    over = reserve_in_own_transaction(sessions, graph_mailbox, 101, NOW + dt.timedelta(hours=1), settings)

    assert isinstance(over, NotBefore)
    assert over.when == NOW + dt.timedelta(days=1)
    assert reserve_in_own_transaction(sessions, imap_mailbox, 5000, NOW, settings) == Reserved(None)
    settings.send_smtp_messages_per_minute = 1
    assert isinstance(reserve_in_own_transaction(sessions, imap_mailbox, 1, NOW, settings), Reserved)
    assert isinstance(reserve_in_own_transaction(sessions, imap_mailbox, 1, NOW, settings), NotBefore)


def test_the_relay_has_its_own_budget(sessions: sessionmaker[Session], settings: Settings) -> None:
    settings.send_relay_messages_per_day = 1
    with session_scope(sessions) as session:
        assert isinstance(reserve_relay(session, 1, NOW, settings), Reserved)
    with session_scope(sessions) as session:
        assert isinstance(reserve_relay(session, 1, NOW, settings), NotBefore)


def test_workers_reserving_at_once_never_exceed_the_cap(
    sessions: sessionmaker[Session], settings: Settings, gmail_mailbox: uuid.UUID
) -> None:
    settings.send_gmail_messages_per_day = 3
    workers = 8
    start = threading.Barrier(workers)

    def worker(_: int) -> Reservation:
        start.wait()
        return reserve_in_own_transaction(sessions, gmail_mailbox, 1, NOW, settings)

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(worker, range(workers)))

    assert sum(isinstance(result, Reserved) for result in results) == 3
    assert sum(isinstance(result, NotBefore) for result in results) == workers - 3
    assert entries(sessions) == 3
