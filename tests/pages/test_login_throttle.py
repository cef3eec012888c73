"""Failed sign-ins are throttled per account and per client address, with a wait that doubles; the
login page says how long, and says the same whether the account exists or not."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import FakeClock, Team, sign_in_form
from touchline.config import Settings
from touchline.db import session_scope
from touchline.models import AuditEntry

ADMIN = "admin@team-a.example"
ADMIN_PASSWORD = "admin-password-123"
NOBODY = "nobody@team-a.example"
WRONG_PASSWORD = "wrong-password-000"


def attempt(client: TestClient, email: str, password: str = WRONG_PASSWORD) -> tuple[int, str]:
    response = sign_in_form(client, email, password)
    if response.status_code == 303:
        return 303, ""
    error = response.text.split('id="error">', 1)[1].split("<", 1)[0] if 'id="error"' in response.text else ""
    return response.status_code, error


def test_an_account_is_locked_after_failures_with_a_doubling_wait(
    client: TestClient, app_clock: FakeClock, team: Team
) -> None:
    answers = [attempt(client, ADMIN) for _ in range(5)]
    assert answers[:4] == [(401, "That email and password do not match an active user.")] * 4
    assert answers[4] == (429, "Too many failed sign-ins; try again in 1 minute.")
    # Locked means locked: the right password is not even checked.
    assert attempt(client, ADMIN, ADMIN_PASSWORD) == (429, "Too many failed sign-ins; try again in 1 minute.")

    app_clock.advance(seconds=61)
    assert attempt(client, ADMIN) == (429, "Too many failed sign-ins; try again in 2 minutes.")
    app_clock.advance(minutes=1)
    assert attempt(client, ADMIN, ADMIN_PASSWORD)[0] == 429
    app_clock.advance(minutes=1, seconds=1)
    assert attempt(client, ADMIN) == (429, "Too many failed sign-ins; try again in 4 minutes.")

    app_clock.advance(minutes=4, seconds=1)
    assert attempt(client, ADMIN, ADMIN_PASSWORD) == (303, "")
    # A success starts the account's count afresh.
    assert [attempt(client, ADMIN)[0] for _ in range(4)] == [401] * 4


def test_a_lockout_reads_the_same_whether_the_account_exists_or_not(
    app: FastAPI, app_clock: FakeClock, team: Team
) -> None:
    def story(client: TestClient, email: str) -> list[tuple[int, str]]:
        answers = [attempt(client, email) for _ in range(6)]
        app_clock.advance(seconds=61)
        return [*answers, attempt(client, email)]

    # Two client addresses, so that one story's failures do not count against the other's.
    with (
        TestClient(app, client=("192.0.2.1", 5000)) as first,
        TestClient(app, client=("192.0.2.2", 5000)) as other,
    ):
        assert story(first, ADMIN) == story(other, NOBODY)


def test_lockouts_of_an_account_are_audited(
    client: TestClient, app_clock: FakeClock, team: Team, sessions: sessionmaker[Session]
) -> None:
    for _ in range(5):
        attempt(client, ADMIN)
    with session_scope(sessions) as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "user.sign_in_locked")).all()
        assert [(entry.target_id, entry.actor_label) for entry in entries] == [
            (str(team.admin_id), "sign-in from testclient")
        ]
        assert entries[0].details["account"]["failures"] == 5


def test_one_address_failing_on_many_accounts_is_locked(
    app: FastAPI, settings: Settings, app_clock: FakeClock, team: Team
) -> None:
    settings.login_failures_per_address = 3
    with TestClient(app, client=("192.0.2.7", 5000)) as guesser:
        answers = [attempt(guesser, f"guess-{n}@team-a.example")[0] for n in range(3)]
        assert answers == [401, 401, 429]
        assert attempt(guesser, ADMIN, ADMIN_PASSWORD) == (
            429,
            "Too many failed sign-ins; try again in 1 minute.",
        )
    with TestClient(app, client=("192.0.2.8", 5000)) as colleague:
        assert attempt(colleague, ADMIN, ADMIN_PASSWORD) == (303, "")
