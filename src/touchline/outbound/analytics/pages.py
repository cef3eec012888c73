"""The analytics page: average click and reply rate per template, rates over time, a sequence's per-step
funnel, each beside its numbers and with a CSV download; filters redraw the charts. Thin; the page's
script (static/analytics.js) reads /analytics/data."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.orm import Session

from touchline.db import session_scope
from touchline.kit.errors import InvalidInputError
from touchline.outbound.analytics import service
from touchline.outbound.analytics.schemas import GroupOut
from touchline.outbound.analytics.service import AnalyticsFilter, csv_safe
from touchline.outbound.bulk import pages as bulk_pages
from touchline.outbound.bulk import service as bulk_service
from touchline.outbound.templates import service as templates
from touchline.ui import check_csrf, redirect, render
from touchline.workspace.auth import AppSettings, PageActor, Sessions
from touchline.workspace.permissions import Actor

router = APIRouter(include_in_schema=False)

Chart = Literal["templates", "over_time", "funnel"]
CSV_COLUMNS: Final = (
    "group",
    "sent",
    "open_rate",
    "human_open_rate",
    "click_rate",
    "human_click_rate",
    "reply_rate",
    "opened",
    "clicked",
    "replied",
)


def _blank_as_none(text: str | None) -> str | None:
    return text.strip() or None if text is not None else None


def _page_filter(
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
    sender: str | None = None,
    template: str | None = None,
    sequence: str | None = None,
) -> AnalyticsFilter:
    """The page's filters as its form sends them (an empty field: no filter)."""
    try:
        values = [_blank_as_none(value) for value in (from_, to, sender, template, sequence)]
        start, end = (date.fromisoformat(value) if value else None for value in values[:2])
        sender_id, template_id, sequence_id = (uuid.UUID(value) if value else None for value in values[2:])
    except ValueError:
        raise InvalidInputError("dates are written YYYY-MM-DD and ids as the lists give them") from None
    return AnalyticsFilter(start=start, end=end, sender=sender_id, template=template_id, sequence=sequence_id)


PageFilter = Annotated[AnalyticsFilter, Depends(_page_filter)]


def _charts(session: Session, actor: Actor, given: AnalyticsFilter) -> dict[str, list[GroupOut]]:
    funnel = service.engagement_groups(session, actor, "step", given) if given.sequence else []
    return {
        "templates": [GroupOut.of(g) for g in service.engagement_groups(session, actor, "template", given)],
        "over_time": [GroupOut.of(g) for g in service.engagement_groups(session, actor, "week", given)],
        "funnel": [GroupOut.of(g) for g in sorted(funnel, key=lambda group: group.key)],
    }


@router.get("/analytics", response_class=HTMLResponse)
def analytics_page(request: Request, actor: PageActor, sessions: Sessions) -> HTMLResponse:
    with session_scope(sessions) as session:
        # The choices are what the person's sent emails were sent by, from and in.
        choices = {
            by: [g for g in service.engagement_groups(session, actor, by) if g.key]
            for by in ("sender", "template", "sequence")
        }
        return render(request, "analytics.html", actor, {"choices": choices})


@router.get("/analytics/data")
def analytics_data(actor: PageActor, sessions: Sessions, given: PageFilter) -> JSONResponse:
    with session_scope(sessions) as session:
        charts = _charts(session, actor, given)
    return JSONResponse(
        {name: [group.model_dump(mode="json") for group in groups] for name, groups in charts.items()}
    )


def _row(group: GroupOut) -> list[Any]:
    label = group.label if group.label else group.group
    rates = [
        group.open_rate,
        group.human_open_rate,
        group.click_rate,
        group.human_click_rate,
        group.reply_rate,
    ]
    counts = [group.counts.opened, group.counts.clicked, group.counts.replied]
    return [csv_safe(label), group.sent, *("" if rate is None else rate for rate in rates), *counts]


