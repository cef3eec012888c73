"""Sending one email end to end: composed through the API, delivered to a real SMTP server on loopback,
kept in the mailbox's Sent folder and stored on the customer's timeline."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.outbound.send.conftest import World
from touchline.db import session_scope
from touchline.inbound.fetch.service import sync_mailbox
from touchline.mailboxes import service as mailboxes
from touchline.mailboxes.connect import open_provider
from touchline.models import Email, EmailCompany, EmailContact, EmailHolder, Mailbox, OutboundEmail


def _send(client: TestClient, world: World, who: str = "member", **fields: Any) -> Any:
    body: dict[str, Any] = {
        "from": "member@team-a.example",
        "to": [{"address": world.contact, "name": "Jane Doe"}],
        "cc": [{"address": "boss@acme.example"}],
        "subject": "Your renewal",
        "html": "<p>Hello <b>Jane</b>, see you soon.</p>",
    }
    body.update(fields)
    return client.post("/api/v1/outbox", json=body, headers=world.team.headers(who))


def test_an_email_leaves_through_the_senders_smtp_with_both_parts(world: World, client: TestClient) -> None:
    answer = _send(client, world)
    assert answer.status_code == 201, answer.text
    queued = answer.json()
    assert queued["status"] == "queued"
    assert queued["from"] == "member@team-a.example"
    assert queued["first_recipient"] == world.contact

    assert world.deliver(queued["id"]) == "sent"

    [received] = world.sink.received
    assert received.login == world.imap.username
    assert received.mail_from == "member@team-a.example"
    assert set(received.recipients) == {world.contact, "boss@acme.example"}
    message = received.message
    assert message["Message-ID"] == queued["message_id"]
    assert message["From"] == "member@team-a.example"
    assert message["To"] == "Jane Doe <jane@acme.example>"
    assert message["Cc"] == "boss@acme.example"
    assert message["Subject"] == "Your renewal"
    assert "<b>Jane</b>" in received.part("text/html")
    assert "Hello Jane, see you soon." in received.part("text/plain")

    row = client.get(f"/api/v1/outbox/{queued['id']}", headers=world.team.headers("member")).json()
    assert row["status"] == "sent"
    assert row["provider_message_id"] == "SINK1"
    assert row["sent_at"] is not None
    assert world.sent_folder_holds(queued["message_id"])

    with session_scope(world.sessions) as session:
        email = session.scalar(select(Email).where(Email.message_id == queued["message_id"].strip("<>")))
        assert email is not None
        assert email.source == "send"
        assert row["email_id"] == str(email.id)
        holders = session.scalars(select(EmailHolder).where(EmailHolder.email_id == email.id)).all()
        assert [(h.user_id, h.via) for h in holders] == [(world.team.member_id, "send")]
        assert session.scalar(select(EmailCompany.company_id).where(EmailCompany.email_id == email.id)) == (
            world.company_id
        )
        assert session.scalar(select(EmailContact.contact_id).where(EmailContact.email_id == email.id))


def test_a_job_run_twice_sends_once(world: World, client: TestClient) -> None:
    queued = _send(client, world).json()
    assert world.deliver(queued["id"]) == "sent"
    assert world.deliver(queued["id"]) is None
    assert len(world.sink.received) == 1


def test_the_same_idempotency_key_makes_one_email(world: World, client: TestClient) -> None:
    first = _send(client, world, idempotency_key="renewal-jane-2026").json()
    second = _send(client, world, idempotency_key="renewal-jane-2026").json()
    assert first["id"] == second["id"]
    with session_scope(world.sessions) as session:
        assert len(session.scalars(select(OutboundEmail)).all()) == 1


def test_another_workspace_cannot_see_or_touch_an_email(
    world: World, client: TestClient, other_team: Any
) -> None:
    queued = _send(client, world, send_at="2099-01-01T09:00:00+00:00").json()
    for method, path in (
        ("GET", f"/api/v1/outbox/{queued['id']}"),
        ("PATCH", f"/api/v1/outbox/{queued['id']}"),
        ("POST", f"/api/v1/outbox/{queued['id']}/cancel"),
    ):
        answer = client.request(
            method,
            path,
            headers=other_team.headers("admin"),
            json={"subject": "x"} if method == "PATCH" else None,
        )
        assert answer.status_code == 404, (method, answer.text)
    assert client.get("/api/v1/outbox", headers=other_team.headers("admin")).json() == []
    assert uuid.UUID(queued["id"])


def test_the_copy_sync_finds_in_sent_is_the_same_stored_email(world: World, client: TestClient) -> None:
    queued = _send(client, world).json()
    assert world.deliver(queued["id"]) == "sent"
    with session_scope(world.sessions) as session:
        mailbox = session.get(Mailbox, world.mailbox_id)
        assert mailbox is not None
        with open_provider(mailbox, world.box, settings=world.settings) as provider:
            mailboxes.save_folders(session, mailbox, provider.list_folders(), select_defaults=True)
        assert {f.name for f in mailbox.folders if f.selected} == {"INBOX", "Gesendet"}

    report = sync_mailbox(world.sessions, world.box, world.mailbox_id, settings=world.settings)
    assert report.kept == 1

    with session_scope(world.sessions) as session:
        [email] = session.scalars(select(Email)).all()
        assert email.message_id == queued["message_id"].strip("<>")
        holders = session.scalars(select(EmailHolder).where(EmailHolder.email_id == email.id)).all()
        assert sorted((h.via, h.folder_name) for h in holders) == [("send", "Sent"), ("sync", "Gesendet")]


def test_an_email_leaves_from_the_address_the_from_field_offers(world: World, client: TestClient) -> None:
    # The member's mailbox is a team address other than the one they sign in with.
    with session_scope(world.sessions) as session:
        mailbox = session.get(Mailbox, world.mailbox_id)
        assert mailbox is not None
        mailbox.address = "success@team-a.example"
    headers = world.team.headers("member")
    choices = client.get("/api/v1/compose/from-choices", headers=headers).json()["choices"]
    assert [choice["key"] for choice in choices] == ["success@team-a.example"]
    decision = client.post(
        "/api/v1/compose/check-from", json={"from": "success@team-a.example"}, headers=headers
    ).json()
    assert decision["allowed"] is True
    queued = _send(client, world, **{"from": "success@team-a.example"}).json()
    assert queued["from"] == "success@team-a.example"

    assert world.deliver(queued["id"]) == "sent"

    [received] = world.sink.received
    assert received.mail_from == "success@team-a.example"
    assert received.message["From"] == "success@team-a.example"
