"""The unassigned list over the API: list, open, assign to companies and contacts, dismiss."""

from __future__ import annotations

import datetime as dt
import uuid

from fastapi.testclient import TestClient

from tests.conftest import Team
from tests.receive.conftest import LOCAL_RELAY, LogWorld, message
from touchline.db import session_scope
from touchline.inbound.match import match
from touchline.inbound.parse import parse_message
from touchline.inbound.receive import service
from touchline.inbound.store.directory import directories
from touchline.inbound.store.service import Holding, store_email
from touchline.models import AuditEntry
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor


def log(world: LogWorld, raw: bytes, sender: str = "member@team-a.example") -> uuid.UUID:
    result = service.log_message(
        world.sessions,
        world.team.workspace_id,
        raw,
        service.Envelope("smtp", sender, "127.0.0.1"),
        max_bytes=10_000_000,
        checks=LOCAL_RELAY,
    )
    assert result.outcome == "logged", result
    assert result.email_id is not None
    return result.email_id


def test_list_and_open_with_suggestions(client: TestClient, world: LogWorld) -> None:
    forward = log(world, world.forwarded("thunderbird.eml"))
    log(world, message("Linked", to="jane.doe@acme.example"))  # matched: not on the list
    intro = log(world, message("Intro", to="someone@unknown.example"))
    response = client.get("/api/v1/unassigned-emails", headers=world.team.headers("viewer"))
    assert response.status_code == 200
    page = response.json()
    assert page["total"] == 2
    by_id = {item["id"]: item for item in page["items"]}
    assert set(by_id) == {str(forward), str(intro)}
    assert by_id[str(forward)]["suggested_companies"] == [{"id": str(world.company_id), "name": "Acme"}]
    assert "jane.doe@acme.example" in by_id[str(forward)]["forwarded_participants"]
    assert by_id[str(intro)]["suggested_companies"] == []
    detail = client.get(f"/api/v1/unassigned-emails/{forward}", headers=world.team.headers("viewer")).json()
    assert "Could you send the renewal quote" in detail["text_body"]
    assert detail["log"][0]["from"] == "member@team-a.example"
    # The existing emails list agrees.
    listed = client.get("/api/v1/emails", params={"unassigned": "true"}, headers=world.team.headers()).json()
    assert listed["total"] == 2


