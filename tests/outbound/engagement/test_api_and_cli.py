"""Reading engagement (API with filters, cursor and visibility; the events of one email; the CLI's JSON
lines), clearing an undeliverable address, refusing and skipping it, and the tracking switches."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team, touchline_environment
from tests.outbound.engagement.conftest import add_contact, add_event, link_ids, sent_email
from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.models import BulkSkip, Contact, EmailEngagement, OutboundEmail, WorkspaceSettings
from touchline.outbound.bulk import rules as bulk_rules
from touchline.outbound.bulk import service as bulk
from touchline.outbound.bulk import tasks as bulk_tasks
from touchline.outbound.engagement import service
from touchline.outbound.send import service as outbox
from touchline.outbound.templates import service as templates
from touchline.worker import configure_queue
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def _refresh(sessions: sessionmaker[Session], *ids: uuid.UUID) -> None:
    with session_scope(sessions) as session:
        service.refresh_and_tell(session, ids)


def test_engagements_api_filters_pages_and_shows_members_their_own(
    client: TestClient, sessions: sessionmaker[Session], team: Team
) -> None:
    ana = add_contact(sessions, team, "ana@globex.example")
    mine = [
        sent_email(
            sessions, team, [ana.address], sent_at=datetime(2026, 12, 1, tzinfo=UTC) + timedelta(hours=n)
        )
        for n in range(3)
    ]
    admins = sent_email(sessions, team, [ana.address], sender_id=team.admin_id)
    add_event(sessions, team, mine[0], "open", timedelta(hours=5))
    _refresh(sessions, mine[0])

    as_admin = client.get("/api/v1/engagements", headers=team.headers("admin")).json()
    assert {item["email_id"] for item in as_admin["items"]} == {*map(str, mine), str(admins)}
    as_member = client.get("/api/v1/engagements", headers=team.headers("member")).json()
    assert [item["email_id"] for item in as_member["items"]] == [str(one) for one in reversed(mine)]
    assert as_member["items"][-1]["open_rate"] == 100
    assert as_member["items"][-1]["events"] == 1

    first = client.get("/api/v1/engagements?limit=2", headers=team.headers("member")).json()
    assert len(first["items"]) == 2
    rest = client.get(
        f"/api/v1/engagements?limit=2&cursor={first['next_cursor']}", headers=team.headers("member")
    ).json()
    assert [item["email_id"] for item in rest["items"]] == [str(mine[0])]

    filtered = client.get(
        "/api/v1/engagements",
        params={"sender": str(team.admin_id), "sent_after": "2026-12-01T00:30:00Z"},
        headers=team.headers("admin"),
    ).json()
    assert [item["email_id"] for item in filtered["items"]] == [str(admins)]
    assert client.get("/api/v1/engagements?bounce=hard", headers=team.headers()).json()["items"] == []
    assert client.get("/api/v1/engagements?bounce=maybe", headers=team.headers()).status_code == 422
    assert client.get("/api/v1/engagements?cursor=bogus", headers=team.headers()).status_code in (400, 422)
    assert client.get("/api/v1/engagements", headers=team.headers("viewer")).status_code == 403


def test_events_of_one_email_with_their_reasons(
    client: TestClient, sessions: sessionmaker[Session], team: Team
) -> None:
    ana = add_contact(sessions, team, "ana@globex.example")
    outbound = sent_email(sessions, team, [ana.address], links=1)
    [link] = link_ids(sessions, outbound)
    add_event(sessions, team, outbound, "open", timedelta(seconds=1))
    add_event(sessions, team, outbound, "click", timedelta(minutes=5), link_id=link)
    _refresh(sessions, outbound)
    events = client.get(f"/api/v1/outbox/{outbound}/events", headers=team.headers("member")).json()
    assert [(e["kind"], e["url"], e["machine_reason"]) for e in events] == [
        ("open", None, "open 1.0 s after sending (within 2 s)"),
        ("click", "https://example.com/0", None),
    ]
    admins = sent_email(sessions, team, [ana.address], sender_id=team.admin_id)
    # A member sees the events of their own emails only, as in the outbox.
    assert client.get(f"/api/v1/outbox/{admins}/events", headers=team.headers("member")).status_code == 404


def _undeliverable(sessions: sessionmaker[Session], contact_id: uuid.UUID) -> None:
    with session_scope(sessions) as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        contact.undeliverable_at = NOW
        contact.undeliverable_reason = "hard bounce 5.1.1: 550 user unknown"


def test_an_admin_clears_an_undeliverable_address(
    client: TestClient, sessions: sessionmaker[Session], team: Team
) -> None:
    ana = add_contact(sessions, team, "ana@globex.example")
    _undeliverable(sessions, ana.contact_id)
    read = client.get(f"/api/v1/contacts/{ana.contact_id}", headers=team.headers()).json()
    assert read["undeliverable_reason"] == "hard bounce 5.1.1: 550 user unknown"
    path = f"/api/v1/contacts/{ana.contact_id}/undeliverable"
    assert client.delete(path, headers=team.headers("member")).status_code == 403
    cleared = client.delete(path, headers=team.headers("admin"))
    assert cleared.status_code == 200
    assert (cleared.json()["undeliverable_at"], cleared.json()["undeliverable_reason"]) == (None, None)


def test_an_undeliverable_address_is_refused_with_how_to_clear_it_and_skipped_by_bulk(
    sessions: sessionmaker[Session], team: Team, settings: Settings
) -> None:
    ana = add_contact(sessions, team, "ana@globex.example")
    _undeliverable(sessions, ana.contact_id)
    relay = settings.model_copy(update={"relay_smtp_host": "127.0.0.1"})
    with session_scope(sessions) as session:
        actor = workspace_service.actor_for(
            workspace_service.get_user(session, Actor.operator(team.workspace_id), team.member_id)
        )
        draft = outbox.Draft(
            sender="member@team-a.example", to=[outbox.Recipient(ana.address)], subject="Hi", html="<p>Hi</p>"
        )
        with pytest.raises(outbox.Undeliverable) as refused:
            outbox.send_email(session, actor, draft, settings=relay, now=NOW)
    message = str(refused.value)
    assert "hard bounce 5.1.1: 550 user unknown" in message
    assert f"touchline contact deliverable --workspace W {ana.address}" in message
    assert f"DELETE /api/v1/contacts/{ana.contact_id}/undeliverable" in message
    reason = bulk_rules.skip_reason(ana.address, None, "hard bounce 5.1.1: 550 user unknown")
    assert reason == "undeliverable: hard bounce 5.1.1: 550 user unknown"


def test_tracking_switches_default_to_the_template_else_the_workspace(
    sessions: sessionmaker[Session], team: Team, settings: Settings
) -> None:
    ana = add_contact(sessions, team, "ana@globex.example")
    relay = settings.model_copy(update={"relay_smtp_host": "127.0.0.1"})

    def sent(**draft: object) -> tuple[bool, bool]:
        with session_scope(sessions) as session:
            operator = Actor.operator(team.workspace_id)
            actor = workspace_service.actor_for(workspace_service.get_user(session, operator, team.member_id))
            row = outbox.send_email(
                session,
                actor,
                outbox.Draft(sender="member@team-a.example", to=[outbox.Recipient(ana.address)], **draft),  # type: ignore[arg-type]
                settings=relay,
                now=NOW,
            )
            return row.track_opens, row.track_clicks

    plain = {"subject": "Hi", "html": "<p>Hi</p>"}
    assert sent(**plain) == (True, True)  # the workspace's setting, on by default
    assert sent(**plain, track_clicks=False) == (True, False)
    with session_scope(sessions) as session:
        settings_row = session.get(WorkspaceSettings, team.workspace_id)
        assert settings_row is not None
        settings_row.track_opens = False
        templates.create_template(
            session,
            Actor.operator(team.workspace_id),
            "Quiet",
            templates.TemplateText("Hello", "<p>Hello</p>", None, track_opens=True, track_clicks=False),
        )
    assert sent(**plain) == (False, True)
    assert sent(template="Quiet") == (True, False)  # the template's switches
    assert sent(template="Quiet", track_opens=False, track_clicks=True) == (False, True)


def test_cli_engagement_list_prints_one_json_line_per_sent_email(
    sessions: sessionmaker[Session], team: Team, settings: Settings
) -> None:
    ana = add_contact(sessions, team, "ana@globex.example")
    outbound = sent_email(sessions, team, [ana.address], track_clicks=False)
    add_event(
        sessions, team, outbound, "open", timedelta(hours=1), machine_reason="user agent GoogleImageProxy"
    )
    _refresh(sessions, outbound)
    _undeliverable(sessions, ana.contact_id)
    environment = touchline_environment(settings)

    def touchline(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "touchline.cli", *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    listed = touchline("engagement", "list", "--workspace", "Team A", "--json")
    assert listed.returncode == 0, listed.stderr
    [line] = [json.loads(one) for one in listed.stdout.splitlines()]
    with session_scope(sessions) as session:
        row = session.get(OutboundEmail, outbound)
        assert row is not None
        message_id = row.message_id
    assert line == {
        "email_id": str(outbound),
        "message_id": message_id,
        "sender": "member@team-a.example",
        "first_recipient": ana.address,
        "template": None,
        "sequence": None,
        "step": None,
        "bulk_id": None,
        "variant": None,
        "open_rate": 100,
        "click_rate": None,
        "reply_rate": 0,
        "human_open_rate": None,
        "human_click_rate": None,
        "bounce": None,
        "events": 1,
    }
    cleared = touchline("contact", "deliverable", "--workspace", "Team A", ana.address)
    assert cleared.returncode == 0, cleared.stderr
    assert "deliverable again" in cleared.stdout
    with session_scope(sessions) as session:
        assert session.scalar(select(Contact.undeliverable_at).where(Contact.id == ana.contact_id)) is None
        assert session.scalar(select(EmailEngagement.id)) is not None


def test_a_bulk_sends_switches_reach_its_emails_and_undeliverable_endusers_are_skipped(
    sessions: sessionmaker[Session], team: Team, settings: Settings, box: SecretBox
) -> None:
    relay = settings.model_copy(update={"relay_smtp_host": "127.0.0.1"})
    configure_queue(relay)  # nobody consumes it: the emails stay queued
    ana = add_contact(sessions, team, "ana@globex.example")
    bo = add_contact(sessions, team, "bo@globex.example")
    _undeliverable(sessions, bo.contact_id)
    with session_scope(sessions) as session:
        operator = Actor.operator(team.workspace_id)
        member = workspace_service.actor_for(workspace_service.get_user(session, operator, team.member_id))
        templates.create_template(session, member, "News", templates.TemplateText("News", "<p>News</p>"))
        wanted = bulk.BulkRequest("member@team-a.example", "News", track_opens=False)
        bulk_id = bulk.start(session, member, wanted, settings=relay, run_job=False).id
    assert bulk_tasks.queue_bulk(sessions, box, relay, bulk_id) == "queued"
    with session_scope(sessions) as session:
        [row] = session.scalars(select(OutboundEmail).where(OutboundEmail.bulk_id == bulk_id))
        assert [r.address for r in row.recipients] == [ana.address]
        assert (row.track_opens, row.track_clicks) == (False, True)  # the send's choice, the template's
        [skip] = session.scalars(select(BulkSkip))
        assert (skip.address, skip.reason) == (
            bo.address,
            "undeliverable: hard bounce 5.1.1: 550 user unknown",
        )
