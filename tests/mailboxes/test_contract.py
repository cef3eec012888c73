"""The provider contract itself: cursors as JSON, shared rules, and every provider keeping the shape."""

from __future__ import annotations

import datetime as dt
import json
import threading
from email.utils import format_datetime

import httpx
import pytest

from touchline.mailboxes.providers.base import (
    ChangeWaiter,
    MailboxProvider,
    require_aware,
    require_batch_size,
)
from touchline.mailboxes.providers.gmail import GmailCursor, GmailProvider
from touchline.mailboxes.providers.graph import GraphCursor, GraphProvider
from touchline.mailboxes.providers.imap import ImapCursor, ImapProvider
from touchline.mailboxes.providers.rest import DEFAULT_RETRY_AFTER_SECONDS, bounded_map, retry_after_seconds


# These are checked by mypy when it reads the tests: each provider must fit the contract exactly.
def _imap_fits(provider: ImapProvider) -> tuple[MailboxProvider[ImapCursor], ChangeWaiter[ImapCursor]]:
    return provider, provider


def _gmail_fits(provider: GmailProvider) -> MailboxProvider[GmailCursor]:
    return provider


def _graph_fits(provider: GraphProvider) -> MailboxProvider[GraphCursor]:
    return provider


@pytest.mark.parametrize(
    "cursor",
    [
        ImapCursor(uidvalidity=1795614113, last_uid=42, highest_modseq=977),
        ImapCursor(uidvalidity=7, last_uid=0),
        GmailCursor(history_id="123456789"),
        GmailCursor(history_id="123456789", first_sync_page_token="CAoQAA"),
        GraphCursor(
            delta_link="https://graph.microsoft.com/v1.0/me/mailFolders/x/messages/delta?$deltatoken=a"
        ),
        GraphCursor(
            next_link="https://graph.microsoft.com/v1.0/me/mailFolders/x/messages/delta?$skiptoken=b"
        ),
    ],
)
def test_cursors_survive_a_trip_through_json(cursor: ImapCursor | GmailCursor | GraphCursor) -> None:
    stored = json.loads(json.dumps(cursor.to_json()))
    assert stored["kind"] == cursor.kind
    assert type(cursor).from_json(stored) == cursor


def test_a_cursor_of_another_provider_is_refused() -> None:
    with pytest.raises(ValueError, match="not a gmail cursor"):
        GmailCursor.from_json(ImapCursor(uidvalidity=1, last_uid=2).to_json())


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "imap", "uidvalidity": "1", "last_uid": 2},
        {"kind": "imap", "uidvalidity": 1},
        {"kind": "imap", "uidvalidity": True, "last_uid": 2},
        {"kind": "gmail", "history_id": 5},
    ],
)
def test_malformed_cursors_are_refused(data: dict[str, object]) -> None:
    cursor_class = ImapCursor if data["kind"] == "imap" else GmailCursor
    with pytest.raises(ValueError, match="cursor field"):
        cursor_class.from_json(data)


def test_a_graph_cursor_holds_exactly_one_link() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        GraphCursor()
    with pytest.raises(ValueError, match="exactly one"):
        GraphCursor(delta_link="https://a", next_link="https://b")


def test_look_back_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        require_aware(dt.datetime(2025, 1, 1), "since")
    berlin = dt.timezone(dt.timedelta(hours=1))
    assert require_aware(dt.datetime(2025, 1, 1, 1, tzinfo=berlin), "since") == dt.datetime(
        2025, 1, 1, tzinfo=dt.UTC
    )
    with pytest.raises(ValueError, match="at least 1"):
        require_batch_size(0)


def test_retry_after_reads_seconds_and_dates() -> None:
    def answer(value: str | None) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": value} if value is not None else {})

    assert retry_after_seconds(answer("17")) == 17
    assert retry_after_seconds(answer(None)) == DEFAULT_RETRY_AFTER_SECONDS
    assert retry_after_seconds(answer("soon")) == DEFAULT_RETRY_AFTER_SECONDS
    in_a_minute = format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60), usegmt=True)
    assert 55 <= retry_after_seconds(answer(in_a_minute)) <= 60


def test_bounded_map_keeps_order_and_limits_concurrency() -> None:
    running = 0
    most = 0
    lock = threading.Lock()
    three_running = threading.Event()

    def square(number: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            if running == 3:
                three_running.set()
        # The first calls hold on until three run at once; none may start beside those three.
        assert three_running.wait(timeout=30)
        with lock:
            running -= 1
        return number * number

    assert bounded_map(square, range(10), max_concurrency=3) == [number * number for number in range(10)]
    assert most == 3


def test_bounded_map_raises_the_first_failure() -> None:
    def fail_on_three(number: int) -> int:
        if number == 3:
            raise RuntimeError("three")
        return number

    with pytest.raises(RuntimeError, match="three"):
        bounded_map(fail_on_three, range(6), max_concurrency=2)
