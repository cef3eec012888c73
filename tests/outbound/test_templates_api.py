"""Stored templates through the JSON API: CRUD with versions, previews for a contact, problems with
their lines, permissions and workspace isolation."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team
from touchline.db import session_scope
from touchline.models import AuditEntry
from touchline.workspace import service
from touchline.workspace.permissions import Actor

WELCOME = {
    "name": "Welcome",
    "subject": "Hello {{ enduser.first_name }}",
    "html": "<p>Hi {{ enduser.first_name }},</p>\n"
    "<p>{{ company.name }} renews on {{ company.custom.renewal }}.</p>",
    "track_opens": True,
    "track_clicks": False,
}


def _contacts(sessions: sessionmaker[Session], team: Team) -> tuple[uuid.UUID, uuid.UUID]:
    """Ada (with a company and its renewal date) and a contact with neither a name nor a company."""
    with session_scope(sessions) as session:
        operator = Actor.operator(team.workspace_id)
        service.create_custom_field(session, operator, "company", "Renewal", "text", key="renewal")
        company = service.create_company(session, operator, "Acme", domains=["acme.example"])
        service.update_company(session, operator, company.id, custom_fields={"renewal": "1 March"})
        ada = service.create_contact(
            session, operator, "ada@acme.example", name="Ada Lovelace", company_id=company.id
        )
        bare = service.create_contact(session, operator, "someone@elsewhere.example")
        return ada.id, bare.id


def _create(client: TestClient, team: Team, who: str = "member", **changes: object) -> dict[str, object]:
    response = client.post("/api/v1/templates", json={**WELCOME, **changes}, headers=team.headers(who))
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    return created


def test_create_read_list_edit_and_delete_with_versions(
    client: TestClient, team: Team, sessions: sessionmaker[Session]
) -> None:
    headers = team.headers("member")
    created = _create(client, team)
    assert (created["name"], created["version"], created["text"]) == ("Welcome", 1, None)
    assert (created["track_opens"], created["track_clicks"]) == (True, False)
    template_id = created["id"]
    assert client.get(f"/api/v1/templates/{template_id}", headers=headers).json() == created
    _create(client, team, name="Another")
    listed = client.get("/api/v1/templates", headers=headers).json()
    assert [row["name"] for row in listed] == ["Another", "Welcome"]

    replaced = client.put(
        f"/api/v1/templates/{template_id}",
        json={
            **WELCOME,
            "name": "Welcome aboard",
            "text": "Hi {{ enduser.first_name }}",
            "track_clicks": True,
        },
        headers=headers,
    )
    assert replaced.status_code == 200, replaced.text
    assert (replaced.json()["version"], replaced.json()["name"]) == (2, "Welcome aboard")
    assert (replaced.json()["text"], replaced.json()["track_clicks"]) == ("Hi {{ enduser.first_name }}", True)

    changed = client.patch(
        f"/api/v1/templates/{template_id}", json={"subject": "Welcome, {{ enduser.name }}"}, headers=headers
    )
    assert changed.status_code == 200, changed.text
    after = changed.json()
    assert after["version"] == 3
    assert after["subject"] == "Welcome, {{ enduser.name }}"
    # What the PATCH left out stayed as it was.
    assert (after["name"], after["text"], after["track_clicks"]) == (
        "Welcome aboard",
        "Hi {{ enduser.first_name }}",
        True,
    )
    derived = client.patch(f"/api/v1/templates/{template_id}", json={"text": ""}, headers=headers).json()
    assert (derived["version"], derived["text"]) == (4, None)

    taken = client.patch(f"/api/v1/templates/{template_id}", json={"name": "Another"}, headers=headers)
    assert taken.status_code == 409
    assert "already exists" in taken.json()["detail"]
    assert client.get(f"/api/v1/templates/{template_id}", headers=headers).json()["version"] == 4

    assert client.delete(f"/api/v1/templates/{template_id}", headers=headers).status_code == 204
    assert client.get(f"/api/v1/templates/{template_id}", headers=headers).status_code == 404
    with session_scope(sessions) as session:
        actions = session.scalars(select(AuditEntry.action).where(AuditEntry.target_type == "template")).all()
        assert sorted(actions) == sorted(
            ["template.create"] * 2 + ["template.update"] * 3 + ["template.delete"]
        )


def test_an_invalid_template_is_refused_with_every_problem_and_its_line(
    client: TestClient, team: Team
) -> None:
    headers = team.headers("member")
    html = "<p>Hi</p>\n<p>{{ enduser.nickname }}</p>\n{% macro m() %}{% endmacro %}"
    refused = client.post(
        "/api/v1/templates",
        json={**WELCOME, "subject": "{{ enduser.first_name ", "html": html},
        headers=headers,
    )
    assert refused.status_code == 400, refused.text
    answer = refused.json()
    assert answer["detail"].startswith("the template was not saved")
    problems = {(problem["part"], problem["kind"], problem["line"]) for problem in answer["problems"]}
    assert ("subject", "syntax", 1) in problems
    assert ("html", "unknown-field", 2) in problems
    assert ("html", "not-allowed", 3) in problems
    assert [p["field"] for p in answer["problems"] if p["kind"] == "unknown-field"] == ["enduser.nickname"]
    assert client.get("/api/v1/templates", headers=headers).json() == []

    template_id = _create(client, team)["id"]
    broken = client.patch(f"/api/v1/templates/{template_id}", json={"html": "{% for %}"}, headers=headers)
    assert broken.status_code == 400
    assert broken.json()["problems"][0]["part"] == "html"
    assert client.get(f"/api/v1/templates/{template_id}", headers=headers).json()["version"] == 1


def test_preview_of_unsaved_content_for_a_contact(
    client: TestClient, team: Team, sessions: sessionmaker[Session]
) -> None:
    ada, bare = _contacts(sessions, team)
    headers = team.headers("member")
    body = {"subject": WELCOME["subject"], "html": WELCOME["html"], "contact_id": str(ada)}
    shown = client.post("/api/v1/templates/preview", json=body, headers=headers)
    assert shown.status_code == 200, shown.text
    assert shown.json()["problems"] == []
    assert shown.json()["missing_fields"] == []
    rendered = shown.json()["rendered"]
    assert rendered["subject"] == "Hello Ada"
    assert "<p>Acme renews on 1 March.</p>" in rendered["html"]
    assert "Hi Ada," in rendered["text"]

    # The bare contact has no first name and no company: every missing field is named, in each part.
    missing = client.post(
        "/api/v1/templates/preview", json={**body, "contact_id": str(bare)}, headers=headers
    )
    assert missing.status_code == 200
    answer = missing.json()
    assert answer["rendered"] is None
    assert set(answer["missing_fields"]) == {"enduser.first_name", "company.name", "company.custom.renewal"}
    parts = {(problem["part"], problem["field"]) for problem in answer["problems"]}
    assert ("subject", "enduser.first_name") in parts
    assert ("html", "company.name") in parts

    # The sender's fields are the caller's unless another user of the workspace is named.
    signed = {**body, "html": "<p>{{ sender.email }}</p>"}
    mine = client.post("/api/v1/templates/preview", json=signed, headers=headers).json()
    assert mine["rendered"]["html"] == "<p>member@team-a.example</p>"
    admins = client.post(
        "/api/v1/templates/preview", json={**signed, "sender_id": str(team.admin_id)}, headers=headers
    ).json()
    assert admins["rendered"]["html"] == "<p>admin@team-a.example</p>"


def test_preview_of_a_saved_template(client: TestClient, team: Team, sessions: sessionmaker[Session]) -> None:
    ada, bare = _contacts(sessions, team)
    headers = team.headers("member")
    template_id = _create(client, team)["id"]
    shown = client.get(
        f"/api/v1/templates/{template_id}/preview", params={"contact_id": str(ada)}, headers=headers
    )
    assert shown.status_code == 200, shown.text
    assert shown.json()["rendered"]["subject"] == "Hello Ada"
    missing = client.get(
        f"/api/v1/templates/{template_id}/preview", params={"contact_id": str(bare)}, headers=headers
    ).json()
    assert missing["rendered"] is None
    assert "enduser.first_name" in missing["missing_fields"]
    unknown = client.get(
        f"/api/v1/templates/{template_id}/preview", params={"contact_id": str(uuid.uuid4())}, headers=headers
    )
    assert unknown.status_code == 404


@pytest.mark.parametrize(
    ("html", "kind"),
    [
        ("{{ ''.__class__.__mro__ }}", "unsafe"),
        ("{% for i in range(10**9) %}{{ i }}{% endfor %}", "unsafe"),
        ("{{ 'x' * 10**8 }}", "unsafe"),
    ],
)
def test_the_sandbox_holds_in_previews(
    client: TestClient, team: Team, sessions: sessionmaker[Session], html: str, kind: str
) -> None:
    ada, _ = _contacts(sessions, team)
    body = {"subject": "Hi", "html": html, "contact_id": str(ada)}
    response = client.post("/api/v1/templates/preview", json=body, headers=team.headers("member"))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["rendered"] is None
    assert answer["problems"], answer
    assert {problem["part"] for problem in answer["problems"]} == {"html"}
    assert kind in {problem["kind"] for problem in answer["problems"]}, answer


def test_viewers_may_not_use_templates(
    client: TestClient, team: Team, sessions: sessionmaker[Session]
) -> None:
    ada, _ = _contacts(sessions, team)
    template_id = _create(client, team)["id"]
    viewer = team.headers("viewer")
    calls = [
        ("GET", "/api/v1/templates", None),
        ("POST", "/api/v1/templates", {**WELCOME, "name": "Viewer's"}),
        ("GET", f"/api/v1/templates/{template_id}", None),
        ("PUT", f"/api/v1/templates/{template_id}", WELCOME),
        ("PATCH", f"/api/v1/templates/{template_id}", {"subject": "Mine"}),
        ("DELETE", f"/api/v1/templates/{template_id}", None),
        ("GET", f"/api/v1/templates/{template_id}/preview?contact_id={ada}", None),
        ("POST", "/api/v1/templates/preview", {"subject": "x", "html": "<p>x</p>", "contact_id": str(ada)}),
    ]
    for method, path, body in calls:
        response = client.request(method, path, json=body, headers=viewer)
        assert response.status_code == 403, f"{method} {path}: {response.status_code}"
        assert "send_email" in response.json()["detail"]
    assert (
        client.get(f"/api/v1/templates/{template_id}", headers=team.headers("member")).json()["version"] == 1
    )


def test_another_workspaces_templates_and_contacts_are_not_found(
    client: TestClient, team: Team, other_team: Team, sessions: sessionmaker[Session]
) -> None:
    ada, _ = _contacts(sessions, team)
    template_id = _create(client, team)["id"]
    intruder = other_team.headers("member")
    own = client.post("/api/v1/templates", json=WELCOME, headers=intruder)
    assert own.status_code == 201  # the same name is free in another workspace
    calls = [
        ("GET", f"/api/v1/templates/{template_id}", None),
        ("PUT", f"/api/v1/templates/{template_id}", WELCOME),
        ("PATCH", f"/api/v1/templates/{template_id}", {"subject": "Stolen"}),
        ("DELETE", f"/api/v1/templates/{template_id}", None),
        ("GET", f"/api/v1/templates/{own.json()['id']}/preview?contact_id={ada}", None),
        ("POST", "/api/v1/templates/preview", {"subject": "x", "html": "<p>x</p>", "contact_id": str(ada)}),
        (
            "POST",
            "/api/v1/templates/preview",
            {"subject": "x", "html": "<p>x</p>", "contact_id": str(ada), "sender_id": str(team.admin_id)},
        ),
    ]
    for method, path, body in calls:
        response = client.request(method, path, json=body, headers=intruder)
        assert response.status_code == 404, f"{method} {path}: {response.status_code}"
    assert [row["id"] for row in client.get("/api/v1/templates", headers=intruder).json()] == [
        own.json()["id"]
    ]
    victim = client.get(f"/api/v1/templates/{template_id}", headers=team.headers("member")).json()
    assert (victim["version"], victim["subject"]) == (1, WELCOME["subject"])


def test_the_openapi_document_describes_every_route_and_answer(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    assert set(paths["/api/v1/templates"]) == {"get", "post"}
    assert set(paths["/api/v1/templates/{template_id}"]) == {"get", "put", "patch", "delete"}
    assert set(paths["/api/v1/templates/preview"]) == {"post"}
    assert set(paths["/api/v1/templates/{template_id}/preview"]) == {"get"}

    def schema_of(path: str, method: str, code: str) -> str:
        # Answers use application/json; errors, the API's one error model, application/problem+json.
        media_type = "application/problem+json" if int(code) >= 400 else "application/json"
        content = paths[path][method]["responses"][code]["content"][media_type]["schema"]
        return str(content.get("$ref") or content["items"]["$ref"]).rsplit("/", 1)[1]

    assert schema_of("/api/v1/templates", "get", "200") == "TemplateOut"
    assert schema_of("/api/v1/templates", "post", "201") == "TemplateOut"
    assert schema_of("/api/v1/templates", "post", "400") == "TemplateProblemsOut"
    assert schema_of("/api/v1/templates/{template_id}", "put", "400") == "TemplateProblemsOut"
    assert schema_of("/api/v1/templates/{template_id}", "patch", "200") == "TemplateOut"
    assert schema_of("/api/v1/templates/preview", "post", "200") == "PreviewOut"
    assert schema_of("/api/v1/templates/{template_id}/preview", "get", "200") == "PreviewOut"
    schemas = document["components"]["schemas"]
    assert set(schemas["ProblemOut"]["properties"]) == {"part", "kind", "line", "field", "message"}
    assert set(schemas["PreviewOut"]["properties"]) == {"rendered", "problems", "missing_fields"}
    assert set(schemas["RenderedOut"]["properties"]) == {"subject", "html", "text"}
