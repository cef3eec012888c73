"""The log address stores through the same helper as sync and import: a database that fails at any
statement of a batch being logged fails the batch, quarantines nothing, and a rerun logs it all."""

from __future__ import annotations

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from tests.database_faults import failing_statement
from tests.receive.conftest import CUSTOMER, LOCAL_RELAY, LogWorld, message
from touchline.db import session_scope
from touchline.inbound.receive import service
from touchline.inbound.receive.service import Envelope, LogJob
from touchline.models import Contact, Email, InboundRefusal, QuarantinedMessage


def _counts(world: LogWorld) -> tuple[int, ...]:
    workspace_id = world.team.workspace_id
    with session_scope(world.sessions) as session:
        return tuple(
            session.scalar(select(func.count()).where(model.workspace_id == workspace_id)) or 0
            for model in (Email, QuarantinedMessage, Contact, InboundRefusal)
        )


def test_a_database_failure_while_logging_a_batch_fails_it_whole_and_quarantines_nothing(
    world: LogWorld, engine: Engine
) -> None:
    envelope = Envelope("smtp", "member@team-a.example", "127.0.0.1")
    raws = [
        message(f"Quote {number}", to=f"Person {number} <person{number}@{CUSTOMER}>") for number in range(4)
    ]
    raws.append(message("Stranger", sender="mallory@stranger.example"))  # refused, and recorded
    jobs = [
        LogJob(world.team.workspace_id, service.prepare(raw, envelope, LOCAL_RELAY), envelope, LOCAL_RELAY)
        for raw in raws
    ]
    before = _counts(world)

    def log_batch() -> list[str]:
        with session_scope(world.sessions) as session:
            return [result.outcome for result in service.log_batch(session, jobs)]

    number = 0
    while True:
        number += 1
        with failing_statement(engine, number) as fault:
            try:
                outcomes = log_batch()
            except OperationalError:
                assert fault.fired
            else:
                assert not fault.fired, f"the batch went on past a failure at statement {number}"
        if not fault.fired:
            break
        assert _counts(world) == before, f"a failure at statement {number} left a trace"

    assert number > 10
    assert outcomes == ["logged"] * 4 + ["refused"]
    emails, quarantined, contacts, refusals = _counts(world)
    assert (emails, quarantined, contacts - before[2], refusals - before[3]) == (4, 0, 4, 1)
