"""A request whose data committed succeeds though the queue cannot be reached: its job waits in the
outbox and is sent, once, when the queue is back (issue 15, item 13)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.jobs_seam import sent_jobs
from tests.receive.conftest import LogWorld, message
from tests.receive.test_http_inbound import credentials, dkim_signed_by_the_team, post
from touchline.config import Settings
from touchline.db import session_scope
from touchline.inbound.reports.model import STORED_JOB
from touchline.models import PendingJob
from touchline.worker import configure_queue, enqueue, outbox

__all__ = ["dkim_signed_by_the_team"]  # the log address's DKIM set-up, for these posts too

pytestmark = pytest.mark.redis


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but never listening: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def _pending(sessions: sessionmaker[Session]) -> list[tuple[str, dict[str, object]]]:
    with session_scope(sessions) as session:
        return [(row.name, row.kwargs) for row in session.scalars(select(PendingJob))]


def test_a_logged_message_is_answered_while_redis_is_down_and_its_job_sent_once_it_is_back(
    client: TestClient,
    world: LogWorld,
    settings: Settings,
    sessions: sessionmaker[Session],
    closed_port: int,
    redis_url: str,
) -> None:
    secret = credentials(client, world.team)
    down = configure_queue(settings.model_copy(update={"queue_url": f"redis://127.0.0.1:{closed_port}/0"}))
    with pytest.raises(redis.ConnectionError):
        down.ping()

    code, body = post(
        client, world, message("While Redis is down"), **{secret["secret_header"]: secret["inbound_secret"]}
    )

    assert code == 201, body
    assert body["outcome"] == "logged"
    waiting = _pending(sessions)
    assert waiting == [
        (STORED_JOB, {"workspace_id": str(world.team.workspace_id), "email_ids": [body["email_id"]]})
    ]
    assert outbox.drain(sessions, down) == 0  # still down: the job stays where it is
    assert _pending(sessions) == waiting

    back = configure_queue(settings.model_copy(update={"queue_url": redis_url}))
    assert outbox.drain(sessions, back) == 1
    assert outbox.drain(sessions, back) == 0
    assert _pending(sessions) == []
    assert sent_jobs(back, STORED_JOB) == [waiting[0][1]]


def test_a_job_is_sent_once_and_leaves_no_row_when_the_queue_is_up(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    queue = configure_queue(settings)
    with session_scope(sessions) as session:
        enqueue(session, "worker.ping", reply_key="at once")
        enqueue(session, "worker.ping", reply_key="and this")
        assert len(session.scalars(select(PendingJob)).all()) == 2  # in the caller's transaction
    assert _pending(sessions) == []
    assert outbox.drain(sessions, queue) == 0
    assert [job["reply_key"] for job in sent_jobs(queue, "worker.ping")] == ["at once", "and this"]


def test_a_job_recorded_in_a_savepoint_is_sent_when_the_transaction_commits_not_before(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    """Releasing a savepoint is no commit: its job goes once the transaction around it commits."""
    queue = configure_queue(settings)
    with session_scope(sessions) as session:
        with session.begin_nested():
            enqueue(session, "worker.ping", reply_key="in a savepoint")
        assert sent_jobs(queue, "worker.ping") == []  # the savepoint is released, nothing committed
        assert len(session.scalars(select(PendingJob)).all()) == 1
    assert [job["reply_key"] for job in sent_jobs(queue, "worker.ping")] == ["in a savepoint"]
    assert _pending(sessions) == []


def test_a_rolled_back_transaction_leaves_nothing_to_send(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    queue = configure_queue(settings)

    def failing() -> None:
        with session_scope(sessions) as session:
            enqueue(session, "worker.ping", reply_key="rolled back")
            session.flush()
            raise RuntimeError("the request fails")

    with pytest.raises(RuntimeError):
        failing()
    assert _pending(sessions) == []
    assert outbox.drain(sessions, queue) == 0
    assert queue.pending_count() == 0


def test_a_row_naming_no_job_is_dropped_and_does_not_hold_back_the_rest(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    queue = configure_queue(settings)
    with session_scope(sessions) as session:
        session.add(PendingJob(name="renamed.long.ago", kwargs={}))
        session.flush()
        session.add(PendingJob(name="worker.ping", kwargs={"reply_key": "behind it"}))
    assert outbox.drain(sessions, queue) == 1
    assert _pending(sessions) == []
    assert [job["reply_key"] for job in sent_jobs(queue, "worker.ping")] == ["behind it"]
