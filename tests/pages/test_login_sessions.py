"""Page logins are records in the database: logging out, a password change, an admin's reset or
deactivation end them, and they expire when idle and after their lifetime, whatever the cookie says."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import FakeClock, Team, csrf_of, sign_in_form

ADMIN = "admin@team-a.example"
ADMIN_PASSWORD = "admin-password-123"
COOKIE = "touchline_session"


@pytest.fixture
def browser_b(app: FastAPI) -> Iterator[TestClient]:
    """A second browser, with cookies of its own."""
    with TestClient(app) as other:
        yield other


def is_signed_in(client: TestClient) -> bool:
    response = client.get("/companies", follow_redirects=False)
    if response.status_code == 303:
        assert response.headers["location"].startswith("/login")
        return False
    assert response.status_code == 200, response.text
    return True


def sign_in(client: TestClient, email: str = ADMIN, password: str = ADMIN_PASSWORD) -> str:
    """Signs in and returns the CSRF token of the signed-in pages."""
    response = sign_in_form(client, email, password)
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/companies").text)


def test_logging_out_ends_the_login_and_a_copy_of_the_cookie_is_worthless(
    app: FastAPI, client: TestClient, team: Team
) -> None:
    csrf = sign_in(client)
    copied = client.cookies[COOKIE]
    assert client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    assert not is_signed_in(client)

    with TestClient(app, cookies={COOKIE: copied}) as replay:
        response = replay.get("/companies")
    assert response.url.path == "/login"
    assert "Log in to touchline" in response.text


def test_changing_ones_password_ends_the_other_logins_and_keeps_this_one(
    client: TestClient, browser_b: TestClient, team: Team
) -> None:
    csrf = sign_in(client)
    sign_in(browser_b)
    response = client.post(
        "/profile/password",
        data={"csrf_token": csrf, "current_password": ADMIN_PASSWORD, "new_password": "a-new-password-456"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert is_signed_in(client)
    assert not is_signed_in(browser_b)
    assert sign_in_form(browser_b, ADMIN, ADMIN_PASSWORD).status_code == 401
    assert sign_in_form(browser_b, ADMIN, "a-new-password-456").status_code == 303


def test_changing_ones_password_needs_the_current_one(client: TestClient, team: Team) -> None:
    csrf = sign_in(client)
    response = client.post(
        "/profile/password",
        data={"csrf_token": csrf, "current_password": "a-guess-at-it", "new_password": "a-new-password-456"},
    )
    assert response.status_code == 400
    assert "current password is not right" in response.text
    assert sign_in_form(TestClient(client.app), ADMIN, ADMIN_PASSWORD).status_code == 303


def test_an_admins_password_reset_or_deactivation_ends_every_login(
    client: TestClient, browser_b: TestClient, team: Team
) -> None:
    member = "member@team-a.example"
    reset = {"password": "member-password-1"}
    assert client.patch(f"/api/v1/users/{team.member_id}", json=reset, headers=team.headers()).is_success
    sign_in(browser_b, member, "member-password-1")
    assert is_signed_in(browser_b)

    reset = {"password": "member-password-2"}
    assert client.patch(f"/api/v1/users/{team.member_id}", json=reset, headers=team.headers()).is_success
    assert not is_signed_in(browser_b)

    sign_in(browser_b, member, "member-password-2")
    deactivate = {"active": False}
    assert client.patch(f"/api/v1/users/{team.member_id}", json=deactivate, headers=team.headers()).is_success
    reactivate = {"active": True}
    assert client.patch(f"/api/v1/users/{team.member_id}", json=reactivate, headers=team.headers()).is_success
    assert not is_signed_in(browser_b)


def test_a_login_unused_for_the_idle_time_ends(client: TestClient, app_clock: FakeClock, team: Team) -> None:
    sign_in(client)
    for _ in range(3):
        app_clock.advance(hours=11, minutes=58)
        assert is_signed_in(client)  # each visit keeps it alive
    app_clock.advance(hours=12)
    assert not is_signed_in(client)


def test_a_login_ends_after_its_lifetime_however_busy(
    client: TestClient, app_clock: FakeClock, team: Team
) -> None:
    sign_in(client)
    started = app_clock.now
    while app_clock.now - started < timedelta(days=14) - timedelta(hours=6):
        app_clock.advance(hours=6)
        assert is_signed_in(client)
    app_clock.advance(hours=6)
    assert not is_signed_in(client)


def test_a_cross_site_login_form_is_refused(client: TestClient, team: Team) -> None:
    form = {"email": ADMIN, "password": ADMIN_PASSWORD, "csrf_token": "made-up-elsewhere"}
    assert client.post("/login", data=form, follow_redirects=False).status_code == 403

    form["csrf_token"] = csrf_of(client.get("/login").text)
    for sent_from in ({"Origin": "https://evil.example"}, {"Referer": "https://evil.example/login"}):
        response = client.post("/login", data=form, headers=sent_from, follow_redirects=False)
        assert response.status_code == 403
        assert "sent from another site" in response.text
    assert not is_signed_in(client)

    form["csrf_token"] = csrf_of(client.get("/login").text)
    same_site = {"Origin": "http://testserver"}
    assert client.post("/login", data=form, headers=same_site, follow_redirects=False).status_code == 303


def test_a_signed_in_form_sent_from_another_site_is_refused(client: TestClient, team: Team) -> None:
    csrf = sign_in(client)
    cross_site = {"Origin": "https://evil.example"}
    response = client.post("/companies", data={"csrf_token": csrf, "name": "Forged"}, headers=cross_site)
    assert response.status_code == 403
    configured = {"Origin": "http://127.0.0.1:8000"}  # TOUCHLINE_BASE_URL's origin
    response = client.post("/companies", data={"csrf_token": csrf, "name": "Real"}, headers=configured)
    assert response.status_code == 200
    names = [
        company["name"] for company in client.get("/api/v1/companies", headers=team.headers()).json()["items"]
    ]
    assert names == ["Real"]
