"""The outbox through the API: scheduling, editing and cancelling, permissions, the From rules on
edits and replies, threading, and header injection refused before anything is stored or sent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import FakeClock
from tests.outbound.send.conftest import World, connect_sending_mailbox
from touchline.db import session_scope
from touchline.inbound.store.directory import directories
from touchline.inbound.store.service import Holding, RawIncoming, store_raw_messages
from touchline.models import Email, OutboundEmail, User
from touchline.outbound.send import service


@pytest.fixture
def clocked(world: World, app_clock: FakeClock) -> World:
    world.clock = app_clock
    return world


def _body(world: World, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from": "member@team-a.example",
        "to": [{"address": world.contact, "name": "Jane"}],
        "subject": "Renewal",
        "html": "<p>Hi Jane</p>",
    }
    body.update(fields)
    return body


def _post(client: TestClient, world: World, who: str = "member", **fields: Any) -> Any:
    return client.post("/api/v1/outbox", json=_body(world, **fields), headers=world.team.headers(who))


def _nothing_stored_or_sent(world: World) -> None:
    with session_scope(world.sessions) as session:
        assert session.scalars(select(OutboundEmail)).all() == []
    assert world.sink.received == []


def test_a_scheduled_email_leaves_when_it_is_due(clocked: World, client: TestClient) -> None:
    world = clocked
    send_at = world.clock.now + timedelta(hours=1)
    scheduled = _post(client, world, send_at=send_at.isoformat()).json()
    assert scheduled["status"] == "scheduled"
    assert world.deliver(scheduled["id"]) is None  # a stray job cannot send it early

    world.clock.advance(minutes=30)
    with session_scope(world.sessions) as session:
        assert service.due_emails(session, world.clock.now) == []
    world.clock.advance(minutes=31)
    with session_scope(world.sessions) as session:
        assert service.due_emails(session, world.clock.now) == [uuid.UUID(scheduled["id"])]
    assert world.outbound(scheduled["id"]).status == "queued"
    assert world.deliver(scheduled["id"]) == "sent"
    [received] = world.sink.received
    assert received.message["Date"] == format_datetime(world.clock.now)


def test_a_scheduled_email_is_editable_until_it_leaves(clocked: World, client: TestClient) -> None:
    world = clocked
    headers = world.team.headers("member")
    scheduled = _post(client, world, send_at=(world.clock.now + timedelta(hours=1)).isoformat()).json()
    edited = client.patch(
        f"/api/v1/outbox/{scheduled['id']}",
        json={"subject": "Renewal, updated", "cc": [{"address": "boss@acme.example"}]},
        headers=headers,
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["subject"] == "Renewal, updated"
    assert edited.json()["cc"] == ["boss@acme.example"]
    assert edited.json()["message_id"] == scheduled["message_id"]

    world.clock.advance(hours=2)
    with session_scope(world.sessions) as session:
        service.due_emails(session, world.clock.now)
    assert world.deliver(scheduled["id"]) == "sent"
    assert world.sink.received[0].message["Subject"] == "Renewal, updated"
    late = client.patch(f"/api/v1/outbox/{scheduled['id']}", json={"subject": "too late"}, headers=headers)
    assert late.status_code == 409


def test_a_cancelled_email_never_leaves(clocked: World, client: TestClient) -> None:
    world = clocked
    headers = world.team.headers("member")
    scheduled = _post(client, world, send_at=(world.clock.now + timedelta(hours=1)).isoformat()).json()
    cancelled = client.post(f"/api/v1/outbox/{scheduled['id']}/cancel", headers=headers)
    assert cancelled.json()["status"] == "cancelled"
    world.clock.advance(hours=2)
    with session_scope(world.sessions) as session:
        assert service.due_emails(session, world.clock.now) == []
    assert world.deliver(scheduled["id"]) is None
    assert world.sink.received == []
    assert client.post(f"/api/v1/outbox/{scheduled['id']}/cancel", headers=headers).status_code == 409


def test_a_scheduled_email_whose_sender_is_no_longer_public_falls_back(
    clocked: World, client: TestClient
) -> None:
    world = clocked
    colleague = world.dovecot.add_user()
    connect_sending_mailbox(
        world.sessions,
        world.box,
        workspace_id=world.team.workspace_id,
        user_id=world.team.admin_id,
        address="admin@team-a.example",
        dovecot=world.dovecot,
        imap=colleague,
        smtp_port=world.sink.port,
    )
    with session_scope(world.sessions) as session:
        admin = session.get(User, world.team.admin_id)
        assert admin is not None
        admin.public_account_usage = True
    scheduled = _post(
        client,
        world,
        **{"from": "admin@team-a.example"},
        send_at=(world.clock.now + timedelta(hours=1)).isoformat(),
    ).json()
    assert scheduled["from"] == "admin@team-a.example"
    with session_scope(world.sessions) as session:
        admin = session.get(User, world.team.admin_id)
        assert admin is not None
        admin.public_account_usage = False

    edited = client.patch(
        f"/api/v1/outbox/{scheduled['id']}", json={"subject": "Edited"}, headers=world.team.headers("member")
    ).json()
    assert edited["sender_choice"] == "account-owner"
    assert edited["from"] == "member@team-a.example"  # Acme's account owner
    assert "admin@team-a.example" in edited["notice"]
    assert "Account Owner" in edited["notice"]


def test_sending_needs_the_send_email_permission(world: World, client: TestClient) -> None:
    answer = _post(client, world, "viewer", **{"from": "viewer@team-a.example"})
    assert answer.status_code == 403
    assert "send_email" in answer.json()["detail"]
    _nothing_stored_or_sent(world)


def test_another_users_private_address_is_refused(world: World, client: TestClient) -> None:
    answer = _post(client, world, **{"from": "admin@team-a.example"})
    assert answer.status_code == 422
    assert "private address" in answer.json()["detail"]
    _nothing_stored_or_sent(world)


def test_members_see_their_own_outbox_and_admins_everyones(world: World, client: TestClient) -> None:
    mine = _post(client, world).json()
    listed = client.get("/api/v1/outbox", headers=world.team.headers("member")).json()
    assert [row["id"] for row in listed] == [mine["id"]]
    assert [
        row["id"] for row in client.get("/api/v1/outbox", headers=world.team.headers("admin")).json()
    ] == [mine["id"]]
    with session_scope(world.sessions) as session:
        row = session.get(OutboundEmail, uuid.UUID(mine["id"]))
        assert row is not None
        row.created_by = world.team.admin_id
    assert client.get("/api/v1/outbox", headers=world.team.headers("member")).json() == []
    assert client.get(f"/api/v1/outbox/{mine['id']}", headers=world.team.headers("member")).status_code == 404


LINE_BREAKERS = ["\r\n", "\r", "\n", "\x00", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("breaker", LINE_BREAKERS)
@pytest.mark.parametrize("field", ["subject", "to name", "to address", "cc address", "from"])
def test_header_injection_through_any_field_is_refused(
    world: World, client: TestClient, field: str, breaker: str
) -> None:
    injected = f"{breaker}Bcc: victim@elsewhere.example"
    fields: dict[str, Any] = {
        "subject": {"subject": f"Hello{injected}"},
        "to name": {"to": [{"address": world.contact, "name": f"Jane{injected}"}]},
        "to address": {"to": [{"address": f"{world.contact}{injected}"}]},
        "cc address": {"cc": [{"address": f"boss@acme.example{injected}"}]},
        "from": {"from": f"member@team-a.example{injected}"},
    }[field]
    answer = _post(client, world, **fields)
    assert answer.status_code == 422, answer.text
    _nothing_stored_or_sent(world)


def test_a_reply_is_threaded_with_the_conversation_it_answers(world: World, client: TestClient) -> None:
    raw = (
        b"From: Jane <jane@acme.example>\r\nTo: member@team-a.example\r\nSubject: Question\r\n"
        b"Date: Sat, 05 Dec 2026 10:00:00 +0000\r\nMessage-ID: <question-1@acme.example>\r\n"
        b"References: <root@acme.example>\r\n\r\nCan you help?\r\n"
    )
    with session_scope(world.sessions) as session:
        store_raw_messages(
            session,
            world.team.workspace_id,
            directories.get(session, world.team.workspace_id),
            [RawIncoming(raw, Holding(user_id=world.team.member_id, via="import"), label="question")],
            source="import",
        )
        question = session.scalar(select(Email).where(Email.message_id == "question-1@acme.example"))
        assert question is not None
        question_id, conversation_id = question.id, question.conversation_id

    reply = _post(client, world, subject="Re: Question", in_reply_to_email_id=str(question_id)).json()
    assert world.deliver(reply["id"]) == "sent"
    message = world.sink.received[0].message
    assert message["In-Reply-To"] == "<question-1@acme.example>"
    assert message["References"] == "<root@acme.example> <question-1@acme.example>"
    with session_scope(world.sessions) as session:
        sent_copy = session.get(Email, uuid.UUID(world.outbound(reply["id"]).email_id.hex))  # type: ignore[union-attr]
        assert sent_copy is not None
        assert sent_copy.conversation_id == conversation_id


def test_a_send_time_in_the_past_sends_now(clocked: World, client: TestClient) -> None:
    world = clocked
    answer = _post(client, world, send_at=datetime(2020, 1, 1, tzinfo=UTC).isoformat()).json()
    assert answer["status"] == "queued"
    assert answer["scheduled_for"] is None


def test_account_owner_sends_as_the_recipients_companys_owner(world: World, client: TestClient) -> None:
    sent = _post(client, world, "admin", **{"from": "account-owner"})
    assert sent.status_code == 201, sent.text
    assert sent.json()["from"] == "member@team-a.example"
    assert sent.json()["sender_choice"] == "account-owner"
    assert sent.json()["company_id"] == str(world.company_id)

    nobody = _post(
        client, world, "admin", **{"from": "account-owner"}, to=[{"address": "someone@elsewhere.example"}]
    )
    assert nobody.status_code == 422
    assert "on behalf of a company" in nobody.json()["detail"]


def test_a_reply_from_a_public_address_needs_it_in_the_conversation(world: World, client: TestClient) -> None:
    colleague = world.dovecot.add_user()
    connect_sending_mailbox(
        world.sessions,
        world.box,
        workspace_id=world.team.workspace_id,
        user_id=world.team.admin_id,
        address="admin@team-a.example",
        dovecot=world.dovecot,
        imap=colleague,
        smtp_port=world.sink.port,
    )
    with session_scope(world.sessions) as session:
        admin = session.get(User, world.team.admin_id)
        assert admin is not None
        admin.public_account_usage = True
    raw = (
        b"From: Jane <jane@acme.example>\r\nTo: member@team-a.example\r\nSubject: Question\r\n"
        b"Date: Sat, 05 Dec 2026 10:00:00 +0000\r\nMessage-ID: <question-2@acme.example>\r\n\r\nHi\r\n"
    )
    with session_scope(world.sessions) as session:
        store_raw_messages(
            session,
            world.team.workspace_id,
            directories.get(session, world.team.workspace_id),
            [RawIncoming(raw, Holding(user_id=world.team.member_id, via="import"), label="question")],
            source="import",
        )
        question_id = session.scalar(select(Email.id).where(Email.message_id == "question-2@acme.example"))

    new_email = _post(client, world, **{"from": "admin@team-a.example"})
    assert new_email.status_code == 201, new_email.text
    reply = _post(client, world, **{"from": "admin@team-a.example"}, in_reply_to_email_id=str(question_id))
    assert reply.status_code == 422
    assert "Forward the email to admin@team-a.example first" in reply.json()["detail"]
