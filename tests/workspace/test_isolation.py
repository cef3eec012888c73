"""Workspace isolation: every API route, called with another workspace's token and this one's ids."""

from __future__ import annotations

import uuid

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import Team


def _seed(client: TestClient, team: Team) -> dict[str, str]:
    """One of everything in `team`'s workspace; returns the ids a path or body can name."""
    headers = team.headers()
    company = client.post(
        "/api/v1/companies", json={"name": "Secret Co", "domains": ["secret.example"]}, headers=headers
    )
    contact = client.post(
        "/api/v1/contacts",
        json={"email": "ceo@secret.example", "company_id": company.json()["id"]},
        headers=headers,
    )
    role = client.post(
        "/api/v1/roles", json={"name": "Auditor", "permissions": ["view_customers"]}, headers=headers
    )
    token = client.get("/api/v1/tokens", headers=headers).json()[0]
    return {
        "company_id": company.json()["id"],
        "contact_id": contact.json()["id"],
        "role_id": role.json()["id"],
        "user_id": str(team.member_id),
        "token_id": token["id"],
        "domain": "secret.example",
    }


# Bodies that name the victim's ids where a body can; the rest are valid on their own.
def _body(path: str, method: str, ids: dict[str, str]) -> dict[str, object] | None:
    bodies: dict[tuple[str, str], dict[str, object]] = {
        ("POST", "/api/v1/companies"): {"name": "Mine", "account_owner_id": ids["user_id"]},
        ("POST", "/api/v1/contacts"): {"email": "x@mine.example", "company_id": ids["company_id"]},
        ("POST", "/api/v1/users"): {"email": "new@team-b.example", "role_id": ids["role_id"]},
        ("PATCH", "/api/v1/companies/{company_id}"): {"name": "Stolen"},
        ("PATCH", "/api/v1/contacts/{contact_id}"): {"name": "Stolen"},
        ("PATCH", "/api/v1/roles/{role_id}"): {"name": "Stolen"},
        ("PATCH", "/api/v1/users/{user_id}"): {"name": "Stolen"},
        ("POST", "/api/v1/companies/{company_id}/domains"): {"domain": "stolen.example"},
    }
    return bodies.get((method, path))


# Routes that name no foreign id: they must answer only about the caller's own workspace.
OWN_WORKSPACE_ONLY = {
    ("GET", "/api/v1/workspace"),
    ("GET", "/api/v1/workspace/settings"),
    ("PATCH", "/api/v1/workspace/settings"),
    ("GET", "/api/v1/audit-log"),
    ("GET", "/api/v1/roles"),
    ("POST", "/api/v1/roles"),
    ("GET", "/api/v1/users"),
    ("GET", "/api/v1/users/me"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("GET", "/api/v1/companies"),
    ("GET", "/api/v1/contacts"),
    ("POST", "/api/v1/imports/companies"),
    ("POST", "/api/v1/imports/contacts"),
}


def test_every_route_refuses_another_workspaces_ids(
    app: FastAPI, client: TestClient, team: Team, other_team: Team
) -> None:
    ids = _seed(client, team)
    intruder = other_team.headers()
    # The OpenAPI document lists every API route, so a route added later is walked here too.
    all_routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/")
        for method in operations
    }
    assert all_routes >= OWN_WORKSPACE_ONLY
    checked = []
    for method, route_path in sorted(all_routes - OWN_WORKSPACE_ONLY):
        path = route_path.format(**ids)
        response = client.request(method, path, json=_body(route_path, method, ids), headers=intruder)
        assert response.status_code in {403, 404}, f"{method} {route_path} answered {response.status_code}"
        checked.append((method, route_path))
    assert len(checked) >= 14
    # Nothing of the victim's changed.
    victim = team.headers()
    assert client.get(f"/api/v1/companies/{ids['company_id']}", headers=victim).json()["name"] == "Secret Co"
    assert (
        client.get(f"/api/v1/contacts/{ids['contact_id']}", headers=victim).json()["company_id"]
        == ids["company_id"]
    )
    assert client.get(f"/api/v1/roles/{ids['role_id']}", headers=victim).json()["name"] == "Auditor"
    assert client.get("/api/v1/tokens", headers=victim).json()[0]["revoked_at"] is None


def test_lists_and_own_workspace_routes_show_nothing_of_another_workspace(
    client: TestClient, team: Team, other_team: Team
) -> None:
    ids = _seed(client, team)
    intruder = other_team.headers()
    assert client.get("/api/v1/workspace", headers=intruder).json()["id"] == str(other_team.workspace_id)
    assert client.get("/api/v1/companies", headers=intruder).json()["total"] == 0
    assert (
        client.get("/api/v1/contacts", params={"company_id": ids["company_id"]}, headers=intruder).json()[
            "total"
        ]
        == 0
    )
    assert (
        client.get("/api/v1/companies", params={"domain": "secret.example"}, headers=intruder).json()["total"]
        == 0
    )
    assert {user["email"] for user in client.get("/api/v1/users", headers=intruder).json()} == {
        "admin@team-b.example",
        "member@team-b.example",
        "viewer@team-b.example",
    }
    assert "Auditor" not in {role["name"] for role in client.get("/api/v1/roles", headers=intruder).json()}
    assert all(
        "team-a" not in entry["actor"] for entry in client.get("/api/v1/audit-log", headers=intruder).json()
    )
    assert client.get("/api/v1/users/me", headers=intruder).json()["email"] == "admin@team-b.example"
    # A CSV naming the victim's company or a user of theirs links nothing across.
    report = client.post(
        "/api/v1/imports/contacts",
        files={"file": ("p.csv", "email,name,company\nspy@x.example,Spy,Secret Co\n", "text/csv")},
        headers=intruder,
    ).json()
    assert report["created"] == 0
    report = client.post(
        "/api/v1/imports/companies",
        files={
            "file": (
                "c.csv",
                "name,domains,account_owner\nMine,mine.example,member@team-a.example\n",
                "text/csv",
            )
        },
        headers=intruder,
    ).json()
    assert report["created"] == 0
    assert "no user member@team-a.example" in report["errors"][0]["message"]


def test_unknown_ids_and_missing_tokens(client: TestClient, team: Team) -> None:
    assert client.get(f"/api/v1/companies/{uuid.uuid4()}", headers=team.headers()).status_code == 404
    assert client.get("/api/v1/companies/not-a-uuid", headers=team.headers()).status_code == 422
    assert client.get("/api/v1/companies").status_code == 401
    assert client.get("/api/v1/companies", headers={"Authorization": "Bearer tl_forged"}).status_code == 401
