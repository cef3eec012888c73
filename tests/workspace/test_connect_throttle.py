"""Mailbox connects (the server reaching a host the user typed) are limited per user, through the API
and the pages alike."""

from __future__ import annotations

import socket

import pytest
from fastapi.testclient import TestClient

from tests.conftest import FakeClock, Team, csrf_of, sign_in_form
from touchline.config import Settings


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connecting fails at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_mailbox_connects_are_limited_per_user(
    client: TestClient, settings: Settings, app_clock: FakeClock, team: Team, closed_port: int
) -> None:
    settings.mailbox_connects_per_user = 3
    body = {"host": "127.0.0.1", "port": closed_port, "security": "plain", "username": "u", "password": "p"}
    answers = [client.post("/api/v1/mailboxes/imap", json=body, headers=team.headers()) for _ in range(4)]
    assert [answer.status_code for answer in answers[:3]] == [422] * 3
    assert answers[3].status_code == 429
    assert answers[3].json()["detail"] == "Too many mailbox connection attempts; try again in 1 minute."
    assert answers[3].headers["Retry-After"] == "60"
    # Another user's attempts are their own.
    assert client.post("/api/v1/mailboxes/imap", json=body, headers=team.headers("member")).status_code == 422

    # The same user's Email tab and OAuth sign-in refuse too, with the wait.
    settings.google_client_id = "touchline-test-client"
    assert sign_in_form(client, "admin@team-a.example", "admin-password-123").status_code == 303
    csrf = csrf_of(client.get("/profile/email").text)
    form = {"csrf_token": csrf, "host": "127.0.0.1", "port": str(closed_port), "security": "plain"}
    page = client.post("/profile/email/imap", data={**form, "username": "u", "password": "p"})
    assert page.status_code == 429
    assert "Too many mailbox connection attempts; try again in 1 minute." in page.text
    start = client.get("/profile/email/oauth/google/start", follow_redirects=False)
    assert start.headers["location"] == "/profile/email"
    assert "Too many mailbox connection attempts" in client.get("/profile/email").text

    app_clock.advance(minutes=1, seconds=1)
    again = client.post("/api/v1/mailboxes/imap", json=body, headers=team.headers())
    assert again.status_code == 422
    assert client.post("/api/v1/mailboxes/imap", json=body, headers=team.headers()).status_code == 429
