"""The A/B test pages: the list, and one test with each variant's rate and interval (a table with a
<meter> bar per variant: no script, nothing inline), the test's state and its decision; admins may stop
a running test and pick the winner. Thin."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from touchline.db import session_scope
from touchline.outbound.experiments import rules, service
from touchline.outbound.experiments.schemas import detail_of
from touchline.ui import check_csrf, flash, redirect, render
from touchline.workspace.auth import Now, PageActor, Sessions
from touchline.workspace.permissions import Permission

router = APIRouter(include_in_schema=False)


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
            "can_stop": actor.can(Permission.ADMIN_ACCESS) and detail.state == service.RUNNING,
            "open_rate_warning": rules.OPEN_RATE_WARNING,
        },
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
