"""JSON API of bulk sends: start (or dry-run), count, list, progress, skipped endusers. Thin."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy.orm import Session

from touchline.db import session_scope
from touchline.outbound.analytics import service as analytics
from touchline.outbound.analytics.schemas import CohortIn
from touchline.outbound.bulk import service
from touchline.outbound.bulk.schemas import BulkSendOut, BulkSendRequest, BulkSummaryOut, CountOut, SkipOut
from touchline.workspace.auth import ApiActor, AppSettings, Now, Sessions
from touchline.workspace.permissions import Actor

router = APIRouter(prefix="/api/v1", tags=["bulk sends"])


def _cohort(session: Session, actor: Actor, cohort: CohortIn | None) -> list[uuid.UUID] | None:
    """The endusers of the cohort a follow-up goes to (recipients without a contact cannot be sent to)."""
    if cohort is None:
        return None
    members = analytics.cohort(
        session, actor, cohort.send_out(), cohort.outcome, did=cohort.did, human=cohort.human
    )
    return [member.contact_id for member in members if member.contact_id is not None]


@router.post(
    "/bulk-sends",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a template to the endusers the filters select (needs send_email); dry_run only counts",
)
def start_bulk_send(
    body: BulkSendRequest, response: Response, actor: ApiActor, sessions: Sessions, settings: AppSettings
) -> BulkSummaryOut:
    with session_scope(sessions) as session:
        request = body.request(_cohort(session, actor, body.cohort))
        if body.dry_run:
            response.status_code = status.HTTP_200_OK
            return BulkSummaryOut.of_plan(service.plan(session, actor, request, settings=settings))
        bulk = service.start(session, actor, request, settings=settings)
        return BulkSummaryOut.of_bulk(bulk, [])


@router.get("/bulk-sends/count", summary="How many endusers filters select now (the page's live count)")
def count_recipients(
    actor: ApiActor,
    sessions: Sessions,
    filters: Annotated[list[str] | None, Query(alias="filter", max_length=50)] = None,
) -> CountOut:
    with session_scope(sessions) as session:
        recipients, skipped = service.count(session, actor, filters or [])
    return CountOut(recipients=recipients, skipped=skipped)


@router.get("/bulk-sends", summary="Your bulk sends, newest first (every user's for admins)")
def list_bulk_sends(actor: ApiActor, sessions: Sessions, now: Now) -> list[BulkSendOut]:
    with session_scope(sessions) as session:
        return [
            BulkSendOut.of(bulk, service.progress(session, actor, bulk.id, now))
            for bulk in service.list_bulk_sends(session, actor)
        ]


@router.get("/bulk-sends/{bulk_id}", summary="One bulk send and where its endusers are")
def read_bulk_send(bulk_id: uuid.UUID, actor: ApiActor, sessions: Sessions, now: Now) -> BulkSendOut:
    with session_scope(sessions) as session:
        bulk = service.get_bulk_send(session, actor, bulk_id)
        return BulkSendOut.of(bulk, service.progress(session, actor, bulk.id, now))


@router.get("/bulk-sends/{bulk_id}/skipped", summary="The endusers a bulk send skipped, with the reason")
def skipped_endusers(bulk_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> list[SkipOut]:
    with session_scope(sessions) as session:
        return [SkipOut.of(skip) for skip in service.skipped_of(session, actor, bulk_id)]
