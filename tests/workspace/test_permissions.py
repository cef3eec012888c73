"""Every permission check, from both sides: a role without the permission is refused, one with it is not."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Team

ALL = ["view_customers", "edit_customers", "email_sync", "email_on_my_behalf", "send_email", "admin_access"]


def _role_token(client: TestClient, team: Team, name: str, permissions: list[str]) -> dict[str, str]:
    role = client.post(
        "/api/v1/roles", json={"name": name, "permissions": permissions}, headers=team.headers()
    ).json()
    email = f"{name.lower()}@team-a.example"
    user = client.post(
        "/api/v1/users", json={"email": email, "role_id": role["id"]}, headers=team.headers()
    ).json()
    assert user["role"] == name
    from touchline.db import session_scope
    from touchline.workspace import service

    sessions = client.app.state.sessions  # type: ignore[attr-defined]
    with session_scope(sessions) as session:
        actor = service.actor_for(
            service.find_user_by_email(session, service.Actor.operator(team.workspace_id), email)
        )
        token, _ = service.create_api_token(session, actor, "tests")
    return {"Authorization": f"Bearer {token}"}


def _fixture_ids(client: TestClient, team: Team) -> dict[str, str]:
    company = client.post(
        "/api/v1/companies", json={"name": "Acme", "domains": ["acme.com"]}, headers=team.headers()
    )
    contact = client.post("/api/v1/contacts", json={"email": "jane@acme.com"}, headers=team.headers())
    spare_role = client.post(
        "/api/v1/roles", json={"name": "Spare", "permissions": []}, headers=team.headers()
    )
    return {
        "company_id": company.json()["id"],
        "contact_id": contact.json()["id"],
        "role_id": spare_role.json()["id"],
        "user_id": str(team.viewer_id),
    }


# (permission, method, path, body): one row per permission check the API makes.
CHECKS: list[tuple[str, str, str, object]] = [
    ("view_customers", "GET", "/api/v1/companies", None),
    ("view_customers", "GET", "/api/v1/companies/{company_id}", None),
    ("view_customers", "GET", "/api/v1/contacts", None),
    ("view_customers", "GET", "/api/v1/contacts/{contact_id}", None),
    ("edit_customers", "POST", "/api/v1/companies", {"name": "New Co"}),
    ("edit_customers", "PATCH", "/api/v1/companies/{company_id}", {"name": "Renamed"}),
    ("edit_customers", "POST", "/api/v1/companies/{company_id}/domains", {"domain": "acme.org"}),
    ("edit_customers", "DELETE", "/api/v1/companies/{company_id}/domains/acme.com", None),
    ("edit_customers", "POST", "/api/v1/contacts", {"email": "new@acme.com"}),
    ("edit_customers", "PATCH", "/api/v1/contacts/{contact_id}", {"name": "Jane"}),
    ("edit_customers", "DELETE", "/api/v1/contacts/{contact_id}", None),
    ("edit_customers", "DELETE", "/api/v1/companies/{company_id}", None),
    ("edit_customers", "POST", "/api/v1/imports/companies", "csv:name,domains\nImported,imported.example\n"),
    ("edit_customers", "POST", "/api/v1/imports/contacts", "csv:email,name,company\nz@acme.com,Z,\n"),
    ("admin_access", "PATCH", "/api/v1/workspace/settings", {"lookback_days": 30}),
    ("admin_access", "GET", "/api/v1/audit-log", None),
    ("admin_access", "POST", "/api/v1/roles", {"name": "Another", "permissions": []}),
    ("admin_access", "PATCH", "/api/v1/roles/{role_id}", {"name": "Renamed role"}),
    ("admin_access", "DELETE", "/api/v1/roles/{role_id}", None),
    ("admin_access", "POST", "/api/v1/users", {"email": "fresh@team-a.example"}),
    ("admin_access", "PATCH", "/api/v1/users/{user_id}", {"name": "Vee"}),
    ("admin_access", "DELETE", "/api/v1/users/{user_id}", None),
]


def _call(client: TestClient, method: str, path: str, body: object, headers: dict[str, str]) -> int:
    if isinstance(body, str) and body.startswith("csv:"):
        files = {"file": ("data.csv", body.removeprefix("csv:"), "text/csv")}
        return client.request(method, path, files=files, headers=headers).status_code
    return client.request(method, path, json=body, headers=headers).status_code


@pytest.mark.parametrize(
    ("permission", "method", "path", "body"), CHECKS, ids=[f"{c[1]} {c[2]}" for c in CHECKS]
)
def test_permission_is_checked(
    client: TestClient, team: Team, permission: str, method: str, path: str, body: object
) -> None:
    ids = _fixture_ids(client, team)
    # Viewing is needed to reach a record at all, so a role lacking another permission keeps view_customers.
    without = [p for p in ALL if p != permission]
    refused = _role_token(client, team, "Without", without)
    allowed = _role_token(client, team, "With", [permission, "view_customers"])
    url = path.format(**ids)
    assert _call(client, method, url, body, refused) == 403
    assert _call(client, method, url, body, allowed) in {200, 201, 204}


def test_roles_and_their_defaults(client: TestClient, team: Team) -> None:
    roles = {
        role["name"]: set(role["permissions"])
        for role in client.get("/api/v1/roles", headers=team.headers()).json()
    }
    assert roles["Admin"] == set(ALL)
    assert "admin_access" not in roles["Member"]
    assert roles["Viewer"] == {"view_customers"}
    unknown = client.post("/api/v1/roles", json={"name": "X", "permissions": ["fly"]}, headers=team.headers())
    assert unknown.status_code == 422
    # The permission names are an enum of the schema: the refusal names the field and the known names.
    assert "body.permissions.0" in unknown.json()["detail"]
    assert "view_customers" in unknown.json()["detail"]


def test_the_last_admin_cannot_be_removed_or_demoted(client: TestClient, team: Team) -> None:
    roles = {role["name"]: role["id"] for role in client.get("/api/v1/roles", headers=team.headers()).json()}
    response = client.patch(
        f"/api/v1/users/{team.admin_id}", json={"role_id": roles["Viewer"]}, headers=team.headers()
    )
    assert response.status_code == 409
    assert "without an active admin" in response.json()["detail"]
    assert client.delete(f"/api/v1/users/{team.admin_id}", headers=team.headers()).status_code == 409
    in_use = client.delete(f"/api/v1/roles/{roles['Viewer']}", headers=team.headers())
    assert in_use.status_code == 409


def test_tokens_of_deactivated_users_and_revoked_tokens_stop_working(client: TestClient, team: Team) -> None:
    assert client.get("/api/v1/companies", headers=team.headers("viewer")).status_code == 200
    client.patch(f"/api/v1/users/{team.viewer_id}", json={"active": False}, headers=team.headers())
    assert client.get("/api/v1/companies", headers=team.headers("viewer")).status_code == 401
    created = client.post("/api/v1/tokens", json={"name": "script"}, headers=team.headers()).json()
    mine = {"Authorization": f"Bearer {created['token']}"}
    assert client.get("/api/v1/users/me", headers=mine).status_code == 200
    assert client.delete(f"/api/v1/tokens/{created['id']}", headers=mine).status_code == 204
    assert client.get("/api/v1/users/me", headers=mine).status_code == 401
