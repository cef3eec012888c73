"""What the outbox does when delivery fails or its outcome is lost: SMTP replies, dropped connections
and a process that died between handing an email over and recording it."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.outbound.send.conftest import World
from tests.services import free_port
from tests.services.smtp_sink import SmtpSink
from touchline.config import Settings
from touchline.db import session_scope
from touchline.models import Mailbox, OutboundEmail, OutboundRecipient
from touchline.outbound.send import service, tasks
from touchline.outbound.send.contract import (
    Delivered,
    DeliveryError,
    HandingOver,
    Outgoing,
    nothing_to_record,
)
from touchline.worker import current_queue


def _queue_one(client: TestClient, world: World, who: str = "member", **fields: Any) -> str:
    body: dict[str, Any] = {
        "from": "member@team-a.example",
        "to": [{"address": world.contact}],
        "cc": [{"address": "boss@acme.example"}],
        "subject": "Quarterly review",
        "html": "<p>Shall we meet?</p>",
    }
    body.update(fields)
    answer = client.post("/api/v1/outbox", json=body, headers=world.team.headers(who))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _left_sending_by_a_dead_process(world: World, outbound_id: str, *, handed_over: bool = True) -> bytes:
    """The state a worker leaves when it dies after handing the email over (or, with
    `handed_over=False`, after claiming it and before the handover): claimed long ago."""
    earlier = world.clock.now - service.SENDING_LEASE - timedelta(minutes=1)
    with session_scope(world.sessions) as session:
        held = service.claim(session, uuid.UUID(outbound_id), earlier)
        assert held is not None
        if handed_over:
            assert service.record_handover(session, held, earlier)
        return held.outgoing.raw


def _break_imap(world: World) -> None:
    with session_scope(world.sessions) as session:
        mailbox = session.get(Mailbox, world.mailbox_id)
        assert mailbox is not None
        mailbox.connection = {**mailbox.connection, "port": free_port()}


def test_found_in_sent_after_a_crash_it_is_recorded_sent_without_sending_again(
    world: World, client: TestClient
) -> None:
    outbound_id = _queue_one(client, world)
    raw = _left_sending_by_a_dead_process(world, outbound_id)
    world.dovecot.append(world.imap, "Gesendet", raw, received_at=datetime.now(UTC))

    assert world.deliver(outbound_id) == "sent"
    assert world.sink.received == []
    assert world.outbound(outbound_id).email_id is not None


def test_not_handed_over_before_a_crash_it_is_sent_once(world: World, client: TestClient) -> None:
    outbound_id = _queue_one(client, world)
    raw = _left_sending_by_a_dead_process(world, outbound_id, handed_over=False)

    assert world.deliver(outbound_id) == "sent"
    [received] = world.sink.received
    assert received.data.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")
    assert world.deliver(outbound_id) is None
    assert len(world.sink.received) == 1


def test_handed_over_to_smtp_and_not_found_in_sent_after_a_crash_it_is_unknown_and_not_sent(
    world: World, client: TestClient
) -> None:
    # The server may have taken it and the process died before appending the copy to Sent.
    outbound_id = _queue_one(client, world)
    raw = _left_sending_by_a_dead_process(world, outbound_id)

    assert world.deliver(outbound_id) == "unknown"
    assert world.sink.received == []
    assert not world.sent_folder_holds(world.outbound(outbound_id).message_id)
    row = client.get(f"/api/v1/outbox/{outbound_id}", headers=world.team.headers("member")).json()
    assert row["status"] == "unknown"
    assert "Sent not showing it proves nothing" in row["error"]
    assert "mail server's log" in row["error"]
    assert world.deliver(outbound_id) is None
    assert world.outbound(outbound_id).raw_message == raw
    assert world.sink.received == []


def test_not_handed_over_and_sent_cannot_be_checked_it_is_sent_once(world: World, client: TestClient) -> None:
    outbound_id = _queue_one(client, world)
    _left_sending_by_a_dead_process(world, outbound_id, handed_over=False)
    _break_imap(world)

    assert world.deliver(outbound_id) == "sent"
    assert len(world.sink.received) == 1


def test_when_sent_cannot_be_checked_after_a_crash_it_is_unknown_and_not_sent(
    world: World, client: TestClient
) -> None:
    outbound_id = _queue_one(client, world)
    _left_sending_by_a_dead_process(world, outbound_id)
    _break_imap(world)

    assert world.deliver(outbound_id) == "unknown"
    assert world.sink.received == []
    row = client.get(f"/api/v1/outbox/{outbound_id}", headers=world.team.headers("member")).json()
    assert row["status"] == "unknown"
    assert "Sent folder cannot be checked" in row["error"]
    with session_scope(world.sessions) as session:
        assert service.due_emails(session, world.clock.now + timedelta(days=1)) == []
    assert world.deliver(outbound_id) is None
    assert world.sink.received == []


def test_an_email_held_by_a_live_worker_is_left_alone(world: World, client: TestClient) -> None:
    outbound_id = _queue_one(client, world)
    with session_scope(world.sessions) as session:
        assert service.claim(session, uuid.UUID(outbound_id), world.clock.now) is not None
    assert world.deliver(outbound_id) is None
    assert world.sink.received == []


def test_a_temporary_reply_retries_after_a_backoff(world: World, client: TestClient) -> None:
    outbound_id = _queue_one(client, world)
    world.sink.reply_next("MAIL", "451 4.3.0 Try again later")

    assert world.deliver(outbound_id) == "queued"
    row = world.outbound(outbound_id)
    assert row.error is not None
    assert "451 4.3.0 Try again later" in row.error
    assert row.next_attempt_at is not None
    assert row.next_attempt_at >= world.clock.now + timedelta(seconds=30)
    with session_scope(world.sessions) as session:
        assert service.due_emails(session, world.clock.now) == []
    world.clock.advance(seconds=31)
    with session_scope(world.sessions) as session:
        assert service.due_emails(session, world.clock.now) == [uuid.UUID(outbound_id)]
    assert world.deliver(outbound_id) == "sent"
    assert len(world.sink.received) == 1


def test_a_permanent_reply_fails_with_the_servers_reason(world: World, client: TestClient) -> None:
    outbound_id = _queue_one(client, world)
    world.sink.reply_next("DATA", "554 5.7.1 Message rejected as spam")

    assert world.deliver(outbound_id) == "failed"
    row = world.outbound(outbound_id)
    assert row.error is not None
    assert "554 5.7.1 Message rejected as spam" in row.error
    assert world.sink.received == []
    with session_scope(world.sessions) as session:
        assert service.due_emails(session, world.clock.now + timedelta(days=1)) == []


def test_a_refused_recipient_is_recorded_and_the_others_get_it(world: World, client: TestClient) -> None:
    outbound_id = _queue_one(client, world)
    world.sink.refused["boss@acme.example"] = "550 5.1.1 No such user"

    assert world.deliver(outbound_id) == "sent"
    [received] = world.sink.received
    assert received.recipients == (world.contact,)
    with session_scope(world.sessions) as session:
        refused = dict(
            session.execute(
                select(OutboundRecipient.address, OutboundRecipient.refused).where(
                    OutboundRecipient.outbound_email_id == uuid.UUID(outbound_id)
                )
            ).all()
        )
    assert refused[world.contact] is None
    assert refused["boss@acme.example"] == "550 5.1.1 No such user"


def test_every_recipient_refused_permanently_fails(world: World, client: TestClient) -> None:
    outbound_id = _queue_one(client, world)
    world.sink.reply_next("RCPT", "550 5.1.1 No such user", times=2)
    assert world.deliver(outbound_id) == "failed"
    assert world.sink.received == []


def test_a_connection_lost_after_the_data_and_not_in_sent_is_unknown_not_retried(
    world: World, client: TestClient
) -> None:
    outbound_id = _queue_one(client, world)
    world.sink.drop_after_data = True

    # The copy goes to Sent only after the server's answer, so its absence proves nothing.
    assert world.deliver(outbound_id) == "unknown"
    assert world.deliver(outbound_id) is None
    with session_scope(world.sessions) as session:
        assert service.due_emails(session, world.clock.now + timedelta(days=1)) == []
    assert world.sink.received == []


def test_a_connection_lost_after_the_data_without_a_sent_folder_is_unknown(
    world: World, client: TestClient
) -> None:
    outbound_id = _queue_one(client, world)
    world.sink.drop_after_data = True
    world.sink.keep_dropped = True
    _break_imap(world)

    assert world.deliver(outbound_id) == "unknown"
    assert world.deliver(outbound_id) is None
    assert len(world.sink.received) == 1


def test_a_user_without_a_mailbox_sends_through_the_relay(
    world: World, relay_settings: Settings, open_relay: SmtpSink, client: TestClient
) -> None:
    client.app.state.settings = relay_settings  # type: ignore[attr-defined]
    world.settings = relay_settings
    outbound_id = _queue_one(client, world, "admin", **{"from": "admin@team-a.example"}, cc=[])
    assert world.outbound(outbound_id).via == "relay"
    assert world.deliver(outbound_id) == "sent"
    [received] = open_relay.received
    assert received.mail_from == "admin@team-a.example"
    assert received.login is None
    assert world.sink.received == []

    crashed = _queue_one(client, world, "admin", **{"from": "admin@team-a.example"}, cc=[])
    _left_sending_by_a_dead_process(world, crashed)
    assert world.deliver(crashed) == "unknown"
    assert len(open_relay.received) == 1


def test_without_a_mailbox_or_a_relay_nothing_is_stored(world: World, client: TestClient) -> None:
    answer = client.post(
        "/api/v1/outbox",
        json={
            "from": "admin@team-a.example",
            "to": [{"address": world.contact}],
            "subject": "s",
            "html": "<p>x</p>",
        },
        headers=world.team.headers("admin"),
    )
    assert answer.status_code == 422
    assert "TOUCHLINE_RELAY_SMTP_HOST" in answer.json()["detail"]
    with session_scope(world.sessions) as session:
        assert session.scalars(select(OutboundEmail)).all() == []


def test_workers_racing_for_one_email_send_it_once(world: World, client: TestClient) -> None:
    outbound_id = _queue_one(client, world)
    start = threading.Barrier(6)

    def race() -> str | None:
        start.wait()
        return world.deliver(outbound_id)

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(lambda _: race(), range(6)))
    assert outcomes.count("sent") == 1
    assert outcomes.count(None) == 5
    assert len(world.sink.received) == 1


def test_the_scheduler_queues_what_is_due(world: World, client: TestClient) -> None:
    outbound_id = _queue_one(client, world, send_at="2099-01-01T00:00:00+00:00")
    with session_scope(world.sessions) as session:
        row = session.get(OutboundEmail, uuid.UUID(outbound_id))
        assert row is not None
        row.scheduled_for = datetime.now(UTC) - timedelta(minutes=1)
    queue = current_queue()
    before = queue.pending_count()
    tasks.schedule_deliveries(queue.context)
    assert queue.pending_count() == before + 1
    assert world.outbound(outbound_id).status == "queued"


def test_a_disconnected_mailbox_fails_a_queued_email_and_leaves_a_crashed_one_unknown(
    world: World, client: TestClient
) -> None:
    queued = _queue_one(client, world)
    crashed = _queue_one(client, world)
    _left_sending_by_a_dead_process(world, crashed)
    with session_scope(world.sessions) as session:
        session.delete(session.get(Mailbox, world.mailbox_id))

    assert world.deliver(queued) == "failed"
    assert world.outbound(queued).error == "the mailbox it was to leave through was disconnected"
    assert world.deliver(crashed) == "unknown"
    assert world.sink.received == []


class _Throttled:
    """A provider that answers every attempt with a rate limit and its Retry-After."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        self.attempts = 0

    def __call__(self, mailbox: object, box: object, settings: object) -> _Throttled:
        return self

    def deliver(self, outgoing: Outgoing, handing_over: HandingOver = nothing_to_record) -> Delivered:
        self.attempts += 1
        raise DeliveryError("429 too many messages", temporary=True, retry_after_seconds=self.retry_after)

    def find_sent(self, message_id: str) -> bool | None:
        return False

    def close(self) -> None:
        return None


def test_the_providers_retry_after_is_respected_and_attempts_end(world: World, client: TestClient) -> None:
    outbound_id = uuid.UUID(_queue_one(client, world))
    throttled = _Throttled(retry_after=600)
    deliver = partial(
        tasks.deliver, world.sessions, world.box, world.settings, clock=world.clock, opener=throttled
    )

    assert deliver(outbound_id) == "queued"
    row = world.outbound(outbound_id)
    assert row.next_attempt_at == world.clock.now + timedelta(seconds=600)
    for _ in range(service.MAX_ATTEMPTS - 1):
        world.clock.advance(hours=2)
        with session_scope(world.sessions) as session:
            assert service.due_emails(session, world.clock.now) == [outbound_id]
        status = deliver(outbound_id)
    assert status == "failed"
    assert throttled.attempts == service.MAX_ATTEMPTS
    assert world.outbound(outbound_id).error == "429 too many messages"
