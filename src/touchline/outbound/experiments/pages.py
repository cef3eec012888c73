"""The A/B test pages: the list, and one test with each variant's rate and interval (a chart drawn by
static/experiment.js from the numbers the page carries as JSON, the same numbers in a table beside
it, and their CSV download), the test's state and its decision; admins may stop a running test and
pick the winner. Thin."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Annotated, Final

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from touchline.db import session_scope
from touchline.outbound.analytics.service import csv_safe
from touchline.outbound.experiments import rules, service
from touchline.outbound.experiments.schemas import ExperimentDetail, detail_of
from touchline.ui import check_csrf, flash, redirect, render
from touchline.workspace.auth import Now, PageActor, Sessions
from touchline.workspace.permissions import Permission

router = APIRouter(include_in_schema=False)

CSV_COLUMNS: Final = (
    "variant",
    "template",
    "sends",
    "successes",
    "rate",
    "interval_low",
    "interval_high",
    "state",
)


def chart_data(detail: ExperimentDetail) -> dict[str, object]:
    """What the page's chart draws: each variant's rate and interval, as shares (0 to 1)."""
    return {
        "variants": [
            {
                "label": variant.label,
                "rate": variant.rate,
                "low": variant.rate_low,
                "high": variant.rate_high,
            }
            for variant in detail.variants
        ]
    }


def variants_csv(detail: ExperimentDetail) -> str:
    """Each variant's numbers, a row each; text cells as a spreadsheet shows text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for variant in detail.variants:
        writer.writerow(
            [
                csv_safe(variant.label),
                csv_safe(variant.template),
                variant.sends,
                variant.successes,
                "" if variant.rate is None else variant.rate,
                variant.rate_low,
                variant.rate_high,
                detail.state,
            ]
        )
    return out.getvalue()


@router.get("/experiments")
def experiments_page(request: Request, actor: PageActor, sessions: Sessions) -> Response:
    with session_scope(sessions) as session:
        found = [
            (one, [variant.template_name for variant in service.variants_of(one)])
            for one in service.list_experiments(session, actor)
        ]
    return render(request, "experiments.html", actor, {"experiments": found})


@router.get("/experiments/{experiment_id}")
def experiment_page(
    experiment_id: uuid.UUID, request: Request, actor: PageActor, sessions: Sessions
) -> Response:
    with session_scope(sessions) as session:
        experiment = service.get_experiment(session, actor, experiment_id)
        detail = detail_of(service.running_numbers(session, experiment))
    return render(
        request,
        "experiment.html",
        actor,
        {
            "experiment": detail,
            "chart_data": chart_data(detail),
            "can_stop": actor.can(Permission.ADMIN_ACCESS) and detail.state == service.RUNNING,
            "open_rate_warning": rules.OPEN_RATE_WARNING,
        },
    )


@router.get("/experiments/{experiment_id}/variants.csv")
def experiment_csv(experiment_id: uuid.UUID, actor: PageActor, sessions: Sessions) -> Response:
    with session_scope(sessions) as session:
        experiment = service.get_experiment(session, actor, experiment_id)
        detail = detail_of(service.running_numbers(session, experiment))
    return Response(
        variants_csv(detail),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="ab-test-{experiment_id}.csv"'},
    )


@router.post("/experiments/{experiment_id}/stop")
def stop_experiment(
    experiment_id: uuid.UUID,
    request: Request,
    actor: PageActor,
    sessions: Sessions,
    now: Now,
    csrf_token: Annotated[str, Form()],
    winner: Annotated[str, Form(max_length=50)],
) -> Response:
    check_csrf(request, csrf_token)
    with session_scope(sessions) as session:
        service.stop(session, actor, experiment_id, winner, now)
    flash(request, f"The A/B test was stopped; variant {winner} goes to the rest of the audience.")
    return redirect(f"/experiments/{experiment_id}")
