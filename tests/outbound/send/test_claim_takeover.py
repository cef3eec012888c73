"""Claims name the process that holds them: a worker on the same host takes over at once the claims of
a process that is gone, leaves a live one's alone, and lets claims from other hosts run out their
lease. What an interrupted delivery becomes is decided by `recovery.verdict`."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from tests.outbound.send.conftest import World, outgoing
from tests.processes import exited_process
from tests.services.smtp_sink import SmtpSink
from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.processes import ProcessIdentity, holder_gone, start_ticks, started_of, this_process
from touchline.models import OutboundEmail
from touchline.outbound.send import service, tasks
from touchline.outbound.send.contract import HandoverStopped
from touchline.outbound.send.delivery import relay_account
from touchline.outbound.send.recovery import Verdict, verdict
from touchline.outbound.send.smtp import relay_sender
from touchline.worker import JobContext, current_queue


def _queue_one(client: TestClient, world: World) -> uuid.UUID:
    answer = client.post(
        "/api/v1/outbox",
        json={
            "from": "member@team-a.example",
            "to": [{"address": world.contact}],
            "subject": "Quarterly review",
            "html": "<p>Shall we meet?</p>",
        },
        headers=world.team.headers("member"),
    )
    assert answer.status_code == 201, answer.text
    return uuid.UUID(answer.json()["id"])


def _claimed_by(world: World, outbound_id: uuid.UUID, holder: ProcessIdentity, *, handed_over: bool) -> None:
    with session_scope(world.sessions) as session:
        held = service.claim(session, outbound_id, world.clock.now, holder)
        assert held is not None
        if handed_over:
            assert service.record_handover(session, held, world.clock.now)


def _take_over(world: World) -> list[uuid.UUID]:
    with session_scope(world.sessions) as session:
        return service.take_over_abandoned(session, this_process(), started_of, world.clock.now)


def test_a_dead_holder_s_claim_on_this_host_is_taken_over_at_once_and_sent_once(
    world: World, client: TestClient
) -> None:
    outbound_id = _queue_one(client, world)
    _claimed_by(world, outbound_id, exited_process(), handed_over=False)
    assert world.deliver(outbound_id) is None  # the lease still runs

    assert _take_over(world) == [outbound_id]
    assert _take_over(world) == []  # marked once
    with session_scope(world.sessions) as session:
        assert service.due_emails(session, world.clock.now) == [outbound_id]
    assert world.deliver(outbound_id) == "sent"
    assert len(world.sink.received) == 1
    row = world.outbound(outbound_id)
    assert (row.claim_pid, row.claim_abandoned_at) == (this_process().pid, None)
    assert world.deliver(outbound_id) is None
    assert len(world.sink.received) == 1


def test_a_dead_holder_that_handed_it_to_smtp_leaves_it_unknown_when_sent_does_not_show_it(
    world: World, client: TestClient
) -> None:
    outbound_id = _queue_one(client, world)
    _claimed_by(world, outbound_id, exited_process(), handed_over=True)

    assert _take_over(world) == [outbound_id]
    assert world.deliver(outbound_id) == "unknown"
    assert world.sink.received == []
    assert "before sending it again" in (world.outbound(outbound_id).error or "")


def test_a_live_holder_s_claim_is_left_alone(world: World, client: TestClient) -> None:
    outbound_id = _queue_one(client, world)
    _claimed_by(world, outbound_id, this_process(), handed_over=False)

    assert _take_over(world) == []
    assert world.deliver(outbound_id) is None
    assert world.sink.received == []


def test_a_reused_pid_is_not_the_holder(world: World, client: TestClient) -> None:
    here = this_process()
    outbound_id = _queue_one(client, world)
    # This very pid, started at another moment: the holder was an earlier process with this pid.
    earlier = ProcessIdentity(here.host, here.pid, f"{here.machine}/1")
    _claimed_by(world, outbound_id, earlier, handed_over=False)

    assert _take_over(world) == [outbound_id]


def test_a_claim_from_another_host_waits_for_its_lease(world: World, client: TestClient) -> None:
    gone = exited_process()
    outbound_id = _queue_one(client, world)
    _claimed_by(
        world, outbound_id, ProcessIdentity("worker-2.example", gone.pid, gone.started), handed_over=False
    )

    assert _take_over(world) == []
    assert world.deliver(outbound_id) is None
    world.clock.advance(minutes=service.SENDING_LEASE.total_seconds() / 60 - 1)
    with session_scope(world.sessions) as session:
        assert service.due_emails(session, world.clock.now) == []
    world.clock.advance(minutes=2)
    assert world.deliver(outbound_id) == "sent"
    assert len(world.sink.received) == 1


def test_a_claim_whose_lease_ran_out_is_not_marked_again(world: World, client: TestClient) -> None:
    outbound_id = _queue_one(client, world)
    _claimed_by(world, outbound_id, exited_process(), handed_over=False)
    world.clock.advance(minutes=service.SENDING_LEASE.total_seconds() / 60 + 1)

    assert _take_over(world) == []  # the lease alone makes it due
    with session_scope(world.sessions) as session:
        assert service.due_emails(session, world.clock.now) == [outbound_id]


def test_an_attempt_whose_claim_was_taken_over_does_not_hand_the_message_over(
    world: World, client: TestClient
) -> None:
    outbound_id = _queue_one(client, world)
    with session_scope(world.sessions) as session:
        first = service.claim(session, outbound_id, world.clock.now)
    assert first is not None
    world.clock.advance(minutes=service.SENDING_LEASE.total_seconds() / 60 + 1)
    assert world.deliver(outbound_id) == "sent"  # the later attempt took over

    with session_scope(world.sessions) as session:
        assert not service.record_handover(session, first, world.clock.now)
    assert len(world.sink.received) == 1


def test_a_starting_worker_sends_queued_emails_at_once_but_keeps_backoffs(
    world: World, client: TestClient
) -> None:
    """A batch job that died with its worker leaves its emails `queued` behind the lost-job delay:
    a worker starting, or one that took a dead process's claims over, sends them at once."""
    waiting = [_queue_one(client, world), _queue_one(client, world)]
    backing_off = _queue_one(client, world)
    with session_scope(world.sessions) as session:
        row = session.get_one(OutboundEmail, backing_off)
        row.error, row.next_attempt_at = "421 try later", world.clock.now + timedelta(minutes=30)
    with session_scope(world.sessions) as session:
        assert service.due_emails(session, world.clock.now) == []
    with session_scope(world.sessions) as session:
        assert service.due_emails(session, world.clock.now, at_once=True) == waiting


