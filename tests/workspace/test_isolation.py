"""Workspace isolation: every API route, called with another workspace's token and this one's ids."""

from __future__ import annotations

import uuid

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import Team
from touchline.db import session_scope
from touchline.inbound.match import match
from touchline.inbound.parse import parse_message
from touchline.inbound.store.directory import load_directory
from touchline.inbound.store.service import Holding, store_email
from touchline.mailboxes import service as mailboxes
from touchline.mailboxes.providers.base import Folder, SpecialUse
from touchline.models import BulkSend, Contact, OutboundEmail
from touchline.models.base import utcnow
from touchline.outbound.experiments import service as experiments
from touchline.outbound.sequences import service as sequences
from touchline.outbound.templates import service as templates
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor


def _seed_mail(client: TestClient, team: Team) -> dict[str, str]:
    """A mailbox, a stored email and a background task in `team`'s workspace, made without a network."""
    app = client.app
    sessions = app.state.sessions  # type: ignore[attr-defined]
    box = app.state.secret_box  # type: ignore[attr-defined]
    operator = Actor.operator(team.workspace_id)
    raw = (
        b"From: Ceo <ceo@secret.example>\r\nTo: member@team-a.example\r\nSubject: Secret plans\r\n"
        b"Message-ID: <plans@secret.example>\r\nDate: Mon, 02 Nov 2026 10:00:00 +0000\r\n\r\nHello\r\n"
    )
    with session_scope(sessions) as session:
        mailbox = mailboxes.connect_mailbox(
            session,
            operator,
            box,
            user_id=team.member_id,
            provider="imap",
            address="member@team-a.example",
            connection={"host": "127.0.0.1", "port": 143, "security": "plain", "username": "member"},
            credentials={"password": "x"},
            folders=[Folder("INBOX", "INBOX", SpecialUse.INBOX)],
        )
        parsed = parse_message(raw)
        stored = store_email(
            session,
            team.workspace_id,
            parsed,
            match(parsed, load_directory(session, team.workspace_id)),
            Holding(user_id=team.member_id, via="sync", folder_id=mailbox.folders[0].id, folder_name="INBOX"),
        )
        task = mailboxes.start_apply_default_labels(session, Actor.operator(team.workspace_id))
        outbound = OutboundEmail(
            workspace_id=team.workspace_id,
            created_by=team.member_id,
            sender_choice="member@team-a.example",
            from_address="member@team-a.example",
            via="mailbox",
            idempotency_key="secret-reply",
            message_id="<reply@team-a.example>",
            status="scheduled",
        )
        session.add(outbound)
        session.flush()
        member = workspace_service.actor_for(workspace_service.get_user(session, operator, team.member_id))
        template = templates.create_template(
            session, member, "Secret steps", templates.TemplateText("Hi", "<p>Hi</p>")
        )
        spec = sequences.SequenceSpec(
            "Secret plan", "member@team-a.example", [sequences.StepSpec(template.id)]
        )
        sequence = sequences.create_sequence(session, member, spec)
        contact = session.scalars(select(Contact).where(Contact.workspace_id == team.workspace_id)).first()
        assert contact is not None
        [enrolment] = sequences.enrol(session, member, sequence.id, [contact.id], now=utcnow()).enrolled
        bulk = BulkSend(
            workspace_id=team.workspace_id,
            created_by=team.member_id,
            sender_choice="member@team-a.example",
            template_id=template.id,
            template_name=template.name,
            template_version=template.version,
            mode="one",
            filters=["company.name=Secret Co"],
            status="queued",
        )
        session.add(bulk)
        session.flush()
        other = templates.create_template(
            session, member, "Secret steps B", templates.TemplateText("Hey", "<p>Hey</p>")
        )
        experiment = experiments.create(
            session, member, [template, other], name="Secret test", bulk_id=bulk.id
        )
        return {
            "experiment_id": str(experiment.id),
            "bulk_id": str(bulk.id),
            "sequence_id": str(sequence.id),
            "enrolment_id": str(enrolment.id),
            "mailbox_id": str(mailbox.id),
            "email_id": str(stored.email_id),
            "task_id": str(task.id),
            "outbound_id": str(outbound.id),
        }


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
    field = client.post(
        "/api/v1/custom-fields", json={"kind": "company", "label": "Tier", "type": "text"}, headers=headers
    )
    template = client.post(
        "/api/v1/templates",
        json={"name": "Secret", "subject": "Plans", "html": "<p>Plans</p>"},
        headers=headers,
    )
    return {
        "template_id": template.json()["id"],
        "field_id": field.json()["id"],
        "company_id": company.json()["id"],
        "contact_id": contact.json()["id"],
        "role_id": role.json()["id"],
        "user_id": str(team.member_id),
        "token_id": token["id"],
        "domain": "secret.example",
        "log_address": client.get("/api/v1/workspace/settings", headers=headers).json()["log_address"],
        **_seed_mail(client, team),
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
        ("PATCH", "/api/v1/custom-fields/{field_id}"): {"label": "Stolen"},
        ("PATCH", "/api/v1/users/{user_id}"): {"name": "Stolen"},
        ("POST", "/api/v1/companies/{company_id}/domains"): {"domain": "stolen.example"},
        ("POST", "/api/v1/mailboxes/imap"): {
            "host": "127.0.0.1",
            "username": "x",
            "password": "y",
            "security": "plain",
            "user_id": ids["user_id"],
        },
        ("PUT", "/api/v1/mailboxes/{mailbox_id}/selected-folders"): {"selected_folder_ids": []},
        ("POST", "/api/v1/experiments/{experiment_id}/stop"): {"winner": "B"},
        ("POST", "/api/v1/experiments"): {
            "sequence_id": ids["sequence_id"],
            "step": 1,
            "templates": [ids["template_id"]],
        },
        ("PATCH", "/api/v1/mailboxes/{mailbox_id}"): {"lookback_days": 120},
        ("POST", "/api/v1/unassigned-emails/{email_id}/assignment"): {"company_ids": [ids["company_id"]]},
        ("PUT", "/api/v1/users/{user_id}/public-account"): {"public": False},
        ("POST", "/api/v1/compose/check-from"): {"from": "account-owner", "company_id": ids["company_id"]},
        ("POST", "/api/v1/outbox"): {
            "from": "admin@team-b.example",
            "to": [{"address": "ceo@secret.example"}],
            "subject": "Re: Secret plans",
            "html": "<p>Tell me more</p>",
            "in_reply_to_email_id": ids["email_id"],
        },
        ("PATCH", "/api/v1/outbox/{outbound_id}"): {"subject": "Stolen"},
        ("PUT", "/api/v1/templates/{template_id}"): {"name": "Stolen", "subject": "x", "html": "<p>x</p>"},
        ("PATCH", "/api/v1/templates/{template_id}"): {"name": "Stolen"},
        ("POST", "/api/v1/templates/preview"): {"subject": "x", "html": "x", "contact_id": ids["contact_id"]},
        ("PUT", "/api/v1/sequences/{sequence_id}"): {
            "name": "Stolen",
            "from": "admin@team-b.example",
            "steps": [{"template_id": ids["template_id"]}],
        },
        ("POST", "/api/v1/sequences/{sequence_id}/enrolments"): {"contact_ids": [ids["contact_id"]]},
        ("POST", "/api/v1/bulk-sends"): {
            "from": "admin@team-b.example",
            "template_id": ids["template_id"],
            "mode": "one",
        },
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
    ("GET", "/api/v1/invitations"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("GET", "/api/v1/companies"),
    ("GET", "/api/v1/contacts"),
    ("GET", "/api/v1/custom-fields"),
    ("POST", "/api/v1/custom-fields"),
    ("POST", "/api/v1/imports/companies"),
    ("POST", "/api/v1/imports/contacts"),
    ("GET", "/api/v1/mailboxes"),
    ("GET", "/api/v1/users/me/mailbox"),
    ("POST", "/api/v1/workspace/default-synced-labels/apply"),
    ("GET", "/api/v1/emails"),
    ("GET", "/api/v1/unassigned-emails"),
    ("GET", "/api/v1/inbound/credentials"),
    ("POST", "/api/v1/inbound/credentials/rotate"),
    ("GET", "/api/v1/inbound/refusals"),
    ("GET", "/api/v1/profile/public-account"),
    ("PUT", "/api/v1/profile/public-account"),
    ("GET", "/api/v1/compose/from-choices"),
    ("GET", "/api/v1/outbox"),
    ("GET", "/api/v1/templates"),
    ("POST", "/api/v1/templates"),
    ("GET", "/api/v1/sequences"),
    ("POST", "/api/v1/sequences"),
    ("GET", "/api/v1/bulk-sends"),
    ("GET", "/api/v1/bulk-sends/count"),
    ("GET", "/api/v1/engagements"),
    ("GET", "/api/v1/experiments"),
    ("GET", "/api/v1/analytics/engagement"),
    ("GET", "/api/v1/analytics/cohort"),
    ("GET", "/api/v1/analytics/cohort.csv"),
    ("GET", "/api/v1/me/notifications"),
    ("PUT", "/api/v1/me/notifications"),
    ("GET", "/api/v1/me/notifications/deliveries"),
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
        if route_path == "/api/v1/templates/{template_id}/preview":
            path += f"?contact_id={ids['contact_id']}"
        response = client.request(method, path, json=_body(route_path, method, ids), headers=intruder)
        # The log address's HTTP endpoint takes the workspace's inbound secret, not an API token.
        allowed = {401} if route_path == "/api/v1/inbound/{log_address}/messages" else {403, 404}
        assert response.status_code in allowed, f"{method} {route_path} answered {response.status_code}"
        checked.append((method, route_path))
    assert len(checked) >= 14
    # Engagement: the events of one sent email, and clearing an undeliverable contact, name ids.
    assert ("GET", "/api/v1/outbox/{outbound_id}/events") in checked
    assert ("DELETE", "/api/v1/contacts/{contact_id}/undeliverable") in checked
    assert ("POST", "/api/v1/experiments/{experiment_id}/stop") in checked
    # Nothing of the victim's changed.
    victim = team.headers()
    assert client.get(f"/api/v1/companies/{ids['company_id']}", headers=victim).json()["name"] == "Secret Co"
    outbound = client.get(f"/api/v1/outbox/{ids['outbound_id']}", headers=victim).json()
    assert (outbound["subject"], outbound["status"]) == ("", "scheduled")
    assert (
        client.get(f"/api/v1/contacts/{ids['contact_id']}", headers=victim).json()["company_id"]
        == ids["company_id"]
    )
    assert client.get(f"/api/v1/roles/{ids['role_id']}", headers=victim).json()["name"] == "Auditor"
    fields = client.get("/api/v1/custom-fields", headers=victim).json()
    assert [field["label"] for field in fields] == ["Tier"]
    assert client.get("/api/v1/tokens", headers=victim).json()[0]["revoked_at"] is None
    mailbox = client.get(f"/api/v1/mailboxes/{ids['mailbox_id']}", headers=victim).json()
    assert (mailbox["lookback_days"], [f["selected"] for f in mailbox["folders"]]) == (None, [True])
    assert client.get(f"/api/v1/emails/{ids['email_id']}", headers=victim).json()["subject"] == "Secret plans"
    experiment = client.get(f"/api/v1/experiments/{ids['experiment_id']}", headers=victim).json()
    assert (experiment["state"], experiment["winner"]) == ("running", None)
    template = client.get(f"/api/v1/templates/{ids['template_id']}", headers=victim).json()
    assert (template["name"], template["version"]) == ("Secret", 1)
    sequence = client.get(f"/api/v1/sequences/{ids['sequence_id']}", headers=victim).json()
    assert (sequence["name"], sequence["status"], sequence["enrolments"]) == (
        "Secret plan",
        "active",
        {"active": 1},
    )


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
    assert client.get("/api/v1/emails", headers=intruder).json()["total"] == 0
    assert client.get("/api/v1/mailboxes", headers=intruder).json() == []
    assert client.get("/api/v1/bulk-sends", headers=intruder).json() == []
    # The victim's public address is a From choice only in its own workspace.
    assert client.put(
        "/api/v1/profile/public-account", json={"public": True}, headers=team.headers("member")
    ).json()["public"]
    choices = client.get("/api/v1/compose/from-choices", headers=intruder).json()["choices"]
    assert [choice["key"] for choice in choices] == ["admin@team-b.example"]
    assert client.get("/api/v1/outbox", headers=intruder).json() == []
    assert (
        client.get("/api/v1/emails", params={"company_id": ids["company_id"]}, headers=intruder).json()[
            "total"
        ]
        == 0
    )
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
