"""JSON API of engagement analytics: average rates by group, with the counts behind them. Thin."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from touchline.db import session_scope
from touchline.outbound.analytics import service
from touchline.outbound.analytics.repository import Dimension
from touchline.outbound.analytics.schemas import CohortMemberOut, EngagementAnalytics, GroupOut
from touchline.workspace.auth import ApiActor, Sessions

router = APIRouter(prefix="/api/v1", tags=["analytics"])


@router.get(
    "/analytics/engagement",
    summary="Average open, click and reply rates, raw and human-only, by group (your own sends; every one "
    "for admins)",
    description="Exactly as fresh as the engagement records: an event counts from the commit of the "
    "refresh that records it. Company and enduser groups also give last_touch_at, emails_in and "
    "emails_out.",
)
def engagement_analytics(
    actor: ApiActor,
    sessions: Sessions,
    group_by: Dimension = "template",
    from_: Annotated[date | None, Query(alias="from", description="First UTC day sent")] = None,
    to: Annotated[date | None, Query(description="Last UTC day sent (included)")] = None,
    sender: uuid.UUID | None = None,
    template: uuid.UUID | None = None,
    sequence: uuid.UUID | None = None,
    step: Annotated[int | None, Query(ge=1)] = None,
    bulk_id: uuid.UUID | None = None,
    variant: Annotated[str | None, Query(max_length=50)] = None,
    where: Annotated[
        list[str] | None,
        Query(
            max_length=20,
            description="Enduser or company field filters, as a bulk send's: company.custom.tier=gold",
        ),
    ] = None,
) -> EngagementAnalytics:
    given = service.AnalyticsFilter(
        from_, to, sender, template, sequence, step, bulk_id, variant, tuple(where or ())
    )
    with session_scope(sessions) as session:
        groups = service.engagement_groups(session, actor, group_by, given)
        return EngagementAnalytics(group_by=group_by, groups=[GroupOut.of(group) for group in groups])


def _send_out(
    bulk_id: uuid.UUID | None = None,
    sequence: uuid.UUID | None = None,
    step: Annotated[int | None, Query(ge=1)] = None,
    template: uuid.UUID | None = None,
    from_: Annotated[date | None, Query(alias="from", description="First UTC day sent")] = None,
    to: Annotated[date | None, Query(description="Last UTC day sent (included)")] = None,
) -> service.SendOut:
    return service.SendOut(bulk_id, sequence, step, template, from_, to)


SendOutQuery = Annotated[service.SendOut, Depends(_send_out)]
Outcome = Literal["open", "click", "reply"]


@router.get(
    "/analytics/cohort",
    summary="The recipients of a send-out (bulk send, sequence step, template over a period) who did, or did "
    "not, open, click or reply",
)
def engagement_cohort(
    actor: ApiActor,
    sessions: Sessions,
    send_out: SendOutQuery,
    outcome: Outcome,
    did: bool = False,
    human: Annotated[
        bool, Query(description="By the human-only rate (machine opens and clicks are unknown)")
    ] = False,
) -> list[CohortMemberOut]:
    with session_scope(sessions) as session:
        members = service.cohort(session, actor, send_out, outcome, did=did, human=human)
        return [CohortMemberOut.of(member) for member in members]


@router.get(
    "/analytics/cohort.csv",
    summary="The same cohort as a CSV file (cells safe to open in a spreadsheet)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def engagement_cohort_csv(
    actor: ApiActor,
    sessions: Sessions,
    send_out: SendOutQuery,
    outcome: Outcome,
    did: bool = False,
    human: bool = False,
) -> Response:
    with session_scope(sessions) as session:
        members = service.cohort(session, actor, send_out, outcome, did=did, human=human)
    name = f"cohort-{'did' if did else 'did-not'}-{outcome}{'-human' if human else ''}.csv"
    return Response(
        service.cohort_csv(members),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
