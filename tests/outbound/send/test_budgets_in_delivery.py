"""Sending budgets as the delivery job honours them: an email over its mailbox's (or the relay's)
budget waits in the queue, saying until when and why, and leaves once the window frees; one that no
window could ever take fails with the reason; room a provider did not use goes back."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.outbound.send.conftest import World
from tests.services.smtp_sink import SmtpSink
from touchline.config import Settings
from touchline.db import session_scope
from touchline.models import SendBudgetEntry
from touchline.outbound.send import service, tasks
from touchline.outbound.send.contract import (
    Delivered,
    DeliveryError,
    HandingOver,
    Outgoing,
    nothing_to_record,
)


def _queue(client: TestClient, world: World, who: str = "member", **fields: Any) -> uuid.UUID:
    body: dict[str, Any] = {
        "from": f"{who}@team-a.example",
        "to": [{"address": world.contact}],
        "subject": "Renewal",
        "html": "<p>Shall we talk about the renewal?</p>",
    }
    body.update(fields)
    answer = client.post("/api/v1/outbox", json=body, headers=world.team.headers(who))
    assert answer.status_code == 201, answer.text
    return uuid.UUID(answer.json()["id"])


def _capped(world: World, **caps: int) -> None:
    world.settings = world.settings.model_copy(update=caps)


def _due(world: World) -> list[uuid.UUID]:
    with session_scope(world.sessions) as session:
        return service.due_emails(session, world.clock.now)


def _reserved(world: World) -> int:
    with session_scope(world.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(SendBudgetEntry)) or 0)


def _received_ids(sink: SmtpSink) -> list[str]:
    return [str(received.message["Message-ID"]) for received in sink.received]


def test_an_email_over_the_daily_budget_waits_for_the_window_and_then_leaves_once(
    world: World, client: TestClient
) -> None:
    _capped(world, send_smtp_messages_per_day=1)
    first, second = _queue(client, world), _queue(client, world)
    started = world.clock.now

    assert world.deliver(first) == service.SENT
    assert world.deliver(second) == service.QUEUED

    waiting = world.outbound(second)
    assert waiting.next_attempt_at == started + timedelta(days=1)
    assert waiting.attempts == 0  # waiting for room is not a failed attempt
    assert waiting.error is not None
    assert "allows 1 messages a day from one mailbox; it continues at" in waiting.error
    answer = client.get(f"/api/v1/outbox/{second}", headers=world.team.headers("member")).json()
    assert (answer["status"], answer["error"]) == ("queued", waiting.error)
    assert world.deliver(second) == service.QUEUED  # a job run again early still sends nothing
    assert _received_ids(world.sink) == [world.outbound(first).message_id]

    world.clock.advance(hours=23)
    assert second not in _due(world)
    world.clock.advance(hours=1, seconds=1)
    assert _due(world) == [second]
    assert world.deliver(second) == service.SENT

    sent = world.outbound(second)
    assert (sent.status, sent.error, sent.attempts) == (service.SENT, None, 1)
    assert sorted(_received_ids(world.sink)) == sorted([world.outbound(first).message_id, sent.message_id])
    assert world.deliver(second) is None
    assert len(world.sink.received) == 2


def test_an_email_with_more_recipients_than_a_message_may_have_fails_with_the_reason(
    world: World, client: TestClient
) -> None:
    _capped(world, send_smtp_recipients_per_message=1)
    outbound_id = _queue(client, world, cc=[{"address": "boss@acme.example"}])

    assert world.deliver(outbound_id) == service.FAILED

    row = world.outbound(outbound_id)
    assert row.error == "The mailbox's SMTP server takes at most 1 recipients in one message; this one has 2"
    assert row.next_attempt_at is None
    assert world.sink.received == []
    assert _reserved(world) == 0


class _RefusingOnce:
    """A provider that answers the first attempt with a temporary refusal, then takes the message."""

    def __init__(self) -> None:
        self.attempts = 0

    def __call__(self, mailbox: object, box: object, settings: object) -> _RefusingOnce:
        return self

    def deliver(self, outgoing: Outgoing, handing_over: HandingOver = nothing_to_record) -> Delivered:
        self.attempts += 1
        if self.attempts == 1:
            raise DeliveryError("421 try again later", temporary=True)
        return Delivered("TAKEN")

    def find_sent(self, message_id: str) -> bool | None:
        return False

    def close(self) -> None:
        return None


def test_room_the_provider_did_not_use_goes_back_to_the_budget(world: World, client: TestClient) -> None:
    _capped(world, send_smtp_messages_per_day=1)
    outbound_id = _queue(client, world)
    provider = _RefusingOnce()

    def deliver() -> str | None:
        return tasks.deliver(
            world.sessions, world.box, world.settings, outbound_id, clock=world.clock, opener=provider
        )

    assert deliver() == service.QUEUED
    assert world.outbound(outbound_id).error == "421 try again later"
    assert _reserved(world) == 0

    world.clock.advance(hours=1)
    assert deliver() == service.SENT  # within the same day: the refused attempt used no room
    assert provider.attempts == 2
    assert _reserved(world) == 1


def test_the_relay_s_budget_holds_emails_it_has_no_room_for(
    world: World, relay_settings: Settings, open_relay: SmtpSink, client: TestClient
) -> None:
    client.app.state.settings = relay_settings  # type: ignore[attr-defined]
    world.settings = relay_settings
    _capped(world, send_relay_messages_per_minute=1)
    first = _queue(client, world, "admin")
    second = _queue(client, world, "admin")
    assert world.outbound(first).via == "relay"

    assert world.deliver(first) == service.SENT
    assert world.deliver(second) == service.QUEUED
    assert "The relay allows 1 messages a minute" in (world.outbound(second).error or "")

    world.clock.advance(minutes=1, seconds=1)
    assert world.deliver(second) == service.SENT
    assert len(open_relay.received) == 2
    assert world.sink.received == []
