"""/api/v1/sequences: define, enrol by ids or filters, pause/resume/unenrol, with permissions and
workspace scoping, on both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import FakeClock, Team
from touchline.db import session_scope
from touchline.models import Company, Contact
from touchline.outbound.templates import service as templates
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor


@pytest.fixture
def world(sessions: sessionmaker[Session], team: Team, app_clock: FakeClock) -> dict[str, str]:
    app_clock.now = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # Monday 09:00 in Berlin
    with session_scope(sessions) as session:
        operator = Actor.operator(team.workspace_id)
        workspace_service.create_custom_field(session, operator, "company", "Tier", "text")
        acme = Company(workspace_id=team.workspace_id, name="Acme", custom_fields={"tier": "gold"})
        other = Company(workspace_id=team.workspace_id, name="Other", custom_fields={"tier": "silver"})
        session.add_all([acme, other])
        session.flush()
        jane = Contact(
            workspace_id=team.workspace_id, email="jane@acme.example", name="Jane", company_id=acme.id
        )
        olga = Contact(
            workspace_id=team.workspace_id, email="olga@other.example", name="Olga", company_id=other.id
        )
        session.add_all([jane, olga])
        session.flush()
        member = workspace_service.actor_for(workspace_service.get_user(session, operator, team.member_id))
        template = templates.create_template(
            session,
            member,
            "Welcome",
            templates.TemplateText("Welcome", "<p>Hi {{ enduser.first_name }}</p>"),
        )
        return {"template": str(template.id), "jane": str(jane.id), "olga": str(olga.id)}


def _body(world: dict[str, str], **changes: object) -> dict[str, object]:
    return {
        "name": "Onboarding",
        "from": "member@team-a.example",
        "time_zone": "Europe/Berlin",
        "steps": [
            {"template_id": world["template"], "delay_days": 0},
            {"template_id": world["template"], "delay_days": 2, "condition": "step 1 not opened"},
        ],
        **changes,
    }


def _create(client: TestClient, team: Team, world: dict[str, str]) -> dict[str, object]:
    answer = client.post("/api/v1/sequences", json=_body(world), headers=team.headers("member"))
    assert answer.status_code == 201, answer.text
    created: dict[str, object] = answer.json()
    return created


def test_a_sequence_is_created_read_and_listed(client: TestClient, team: Team, world: dict[str, str]) -> None:
    created = _create(client, team, world)
    assert created["from"] == "member@team-a.example"
    assert created["owner_id"] == str(team.member_id)
    assert (created["window_start"], created["window_end"], created["business_days_only"]) == (
        "09:00:00",
        "17:00:00",
        True,
    )
    assert created["exit_on_reply"] is True
    assert [(s["position"], s["delay_days"], s["condition"]) for s in created["steps"]] == [  # type: ignore[attr-defined]
        (1, 0, ""),
        (2, 2, "step 1 not opened"),
    ]
    listed = client.get("/api/v1/sequences", headers=team.headers("member")).json()
    assert [s["name"] for s in listed] == ["Onboarding"]
    read = client.get(f"/api/v1/sequences/{created['id']}", headers=team.headers("admin")).json()
    assert read["steps"] == created["steps"]


def test_a_sequence_without_a_zone_takes_the_workspace_s_and_keeps_it(
    client: TestClient, team: Team, world: dict[str, str]
) -> None:
    admin, member = team.headers("admin"), team.headers("member")
    assert client.patch(
        "/api/v1/workspace/settings", json={"time_zone": "America/New_York"}, headers=admin
    ).is_success
    body = _body(world)
    del body["time_zone"]
    answer = client.post("/api/v1/sequences", json=body, headers=member)
    assert answer.status_code == 201, answer.text
    assert answer.json()["time_zone"] == "America/New_York"
    named = client.post("/api/v1/sequences", json=_body(world, name="Named"), headers=member).json()
    assert named["time_zone"] == "Europe/Berlin"  # named by the sequence, not the workspace's

    # The workspace's zone changes later: the sequences keep the zone they were made with.
    assert client.patch(
        "/api/v1/workspace/settings", json={"time_zone": "Asia/Tokyo"}, headers=admin
    ).is_success
    zones = {s["name"]: s["time_zone"] for s in client.get("/api/v1/sequences", headers=member).json()}
    assert zones == {"Onboarding": "America/New_York", "Named": "Europe/Berlin"}


def test_a_sequence_that_cannot_work_is_refused_with_the_reason(
    client: TestClient, team: Team, world: dict[str, str]
) -> None:
    member = team.headers("member")
    cases = {
        "Mars/Olympus": _body(world, time_zone="Mars/Olympus"),
        "earlier step": _body(
            world, steps=[{"template_id": world["template"], "condition": "step 1 opened"}]
        ),
        "templates": _body(world, steps=[{"template_id": str(uuid.uuid4())}]),
        "before it ends": _body(world, window_start="18:00", window_end="09:00"),
        # An offset on one end only used to meet a naive time in the comparison: a 500.
        "leave out the offset": _body(world, window_start="09:00+01:00", window_end="17:00"),
        "admin@team-a.example": _body(world, **{"from": "admin@team-a.example"}),
    }
    for reason, body in cases.items():
        answer = client.post("/api/v1/sequences", json=body, headers=member)
        assert answer.status_code == 422, (reason, answer.text)
        assert reason in answer.text
    assert client.get("/api/v1/sequences", headers=member).json() == []


def test_enrol_by_ids_and_by_filter_never_twice(
    client: TestClient, team: Team, world: dict[str, str]
) -> None:
    sequence = _create(client, team, world)
    url = f"/api/v1/sequences/{sequence['id']}/enrolments"
    member = team.headers("member")
    by_id = client.post(url, json={"contact_ids": [world["jane"]]}, headers=member).json()
    assert [e["email"] for e in by_id["enrolled"]] == ["jane@acme.example"]
    assert by_id["enrolled"][0]["next_due_at"] == "2026-12-07T08:00:00Z"
    by_filter = client.post(url, json={"where": ["company.custom.tier!=bronze"]}, headers=member).json()
    assert [e["email"] for e in by_filter["enrolled"]] == ["olga@other.example"]
    assert by_filter["already"] == ["jane@acme.example"]
    bad = client.post(url, json={"where": ["company.nope=1"]}, headers=member)
    assert bad.status_code == 422
    neither = client.post(url, json={}, headers=member)
    assert neither.status_code == 422
    listed = client.get(url, headers=member).json()
    assert sorted((e["email"], e["state"], e["current_step"]) for e in listed) == [
        ("jane@acme.example", "active", 1),
        ("olga@other.example", "active", 1),
    ]
    counts = client.get(f"/api/v1/sequences/{sequence['id']}", headers=member).json()["enrolments"]
    assert counts == {"active": 2}


def test_pause_resume_and_unenrol(client: TestClient, team: Team, world: dict[str, str]) -> None:
    sequence = _create(client, team, world)
    member = team.headers("member")
    [enrolment] = client.post(
        f"/api/v1/sequences/{sequence['id']}/enrolments",
        json={"contact_ids": [world["jane"]]},
        headers=member,
    ).json()["enrolled"]
    base = f"/api/v1/sequences/enrolments/{enrolment['id']}"
    assert client.post(f"{base}/pause", headers=member).json()["state"] == "paused"
    assert client.post(f"{base}/pause", headers=member).status_code == 409
    assert client.post(f"{base}/resume", headers=member).json()["state"] == "active"
    unenrolled = client.post(f"{base}/unenrol", headers=member).json()
    assert (unenrolled["state"], unenrolled["reason"]) == (
        "unenrolled",
        "unenrolled by member@team-a.example",
    )
    assert client.post(f"{base}/resume", headers=member).status_code == 409
    paused = client.post(f"/api/v1/sequences/{sequence['id']}/pause", headers=member).json()
    assert paused["status"] == "paused"


def test_viewers_and_other_workspaces_are_refused(
    client: TestClient, team: Team, other_team: Team, world: dict[str, str]
) -> None:
    sequence = _create(client, team, world)
    assert client.get("/api/v1/sequences", headers=team.headers("viewer")).status_code == 403
    assert (
        client.post("/api/v1/sequences", json=_body(world), headers=team.headers("viewer")).status_code == 403
    )
    assert (
        client.get(f"/api/v1/sequences/{sequence['id']}", headers=other_team.headers("admin")).status_code
        == 404
    )
    enrol = client.post(
        f"/api/v1/sequences/{sequence['id']}/enrolments",
        json={"contact_ids": [world["jane"]]},
        headers=other_team.headers("admin"),
    )
    assert enrol.status_code == 404
    assert client.get("/api/v1/sequences", headers=other_team.headers("admin")).json() == []


def test_a_template_used_by_a_sequence_step_cannot_be_deleted(
    client: TestClient, team: Team, world: dict[str, str]
) -> None:
    created = client.post("/api/v1/sequences", json=_body(world), headers=team.headers("member"))
    assert created.status_code == 201, created.text
    refused = client.delete(f"/api/v1/templates/{world['template']}", headers=team.headers("member"))
    assert refused.status_code == 409
    assert "'Onboarding'" in refused.json()["detail"]
    assert (
        client.get(f"/api/v1/templates/{world['template']}", headers=team.headers("member")).status_code
        == 200
    )
