"""The seam with the engagement refresh: the named job, sent with the agreed kwargs, runs in the queue."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team
from tests.outbound.notify.helpers import deliveries
from touchline.config import Settings
from touchline.outbound.notify import ENGAGEMENT_JOB
from touchline.outbound.notify.tasks import RETRY_JOB
from touchline.worker import Queue, configure_queue


@pytest.fixture
def immediate_queue(settings: Settings) -> Iterator[Queue]:
    queue = configure_queue(settings, immediate=True)
    yield queue
    queue.close()


def test_the_engagement_job_notifies_the_sender(
    immediate_queue: Queue, sessions: sessionmaker[Session], team: Team, sent_email: uuid.UUID
) -> None:
    at = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)
    immediate_queue.send(
        ENGAGEMENT_JOB,
        workspace_id=str(team.workspace_id),
        user_id=str(team.member_id),
        notices=[
            {
                "kind": "open",
                "outbound_id": str(sent_email),
                "subject": "Renewal plans",
                "recipient": "jo@customer.example",
                "at": at.isoformat(),
                "detail": "",
            },
            {
                "kind": "forwarded",
                "outbound_id": str(sent_email),
                "at": at.isoformat(),
            },  # not a kind: skipped
        ],
    )
    [row] = deliveries(sessions)
    assert (row.user_id, row.channel, row.kind, row.occurred_at, row.status) == (
        team.member_id,
        "browser",
        "open",
        at,
        "sent",
    )


def test_the_retry_sweep_is_a_periodic_job(immediate_queue: Queue) -> None:
    assert immediate_queue.task(RETRY_JOB).name == RETRY_JOB