def test_assigning_puts_the_email_on_timelines_and_moves_last_touch(
    client: TestClient, world: LogWorld
) -> None:
    sent_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    email_id = log(world, message("Intro", to="someone@unknown.example", sent_at=sent_at))
    with session_scope(world.sessions) as session:
        contact = workspace_service.create_contact(
            session, world.operator, "lee@globex.example", name="Lee", company_id=world.other_company_id
        )
        contact_id = contact.id
    response = client.post(
        f"/api/v1/unassigned-emails/{email_id}/assignment",
        json={"company_ids": [str(world.company_id)], "contact_ids": [str(contact_id)]},
        headers=world.team.headers("member"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["unassigned"] is False
    # A contact's company is linked with it.
    assert sorted(body["companies"]) == sorted([str(world.company_id), str(world.other_company_id)])
    assert body["contacts"] == ["lee@globex.example"]
    assert body["explanation"]["rule"] == "assigned"
    timeline = client.get(
        f"/api/v1/companies/{world.company_id}/timeline", headers=world.team.headers()
    ).json()
    assert [e["id"] for entry in timeline["items"] for e in entry["emails"]] == [str(email_id)]
    last_touch = world.company().last_touch_at
    assert last_touch is not None
    assert abs(last_touch - sent_at) < dt.timedelta(seconds=1)
    assert client.get("/api/v1/unassigned-emails", headers=world.team.headers()).json()["total"] == 0
    # Assigning again adds links and never moves Last Touch backwards.
    response = client.post(
        f"/api/v1/unassigned-emails/{email_id}/assignment",
        json={"company_ids": [str(world.company_id)]},
        headers=world.team.headers(),
    )
    assert response.status_code == 200
    with session_scope(world.sessions) as session:
        actions = [entry.action for entry in session.query(AuditEntry).order_by(AuditEntry.created_at)]
    assert actions.count("email.assign") == 2


def test_assignment_needs_a_target_and_checks_it(
    client: TestClient, world: LogWorld, other_team: Team
) -> None:
    email_id = log(world, message("Intro", to="someone@unknown.example"))
    url = f"/api/v1/unassigned-emails/{email_id}/assignment"
    assert client.post(url, json={}, headers=world.team.headers()).status_code == 422
    unknown = client.post(url, json={"company_ids": [str(uuid.uuid4())]}, headers=world.team.headers())
    assert unknown.status_code == 422
    assert "not found" in unknown.json()["detail"]
    # Companies of another workspace do not exist here.
    with session_scope(world.sessions) as session:
        foreign = workspace_service.create_company(
            session, Actor.operator(other_team.workspace_id), "Initech"
        )
        foreign_id = foreign.id
    assert (
        client.post(url, json={"company_ids": [str(foreign_id)]}, headers=world.team.headers()).status_code
        == 422
    )
    # A viewer may look but not assign; another workspace does not see the email at all.
    assert (
        client.post(
            url, json={"company_ids": [str(world.company_id)]}, headers=world.team.headers("viewer")
        ).status_code
        == 403
    )
    assert (
        client.get(f"/api/v1/unassigned-emails/{email_id}", headers=other_team.headers()).status_code == 404
    )
    assert (
        client.post(
            url, json={"company_ids": [str(world.company_id)]}, headers=other_team.headers()
        ).status_code
        == 404
    )
    assert client.get("/api/v1/unassigned-emails", headers=other_team.headers()).json()["total"] == 0
    assert world.email(email_id).unassigned is True


def test_dismissing_deletes_and_audits(client: TestClient, world: LogWorld, other_team: Team) -> None:
    email_id = log(world, message("Not a customer thing", to="someone@unknown.example"))
    linked_id = log(world, message("Customer thing", to="jane.doe@acme.example"))
    assert (
        client.delete(f"/api/v1/unassigned-emails/{email_id}", headers=other_team.headers()).status_code
        == 404
    )
    assert (
        client.delete(
            f"/api/v1/unassigned-emails/{email_id}", headers=world.team.headers("viewer")
        ).status_code
        == 403
    )
    assert (
        client.delete(f"/api/v1/unassigned-emails/{linked_id}", headers=world.team.headers()).status_code
        == 409
    )
    assert (
        client.delete(
            f"/api/v1/unassigned-emails/{email_id}", headers=world.team.headers("member")
        ).status_code
        == 204
    )
    assert (
        client.get(f"/api/v1/unassigned-emails/{email_id}", headers=world.team.headers()).status_code == 404
    )
    assert [r["subject"] for r in world.emails()] == ["Customer thing"]
    with session_scope(world.sessions) as session:
        audit = session.query(AuditEntry).filter(AuditEntry.action == "email.dismiss").one()
        assert audit.details["subject"] == "Not a customer thing"


def test_synced_mail_is_not_assigned_by_hand(client: TestClient, world: LogWorld) -> None:
    parsed = parse_message(message("Synced", sender="jane.doe@acme.example", to="member@team-a.example"))
    with session_scope(world.sessions) as session:
        decision = match(parsed, directories.get(session, world.team.workspace_id))
        stored = store_email(
            session,
            world.team.workspace_id,
            parsed,
            decision,
            Holding(user_id=world.team.member_id, via="sync"),
        )
    response = client.post(
        f"/api/v1/unassigned-emails/{stored.email_id}/assignment",
        json={"company_ids": [str(world.other_company_id)]},
        headers=world.team.headers(),
    )
    assert response.status_code == 409
