"""Starting, queueing and delivering a bulk send in tests, acting as the member of the outbox world."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from tests.outbound.bulk.conftest import MEMBER, Crowd
from touchline.db import session_scope
from touchline.models import OutboundEmail
from touchline.outbound.bulk import service as bulk
from touchline.outbound.bulk import tasks
from touchline.workspace import service
from touchline.workspace.permissions import Actor


def actor_for(crowd: Crowd, email: str = MEMBER) -> Actor:
    # Reads only: a reading session, so it may be called inside a writing transaction (on SQLite a
    # second writing transaction in the same thread would wait for the first's lock).
    with crowd.world.sessions() as session:
        operator = Actor.operator(crowd.world.team.workspace_id)
        return service.actor_for(service.find_user_by_email(session, operator, email))


def request(
    *filters: str, template: str = "news", mode: str = "each", sender: str = MEMBER
) -> bulk.BulkRequest:
    return bulk.BulkRequest(sender=sender, template=template, mode=mode, filters=filters)  # type: ignore[arg-type]


def plan(crowd: Crowd, wanted: bulk.BulkRequest, actor: Actor | None = None) -> bulk.Plan:
    with session_scope(crowd.world.sessions) as session:
        return bulk.plan(session, actor or actor_for(crowd), wanted, settings=crowd.world.settings)


def start(crowd: Crowd, wanted: bulk.BulkRequest, *, queue_now: bool = True) -> uuid.UUID:
    world = crowd.world
    with session_scope(world.sessions) as session:
        bulk_id = bulk.start(session, actor_for(crowd), wanted, settings=world.settings, run_job=False).id
    if queue_now:
        assert (
            tasks.queue_bulk(world.sessions, world.box, world.settings, bulk_id, clock=world.clock)
            == "queued"
        )
    return bulk_id


def emails_of(crowd: Crowd, bulk_id: uuid.UUID | str) -> list[OutboundEmail]:
    bulk_id = uuid.UUID(str(bulk_id))
    with session_scope(crowd.world.sessions) as session:
        rows = list(
            session.scalars(
                select(OutboundEmail).where(OutboundEmail.bulk_id == bulk_id).order_by(OutboundEmail.id)
            )
        )
        for row in rows:
            _ = row.recipients
        session.expunge_all()
        return rows


def deliver_all(crowd: Crowd, bulk_id: uuid.UUID | str) -> dict[str, int]:
    outcomes: dict[str, int] = {}
    for row in emails_of(crowd, bulk_id):
        status = crowd.world.deliver(row.id) or "none"
        outcomes[status] = outcomes.get(status, 0) + 1
    return outcomes


def progress(crowd: Crowd, bulk_id: uuid.UUID, actor: Actor | None = None) -> bulk.Progress:
    with session_scope(crowd.world.sessions) as session:
        return bulk.progress(session, actor or actor_for(crowd), bulk_id, crowd.world.clock.now)