@router.get("/analytics/charts/{chart}.csv")
def analytics_csv(chart: Chart, actor: PageActor, sessions: Sessions, given: PageFilter) -> Response:
    with session_scope(sessions) as session:
        groups = _charts(session, actor, given)[chart]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(_row(group) for group in groups)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="analytics-{chart}.csv"'},
    )


# --- cohorts -----------------------------------------------------------------------------------------


def _cohort_query(
    template: str | None = None,
    bulk_id: str | None = None,
    sequence: str | None = None,
    step: str | None = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
    outcome: str = "reply",
    did: str = "",
    human: str = "",
) -> CohortQuery:
    return CohortQuery(
        {
            "template": template or "",
            "bulk_id": bulk_id or "",
            "sequence": sequence or "",
            "step": step or "",
            "from": from_ or "",
            "to": to or "",
            "outcome": outcome,
            "did": "true" if did == "true" else "",
            "human": "true" if human == "true" else "",
        }
    )


class CohortQuery(dict[str, str]):
    """The cohort form's fields as typed (kept on the page and in its links)."""

    def send_out(self) -> service.SendOut:
        try:
            ids = [uuid.UUID(self[key]) if self[key] else None for key in ("bulk_id", "sequence", "template")]
            step = int(self["step"]) if self["step"] else None
            start, end = (date.fromisoformat(self[key]) if self[key] else None for key in ("from", "to"))
        except ValueError:
            raise InvalidInputError(
                "dates are written YYYY-MM-DD, steps as numbers and ids as the lists give them"
            ) from None
        return service.SendOut(ids[0], ids[1], step, ids[2], start, end)

    def members(self, session: Session, actor: Actor) -> list[service.CohortMember]:
        return service.cohort(
            session,
            actor,
            self.send_out(),
            self["outcome"],
            did=self["did"] == "true",
            human=self["human"] == "true",
        )

    def link(self) -> str:
        return urlencode({key: value for key, value in self.items() if value})


Cohort = Annotated[CohortQuery, Depends(_cohort_query)]


@router.get("/analytics/cohort", response_class=HTMLResponse)
def cohort_page(request: Request, actor: PageActor, sessions: Sessions, chosen: Cohort) -> HTMLResponse:
    with session_scope(sessions) as session:
        members = (
            chosen.members(session, actor)
            if any(chosen[k] for k in ("template", "bulk_id", "sequence"))
            else None
        )
        context = {
            "chosen": chosen,
            "members": members,
            "templates": [g for g in service.engagement_groups(session, actor, "template") if g.key],
            "sequences": [g for g in service.engagement_groups(session, actor, "sequence") if g.key],
            "bulk_sends": bulk_service.list_bulk_sends(session, actor, limit=50),
            "send_templates": templates.list_templates(session, actor),
            "from_choices": bulk_pages.from_choices(session, actor),
        }
        return render(request, "analytics_cohort.html", actor, context)


@router.get("/analytics/cohort.csv")
def cohort_csv(actor: PageActor, sessions: Sessions, chosen: Cohort) -> Response:
    with session_scope(sessions) as session:
        members = chosen.members(session, actor)
    return Response(
        service.cohort_csv(members),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="cohort.csv"'},
    )


@router.post("/analytics/cohort/follow-up")
def follow_up(
    request: Request,
    actor: PageActor,
    sessions: Sessions,
    settings: AppSettings,
    chosen: Cohort,
    csrf_token: Annotated[str, Form()],
    sender: Annotated[str, Form()],
    template_id: Annotated[str, Form()],
) -> Response:
    """A bulk send of the chosen template to exactly the cohort the page shows."""
    check_csrf(request, csrf_token)
    try:
        template = uuid.UUID(template_id)
    except ValueError:
        raise InvalidInputError("choose a template to send") from None
    with session_scope(sessions) as session:
        ids = [
            member.contact_id for member in chosen.members(session, actor) if member.contact_id is not None
        ]
        wanted = bulk_service.BulkRequest(sender, None, template, "each", (), contact_ids=ids)
        bulk_id = bulk_service.start(session, actor, wanted, settings=settings).id
    return redirect(f"/bulk/{bulk_id}")
