"""Pages check permissions, workspace and CSRF on the server, whatever the browser sends."""

from __future__ import annotations

import uuid
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team, csrf_of, sign_in_form
from tests.pages.test_tables import three_companies
from tests.pages.test_tables_browser import keep_thread
from touchline.db import session_scope
from touchline.models import Conversation


def _login(client: TestClient, email: str, password: str) -> str:
    response = sign_in_form(client, email, password)
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/companies").text)


def test_pages_of_another_workspace_are_not_found(client: TestClient, team: Team, other_team: Team) -> None:
    company = client.post("/api/v1/companies", json={"name": "Secret Co"}, headers=team.headers()).json()
    csrf = _login(client, "admin@team-b.example", "admin-password-123")
    assert client.get(f"/companies/{company['id']}").status_code == 404
    response = client.post(
        f"/companies/{company['id']}/domains", data={"csrf_token": csrf, "domain": "x.example"}
    )
    assert response.status_code == 404
    response = client.post(f"/companies/{company['id']}/delete", data={"csrf_token": csrf})
    assert response.status_code == 404
    assert client.get(f"/api/v1/companies/{company['id']}", headers=team.headers()).json()["domains"] == []
    assert "Secret Co" not in client.get("/companies").text


def test_viewers_cannot_change_anything(client: TestClient, team: Team) -> None:
    client.patch(
        f"/api/v1/users/{team.viewer_id}", json={"password": "viewer-password-1"}, headers=team.headers()
    )
    csrf = _login(client, "viewer@team-a.example", "viewer-password-1")
    assert "New company" not in client.get("/companies").text
    assert client.post("/companies", data={"csrf_token": csrf, "name": "Sneaky"}).status_code == 403
    assert client.get("/settings").status_code == 403
    assert (
        client.post("/users", data={"csrf_token": csrf, "email": "x@y.example", "role_id": "x"}).status_code
        == 403
    )
    assert client.get("/api/v1/companies", headers=team.headers()).json()["total"] == 0


def test_forms_without_the_csrf_token_are_refused(client: TestClient, team: Team) -> None:
    _login(client, "admin@team-a.example", "admin-password-123")
    assert client.post("/companies", data={"csrf_token": "forged", "name": "X"}).status_code == 403
    assert client.get("/api/v1/companies", headers=team.headers()).json()["total"] == 0


def test_login_redirects_only_within_the_site(client: TestClient, team: Team) -> None:
    response = sign_in_form(client, "admin@team-a.example", "admin-password-123", next_path="//evil.example/")
    assert response.headers["location"] == "/"


def test_only_admins_of_the_workspace_manage_its_users_from_the_pages(
    client: TestClient, team: Team, other_team: Team
) -> None:
    for who in ("member", "viewer"):
        user_id = getattr(team, f"{who}_id")
        client.patch(
            f"/api/v1/users/{user_id}", json={"password": f"{who}-password-1"}, headers=team.headers()
        )
    targets = (team.admin_id, team.member_id)
    actions = ("", "/deactivate", "/reactivate", "/invitation", "/invitation/revoke", "/password-reset")
    for who in ("member", "viewer"):
        client.cookies.clear()
        csrf = _login(client, f"{who}@team-a.example", f"{who}-password-1")
        assert client.get("/users").status_code == 200  # the list is for everyone
        for user_id in targets:
            assert client.get(f"/users/{user_id}").status_code == 403
            for action in actions:
                data = {"csrf_token": csrf, "name": "X", "role_id": str(uuid.uuid4())}
                assert client.post(f"/users/{user_id}{action}", data=data).status_code == 403, action
    client.cookies.clear()
    csrf = _login(client, "admin@team-b.example", "admin-password-123")
    assert client.get(f"/users/{team.member_id}").status_code == 404
    for action in actions:
        data = {"csrf_token": csrf, "name": "X", "role_id": str(uuid.uuid4())}
        response = client.post(f"/users/{team.member_id}{action}", data=data)
        assert response.status_code == 404, action
    member = client.get(f"/api/v1/users/{team.member_id}", headers=team.headers()).json()
    assert member["active"] is True
    assert member["name"] == ""


def test_the_demo_s_sent_page_is_for_admins_and_only_under_the_demo(
    client: TestClient, team: Team, tmp_path: Path
) -> None:
    client.patch(
        f"/api/v1/users/{team.member_id}", json={"password": "member-password-1"}, headers=team.headers()
    )
    _login(client, "admin@team-a.example", "admin-password-123")
    assert client.get("/demo/sent").status_code == 404  # not under `touchline demo`
    assert "Sent by the demo" not in client.get("/companies").text

    client.app.state.settings.demo_sent_folder = tmp_path  # type: ignore[attr-defined]
    listing = client.get("/demo/sent")
    assert listing.status_code == 200
    assert "Nothing was sent yet" in listing.text
    assert client.get("/demo/sent/../secret.key").status_code == 404

    client.post("/logout", data={"csrf_token": csrf_of(client.get("/companies").text)})
    _login(client, "member@team-a.example", "member-password-1")
    assert client.get("/demo/sent").status_code == 403
    assert "Sent by the demo" not in client.get("/companies").text


def test_a_conversation_of_another_workspace_is_not_found(
    client: TestClient, team: Team, other_team: Team, sessions: sessionmaker[Session]
) -> None:
    three_companies(sessions, team)
    keep_thread(sessions, team)
    with session_scope(sessions) as session:
        conversation_id = session.scalars(select(Conversation.id)).one()
    _login(client, "admin@team-a.example", "admin-password-123")
    own = client.get(f"/conversations/{conversation_id}")
    assert own.status_code == 200
    assert "Forty, we think." in own.text
    client.cookies.clear()
    _login(client, "admin@team-b.example", "admin-password-123")
    other = client.get(f"/conversations/{conversation_id}")
    assert other.status_code == 404
    assert "Forty, we think." not in other.text
