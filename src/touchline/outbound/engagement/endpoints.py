"""JSON API of Email Engagement: the records with filters, and every event of one sent email. Thin."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from touchline.db import session_scope
from touchline.kit.errors import InvalidInputError
from touchline.kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from touchline.outbound.engagement import service
from touchline.outbound.engagement.schemas import Bounce, EngagementOut, EngagementPage, EventOut
from touchline.workspace.auth import ApiActor, Sessions

router = APIRouter(prefix="/api/v1", tags=["engagement"])


def _after(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if cursor is None:
        return None
    try:
        sent_at, record_id = decode_cursor(cursor, 2)
        return datetime.fromisoformat(sent_at), uuid.UUID(record_id)
    except ValueError:
        raise InvalidInputError("cursor is not one this list gave") from None


@router.get(
    "/engagements",
    summary="Email Engagement records, newest first (your own sent emails; every one for admins)",
)
def list_engagements(
    actor: ApiActor,
    sessions: Sessions,
    sender: uuid.UUID | None = None,
    template: uuid.UUID | None = None,
    sequence: uuid.UUID | None = None,
    step: Annotated[int | None, Query(ge=1)] = None,
    bulk_id: uuid.UUID | None = None,
    variant: Annotated[str | None, Query(max_length=50)] = None,
    bounce: Bounce | None = None,
    sent_after: AwareDatetime | None = None,
    sent_before: AwareDatetime | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> EngagementPage:
    given = service.EngagementFilter(
        sender, template, sequence, step, bulk_id, variant, bounce, sent_after, sent_before
    )
    with session_scope(sessions) as session:
        rows = service.list_engagements(session, actor, given, after=_after(cursor), limit=limit)
        items = [EngagementOut.of(record, row, events) for record, row, events in rows]
        last = rows[-1][0] if len(rows) == limit else None
        next_cursor = encode_cursor(last.sent_at.isoformat(), str(last.id)) if last is not None else None
        return EngagementPage(items=items, next_cursor=next_cursor)


@router.get(
    "/outbox/{outbound_id}/events",
    summary="Every engagement event of one sent email, oldest first, with machine reasons",
)
def list_events(outbound_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> list[EventOut]:
    with session_scope(sessions) as session:
        return [EventOut.of(event, url) for event, url in service.events_of(session, actor, outbound_id)]
