"""Invitations and password reset links: single use, expiring, stored as digests, admins only, and
scoped to the workspace; adding a user without a password invites them."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import FakeClock, Team, csrf_of
from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import token_digest
from touchline.kit.errors import ConflictError, NotFoundError, PermissionDeniedError
from touchline.models import AccountLink, User, UserSession
from touchline.workspace import account_links, service, user_sessions
from touchline.workspace.account_links import INVITATION, RESET, UnusableLinkError
from touchline.workspace.permissions import Actor, Permission


def _admin(team: Team) -> Actor:
    return Actor(team.workspace_id, team.admin_id, "admin@team-a.example", frozenset(Permission))


def _token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_an_invitation_is_stored_as_a_digest_and_signs_the_user_in_once(
    sessions: sessionmaker[Session], settings: Settings, team: Team
) -> None:
    clock = FakeClock()
    with session_scope(sessions) as session:
        issued = account_links.issue(session, _admin(team), settings, team.member_id, INVITATION, clock.now)
    token = _token_of(issued.url)
    assert issued.url == f"{settings.base_url}/invitations/{token}"
    assert not issued.emailed
    with session_scope(sessions) as session:
        stored = session.scalars(select(AccountLink)).one()
        assert stored.token_digest == token_digest(token)
        assert token not in {stored.token_digest, str(stored.id)}
        assert stored.expires_at == clock.now + timedelta(days=7)
        login = account_links.accept(
            session, settings, INVITATION, token, password="a-good-password", name=" Mia ", now=clock.now
        )
        assert user_sessions.resume(session, login, user_sessions.SessionLimits.of(settings), clock.now)
    with session_scope(sessions) as session:
        member = session.get(User, team.member_id)
        assert member is not None
        assert member.name == "Mia"
        assert service.authenticate(session, "member@team-a.example", "a-good-password") is not None
        with pytest.raises(UnusableLinkError, match=r"already used\. Ask a workspace admin"):
            account_links.accept(
                session, settings, INVITATION, token, password="another-password", name=None, now=clock.now
            )


def test_an_invitation_expires_under_the_clock(
    sessions: sessionmaker[Session], settings: Settings, team: Team
) -> None:
    clock = FakeClock()
    short = settings.model_copy(update={"invitation_valid_days": 2})
    with session_scope(sessions) as session:
        issued = account_links.issue(session, _admin(team), short, team.member_id, INVITATION, clock.now)
    clock.advance(days=2, seconds=-1)
    with session_scope(sessions) as session:
        assert (
            account_links.open_link(session, INVITATION, _token_of(issued.url), clock.now).user.id
            == team.member_id
        )
    clock.advance(seconds=1)
    with session_scope(sessions) as session:
        with pytest.raises(UnusableLinkError, match=r"expired\. Ask a workspace admin"):
            account_links.open_link(session, INVITATION, _token_of(issued.url), clock.now)
        assert account_links.pending(session, _admin(team), clock.now) == []


def test_resending_replaces_the_link_and_revoking_ends_it(
    sessions: sessionmaker[Session], settings: Settings, team: Team
) -> None:
    clock = FakeClock()
    admin = _admin(team)
    with session_scope(sessions) as session:
        first = account_links.issue(session, admin, settings, team.member_id, INVITATION, clock.now)
        second = account_links.issue(session, admin, settings, team.member_id, INVITATION, clock.now)
    with session_scope(sessions) as session:
        with pytest.raises(UnusableLinkError, match="withdrawn or replaced"):
            account_links.open_link(session, INVITATION, _token_of(first.url), clock.now)
        assert [link.id for link in account_links.pending(session, admin, clock.now)] == [second.link.id]
        account_links.revoke(session, admin, team.member_id, INVITATION, clock.now)
    with session_scope(sessions) as session:
        with pytest.raises(UnusableLinkError, match="withdrawn"):
            account_links.open_link(session, INVITATION, _token_of(second.url), clock.now)
        with pytest.raises(NotFoundError, match="no pending invitation"):
            account_links.revoke(session, admin, team.member_id, INVITATION, clock.now)


def test_an_invitation_is_refused_for_a_user_with_a_password_and_a_link_of_another_purpose_is_unknown(
    sessions: sessionmaker[Session], settings: Settings, team: Team
) -> None:
    clock = FakeClock()
    admin = _admin(team)
    with session_scope(sessions) as session:
        service.update_user(session, admin, team.member_id, password="member-password-1")
    with session_scope(sessions) as session:
        with pytest.raises(ConflictError, match="already has a password"):
            account_links.issue(session, admin, settings, team.member_id, INVITATION, clock.now)
        reset = account_links.issue(session, admin, settings, team.member_id, RESET, clock.now)
    with session_scope(sessions) as session, pytest.raises(UnusableLinkError, match="not known"):
        account_links.open_link(session, INVITATION, _token_of(reset.url), clock.now)


def test_a_reset_ends_the_old_password_and_the_logins_at_once(
    sessions: sessionmaker[Session], settings: Settings, team: Team
) -> None:
    clock = FakeClock()
    admin = _admin(team)
    limits = user_sessions.SessionLimits.of(settings)
    with session_scope(sessions) as session:
        service.update_user(session, admin, team.member_id, password="member-password-1")
    with session_scope(sessions) as session:
        member = session.get(User, team.member_id)
        assert member is not None
        old_login = user_sessions.start(session, member, limits, clock.now)
        issued = account_links.issue(session, admin, settings, team.member_id, RESET, clock.now)
    assert issued.url.startswith(f"{settings.base_url}/password-reset/")
    assert issued.link.expires_at == clock.now + timedelta(hours=24)
    with session_scope(sessions) as session:
        assert user_sessions.resume(session, old_login, limits, clock.now) is None
        assert service.authenticate(session, "member@team-a.example", "member-password-1") is None
        account_links.accept(
            session,
            settings,
            RESET,
            _token_of(issued.url),
            password="member-password-2",
            name=None,
            now=clock.now,
        )
    with session_scope(sessions) as session:
        assert service.authenticate(session, "member@team-a.example", "member-password-2") is not None


def test_an_admin_resets_neither_their_own_password_nor_deactivates_themself(
    sessions: sessionmaker[Session], settings: Settings, team: Team
) -> None:
    clock = FakeClock()
    with session_scope(sessions) as session:
        with pytest.raises(ConflictError, match="your own password"):
            account_links.issue(session, _admin(team), settings, team.admin_id, RESET, clock.now)
        with pytest.raises(ConflictError, match="cannot deactivate yourself"):
            service.update_user(session, _admin(team), team.admin_id, active=False)


def test_deactivating_a_user_ends_their_logins_and_their_link(
    sessions: sessionmaker[Session], settings: Settings, team: Team
) -> None:
    clock = FakeClock()
    admin = _admin(team)
    limits = user_sessions.SessionLimits.of(settings)
    with session_scope(sessions) as session:
        issued = account_links.issue(session, admin, settings, team.member_id, INVITATION, clock.now)
        member = session.get(User, team.member_id)
        assert member is not None
        login = user_sessions.start(session, member, limits, clock.now)
    with session_scope(sessions) as session:
        service.update_user(session, admin, team.member_id, active=False)
    with session_scope(sessions) as session:
        assert user_sessions.resume(session, login, limits, clock.now) is None
        assert session.scalars(select(UserSession.revoked_at)).all() != [None]
        with pytest.raises(UnusableLinkError, match="deactivated"):
            account_links.open_link(session, INVITATION, _token_of(issued.url), clock.now)
        with pytest.raises(ConflictError, match="reactivate the user first"):
            account_links.issue(session, admin, settings, team.member_id, INVITATION, clock.now)


def test_a_member_or_viewer_may_not_invite(
    sessions: sessionmaker[Session], settings: Settings, team: Team
) -> None:
    clock = FakeClock()
    for user_id in (team.member_id, team.viewer_id):
        with session_scope(sessions) as session:
            user = session.get(User, user_id)
            assert user is not None
            with pytest.raises(PermissionDeniedError):
                account_links.issue(
                    session, service.actor_for(user), settings, team.admin_id, INVITATION, clock.now
                )


# --- the API -------------------------------------------------------------------------------------


def test_adding_a_user_without_a_password_through_the_api_returns_the_invitation_link(
    client: TestClient, team: Team, sessions: sessionmaker[Session]
) -> None:
    answer = client.post("/api/v1/users", json={"email": "Nia@Team-A.example"}, headers=team.headers())
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["email"] == "nia@team-a.example"
    invitation = body["invitation"]
    assert invitation["purpose"] == "invitation"
    assert invitation["emailed"] is False
    assert invitation["link"].startswith("http://127.0.0.1:8000/invitations/tlinv_")
    listed = client.get("/api/v1/invitations", headers=team.headers()).json()
    assert [row["user_id"] for row in listed] == [body["id"]]
    assert "link" not in listed[0]

    with_password = client.post(
        "/api/v1/users",
        json={"email": "oli@team-a.example", "password": "a-good-password"},
        headers=team.headers(),
    )
    assert with_password.status_code == 201
    assert with_password.json()["invitation"] is None


def test_the_api_resends_and_revokes_and_sends_reset_links(client: TestClient, team: Team) -> None:
    first = client.post(f"/api/v1/users/{team.member_id}/invitation", headers=team.headers())
    second = client.post(f"/api/v1/users/{team.member_id}/invitation", headers=team.headers())
    assert first.status_code == second.status_code == 201
    assert first.json()["link"] != second.json()["link"]
    listed = client.get("/api/v1/invitations", headers=team.headers()).json()
    assert [row["id"] for row in listed] == [second.json()["id"]]
    revoked = client.delete(f"/api/v1/users/{team.member_id}/invitation", headers=team.headers())
    assert revoked.status_code == 204
    again = client.delete(f"/api/v1/users/{team.member_id}/invitation", headers=team.headers())
    assert again.status_code == 404
    assert again.headers["content-type"] == "application/problem+json"
    assert client.get("/api/v1/invitations", headers=team.headers()).json() == []

    client.patch(
        f"/api/v1/users/{team.member_id}", json={"password": "member-password-1"}, headers=team.headers()
    )
    refused = client.post(f"/api/v1/users/{team.member_id}/invitation", headers=team.headers())
    assert refused.status_code == 409
    assert "password reset" in refused.json()["detail"]
    reset = client.post(f"/api/v1/users/{team.member_id}/password-reset", headers=team.headers())
    assert reset.status_code == 201
    assert "/password-reset/tlrst_" in reset.json()["link"]
    assert (
        client.delete(f"/api/v1/users/{team.member_id}/password-reset", headers=team.headers()).status_code
        == 204
    )


@pytest.mark.parametrize("who", ["member", "viewer"])
def test_members_and_viewers_are_refused_by_the_invitation_api(
    client: TestClient, team: Team, who: str
) -> None:
    headers = team.headers(who)
    calls = [
        client.get("/api/v1/invitations", headers=headers),
        client.post(f"/api/v1/users/{team.admin_id}/invitation", headers=headers),
        client.delete(f"/api/v1/users/{team.admin_id}/invitation", headers=headers),
        client.post(f"/api/v1/users/{team.admin_id}/password-reset", headers=headers),
        client.post("/api/v1/users", json={"email": "x@team-a.example"}, headers=headers),
    ]
    assert [answer.status_code for answer in calls] == [403] * len(calls)


def test_another_workspaces_users_are_not_found(client: TestClient, team: Team, other_team: Team) -> None:
    for answer in (
        client.post(f"/api/v1/users/{other_team.member_id}/invitation", headers=team.headers()),
        client.delete(f"/api/v1/users/{other_team.member_id}/invitation", headers=team.headers()),
        client.post(f"/api/v1/users/{other_team.member_id}/password-reset", headers=team.headers()),
        client.post(f"/api/v1/users/{uuid.uuid4()}/password-reset", headers=team.headers()),
    ):
        assert answer.status_code == 404, answer.text
    client.post(f"/api/v1/users/{other_team.member_id}/invitation", headers=other_team.headers())
    assert client.get("/api/v1/invitations", headers=team.headers()).json() == []


def test_the_openapi_document_declares_the_invitation_answers(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    invite = paths["/api/v1/users/{user_id}/invitation"]
    assert {"201", "401", "403", "404", "409"} <= set(invite["post"]["responses"])
    assert {"204", "404"} <= set(invite["delete"]["responses"])
    created = paths["/api/v1/users"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert created == {"$ref": "#/components/schemas/UserCreated"}
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "link" in schemas["AccountLinkIssued"]["properties"]
    assert "invitation" in schemas["UserCreated"]["properties"]


# --- the link pages without a browser ------------------------------------------------------------


def test_a_used_expired_or_unknown_link_page_says_to_ask_an_admin(
    client: TestClient, app_clock: FakeClock, team: Team, sessions: sessionmaker[Session], settings: Settings
) -> None:
    with session_scope(sessions) as session:
        issued = account_links.issue(
            session, _admin(team), settings, team.member_id, INVITATION, app_clock.now
        )
    path = issued.url.removeprefix(settings.base_url)
    page = client.get(path)
    assert page.status_code == 200
    assert "member@team-a.example" in page.text
    mismatch = client.post(
        path,
        data={
            "csrf_token": csrf_of(page.text),
            "password": "a-good-password",
            "password_again": "other-one-1",
        },
    )
    assert mismatch.status_code == 400
    assert 'aria-invalid="true"' in mismatch.text
    short = client.post(
        path,
        data={
            "csrf_token": csrf_of(page.text),
            "password": "short",
            "password_again": "short",
            "name": "Mia",
        },
    )
    assert short.status_code == 400
    assert "a password needs at least 10 characters" in short.text
    assert 'value="Mia"' in short.text
    app_clock.advance(days=8)
    expired = client.get(path)
    assert expired.status_code == 410
    assert "has expired. Ask a workspace admin for a new link." in expired.text
    unknown = client.get("/invitations/tlinv_nothing")
    assert unknown.status_code == 410
    assert "Ask a workspace admin" in unknown.text
