"""The browser's notification stream (server-sent events), read over real HTTP from a live server."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from tests.browser import live_server
from tests.conftest import FakeClock, Team
from tests.outbound.notify.helpers import notice
from tests.pages.test_content_security_policy import assert_strict
from touchline.config import Settings
from touchline.kit.crypto import SecretBox
from touchline.outbound.notify import pages, tasks

__all__ = ["live_server"]

READ_DEADLINE = httpx.Timeout(10.0)
"""No event within this long fails the test (the stream polls every 50 ms here)."""


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages, "POLL_SECONDS", 0.05)


def log_in(client: httpx.Client, email: str, password: str) -> None:
    form = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token is not None
    answer = client.post(
        "/login",
        data={"csrf_token": token.group(1), "email": email, "password": password, "next": "/companies"},
    )
    assert answer.status_code == 303, answer.text


def events(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """The stream's events, each as its fields (id, event, data), as EventSource parses them."""
    fields: dict[str, str] = {}
    for line in lines:
        if not line:
            if fields:
                yield fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def test_the_stream_delivers_the_users_new_notifications_and_resumes_after_the_last_event(
    app: FastAPI,
    live_server: str,
    team: Team,
    sessions: sessionmaker[Session],
    box: SecretBox,
    settings: Settings,
    sent_email: uuid.UUID,
    clock: FakeClock,
) -> None:
    def tell(user_id: uuid.UUID, kind: str) -> None:
        tasks.record_and_deliver(
            sessions,
            box,
            settings,
            team.workspace_id,
            user_id,
            [notice(sent_email, clock.now, kind=kind)],
            clock=clock,
        )

    tell(team.admin_id, "open")  # before the stream: not replayed to a new page
    with httpx.Client(base_url=live_server, timeout=READ_DEADLINE) as client:
        log_in(client, "admin@team-a.example", "admin-password-123")
        with client.stream("GET", "/notifications/stream") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert_strict(stream.headers, "the notification stream")
            arriving = events(stream.iter_lines())
            start = next(arriving)  # the stream's cursor is set: what is recorded now is new
            assert start["retry"] == "3000"
            tell(team.member_id, "click")  # another user's: never on this stream
            tell(team.admin_id, "reply")
            event = next(arriving)
        assert event["event"] == "notification"
        data = json.loads(event["data"])
        assert (data["kind"], data["outbound_id"], data["recipient"], data["title"]) == (
            "reply",
            str(sent_email),
            "jo@customer.example",
            "jo@customer.example replied to “Renewal plans”",
        )
        assert int(event["id"]) == data["id"]
        # A browser reconnecting with the id of the last event it saw gets what came after, and only that.
        first_id = int(start["id"])
        with client.stream(
            "GET", "/notifications/stream", headers={"Last-Event-ID": str(first_id - 1)}
        ) as again:
            arriving = events(again.iter_lines())
            assert next(arriving)["id"] == str(first_id - 1)
            replayed = json.loads(next(arriving)["data"])
            assert replayed["kind"] == "open"


def test_the_stream_needs_a_login(live_server: str) -> None:
    answer = httpx.get(f"{live_server}/notifications/stream", follow_redirects=False)
    assert answer.status_code in (302, 303, 307)
    assert answer.headers["location"].startswith("/login")