def test_one_delivery_job_sends_its_batch_in_turn_and_a_duplicate_sends_nothing(
    world: World, client: TestClient
) -> None:
    batch = [str(_queue_one(client, world)) for _ in range(3)]
    context = JobContext(world.settings, world.sessions, current_queue())
    tasks.deliver_job(context, outbound_ids=batch)
    tasks.deliver_job(context, outbound_ids=batch)
    assert len(world.sink.received) == 3
    assert {world.outbound(one).status for one in batch} == {"sent"}
    assert service.delivery_batches([uuid.UUID(one) for one in batch]) == [batch]


def test_smtp_without_the_final_dot_delivers_nothing(relay_settings: Settings, open_relay: SmtpSink) -> None:
    sender = relay_sender(relay_account(relay_settings))
    message = outgoing()

    def stopped() -> None:
        raise HandoverStopped("another attempt took this email over")

    try:
        with pytest.raises(HandoverStopped):
            sender.deliver(message, stopped)
        assert open_relay.received == []
        sender.deliver(message)  # a new connection; the discarded transaction left nothing behind
    finally:
        sender.close()
    assert len(open_relay.received) == 1


@pytest.mark.parametrize(
    ("handed_over", "found", "provider", "expected"),
    [
        (True, True, "imap", Verdict.SENT),
        (False, True, None, Verdict.SENT),
        (False, False, "imap", Verdict.SEND),
        (False, None, None, Verdict.SEND),
        (True, False, "gmail", Verdict.SEND),
        (True, False, "graph", Verdict.SEND),
        (True, False, "imap", Verdict.UNKNOWN),
        (True, None, "gmail", Verdict.UNKNOWN),
        (True, None, None, Verdict.UNKNOWN),
    ],
)
def test_the_verdict_on_an_interrupted_delivery(
    handed_over: bool, found: bool | None, provider: str | None, expected: Verdict
) -> None:
    assert verdict(handed_over=handed_over, found=found, provider=provider) is expected


def test_a_holder_is_judged_only_from_its_own_host_boot_and_pid_namespace() -> None:
    here = ProcessIdentity("worker-1", 10, "boot-a/pid:[1]/500")
    alive = {77: "boot-a/pid:[1]/900"}.get
    assert holder_gone(ProcessIdentity("worker-1", 77, "boot-a/pid:[1]/800"), here, alive)  # pid reused
    assert holder_gone(ProcessIdentity("worker-1", 78, "boot-a/pid:[1]/800"), here, alive)  # no such pid
    assert not holder_gone(ProcessIdentity("worker-1", 77, "boot-a/pid:[1]/900"), here, alive)
    assert not holder_gone(ProcessIdentity("worker-2", 78, "boot-a/pid:[1]/800"), here, alive)
    assert not holder_gone(ProcessIdentity("worker-1", 78, "boot-b/pid:[1]/800"), here, alive)
    assert not holder_gone(ProcessIdentity("worker-1", 78, "boot-a/pid:[2]/800"), here, alive)
    assert not holder_gone(ProcessIdentity("worker-1", 78, ""), here, alive)
    assert not holder_gone(
        ProcessIdentity("worker-1", 78, "boot-a/pid:[1]/800"), ProcessIdentity("worker-1", 10, ""), alive
    )


def test_the_start_time_is_read_after_a_command_name_with_parentheses() -> None:
    fields = " ".join(str(n) for n in range(3, 53))
    assert start_ticks(f"4242 (evil) name) {fields}") == "22"
    assert start_ticks("4242 (short) S 1 2") is None


def test_claims_record_this_process() -> None:
    here = this_process()
    assert here.started == started_of(here.pid)
    assert here.started.count("/") >= 2
