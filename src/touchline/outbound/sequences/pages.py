"""Sequence pages: the list, and the builder with its enrolments. Thin."""

from __future__ import annotations

import uuid
from datetime import time
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from touchline.db import session_scope
from touchline.kit.errors import ConflictError, InvalidInputError, NotFoundError
from touchline.models import Sequence
from touchline.outbound.compose.senders import ACCOUNT_OWNER
from touchline.outbound.engagement import service as engagement
from touchline.outbound.from_field import service as from_field
from touchline.outbound.from_field.service import ComposeContext
from touchline.outbound.sequences import service
from touchline.outbound.templates import service as templates
from touchline.ui import CheckedForm, check_csrf, flash, redirect, render
from touchline.workspace.auth import Now, PageActor, Sessions
from touchline.workspace.permissions import Actor

router = APIRouter(include_in_schema=False)

FORM_ERRORS = (InvalidInputError, ConflictError, NotFoundError)
Csrf = Annotated[str, Form(alias="csrf_token")]


def _choices(session: Session, actor: Actor) -> list[tuple[str, str]]:
    """The From choices a sequence may use: the actor's own and public addresses, and Account Owner
    (the enduser's company's owner, decided at each step)."""
    offered = [(c.key, c.label) for c in from_field.from_choices(session, actor, ComposeContext())]
    return [*offered, (ACCOUNT_OWNER, "Account Owner")]


def _form_context(session: Session, actor: Actor) -> dict[str, object]:
    return {"from_choices": _choices(session, actor), "templates": templates.list_templates(session, actor)}


def _list_context(session: Session, actor: Actor) -> dict[str, object]:
    rows = service.list_sequences(session, actor)
    return {
        "sequences": rows,
        "counts": service.counts_by_state(session, actor, [row.id for row in rows]),
        **_form_context(session, actor),
    }


@router.get("/sequences", response_class=HTMLResponse)
def sequences_page(request: Request, actor: PageActor, sessions: Sessions) -> HTMLResponse:
    with session_scope(sessions) as session:
        return render(request, "sequences.html", actor, _list_context(session, actor) | {"typed": {}})


def _time(text: str, what: str) -> time:
    try:
        return time.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(f"the window's {what} is a time such as 09:00") from None


def _uuid(text: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidInputError(f"choose {what}") from None


def _spec(form: dict[str, list[str]]) -> service.SequenceSpec:
    """The sequence as the builder's form wrote it; a step row without a template is left out."""

    def one(name: str, default: str = "") -> str:
        values = form.get(name) or [default]
        return values[0]

    steps: list[service.StepSpec] = []
    rows = zip(
        form.get("template_id", []), form.get("delay_days", []), form.get("condition", []), strict=False
    )
    for template_id, delay, condition in rows:
        if not template_id:
            continue
        try:
            days = int(delay or "0")
        except ValueError:
            raise InvalidInputError(f"step {len(steps) + 1}: the delay is a number of days") from None
        steps.append(service.StepSpec(_uuid(template_id, "a template"), days, condition))
    return service.SequenceSpec(
        name=one("name"),
        sender=one("sender"),
        steps=steps,
        exit_on_reply=one("exit_on_reply") == "yes",
        time_zone=one("time_zone").strip() or None,
        window_start=_time(one("window_start", "09:00"), "start"),
        window_end=_time(one("window_end", "17:00"), "end"),
        business_days_only=one("business_days_only") == "yes",
    )


def _lists(form: FormData) -> dict[str, list[str]]:
    return {key: [str(value) for value in form.getlist(key)] for key in form}


def _typed(form: dict[str, list[str]]) -> dict[str, object]:
    """What was typed, to show again beside an error."""
    steps = [
        {"template_id": t, "delay_days": d, "condition": c}
        for t, d, c in zip(
            form.get("template_id", []), form.get("delay_days", []), form.get("condition", []), strict=False
        )
        if t
    ]
    return {key: values[0] for key, values in form.items() if values} | {"steps": steps}


@router.post("/sequences", response_class=HTMLResponse)
def create_sequence(
    request: Request, actor: PageActor, sessions: Sessions, submitted: CheckedForm
) -> Response:
    form = _lists(submitted)
    try:
        with session_scope(sessions) as session:
            sequence_id = service.create_sequence(session, actor, _spec(form)).id
    except FORM_ERRORS as error:
        with session_scope(sessions) as session:
            context = _list_context(session, actor) | {"error": str(error), "typed": _typed(form)}
        return render(request, "sequences.html", actor, context, status_code=400)
    flash(request, "Sequence created. Add more steps, then enrol endusers.")
    return redirect(f"/sequences/{sequence_id}")


def _builder_context(session: Session, actor: Actor, sequence: Sequence) -> dict[str, object]:
    enrolments = service.list_enrolments(session, actor, sequence.id)
    return {
        "sequence": sequence,
        "enrolments": enrolments,
        "runs": service.step_runs(session, actor, [row.id for row in enrolments]),
        "counts": service.counts_by_state(session, actor, [sequence.id]).get(sequence.id, {}),
        "outcomes": engagement.step_outcomes(session, actor, sequence.id),
        "typed": None,
        "where": "",
        "emails": "",
        **_form_context(session, actor),
    }


@router.get("/sequences/{sequence_id}", response_class=HTMLResponse)
def builder_page(
    request: Request, sequence_id: uuid.UUID, actor: PageActor, sessions: Sessions
) -> HTMLResponse:
    with session_scope(sessions) as session:
        sequence = service.get_sequence(session, actor, sequence_id)
        return render(request, "sequence.html", actor, _builder_context(session, actor, sequence))


def _builder_error(
    request: Request,
    actor: Actor,
    sessions: Sessions,
    sequence_id: uuid.UUID,
    error: Exception,
    **typed: object,
) -> HTMLResponse:
    with session_scope(sessions) as session:
        sequence = service.get_sequence(session, actor, sequence_id)
        context = _builder_context(session, actor, sequence) | {"error": str(error), **typed}
        return render(request, "sequence.html", actor, context, status_code=400)


@router.post("/sequences/{sequence_id}", response_class=HTMLResponse)
def save_sequence(
    request: Request, sequence_id: uuid.UUID, actor: PageActor, sessions: Sessions, submitted: CheckedForm
) -> Response:
    form = _lists(submitted)
    try:
        with session_scope(sessions) as session:
            service.update_sequence(session, actor, sequence_id, _spec(form))
    except FORM_ERRORS as error:
        return _builder_error(request, actor, sessions, sequence_id, error, typed=_typed(form))
    flash(request, "Sequence saved.")
    return redirect(f"/sequences/{sequence_id}")


@router.post("/sequences/{sequence_id}/enrol", response_class=HTMLResponse)
def enrol(
    request: Request,
    sequence_id: uuid.UUID,
    actor: PageActor,
    sessions: Sessions,
    csrf: Csrf,
    now: Now,
    where: Annotated[str, Form()] = "",
    emails: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf)
    filters = [line.strip() for line in where.splitlines() if line.strip()]
    try:
        with session_scope(sessions) as session:
            if filters:
                result = service.enrol_where(session, actor, sequence_id, filters, now=now)
            else:
                ids = service.contacts_by_email(session, actor, emails.replace(",", "\n").splitlines())
                result = service.enrol(session, actor, sequence_id, ids, now=now)
            enrolled = len(result.enrolled)
    except FORM_ERRORS as error:
        return _builder_error(request, actor, sessions, sequence_id, error, where=where, emails=emails)
    message = f"{enrolled} enduser{'s' if enrolled != 1 else ''} enrolled."
    if result.already:
        message += f" Already in it: {', '.join(result.already)}."
    if result.unsubscribed:
        message += f" Left out, unsubscribed: {', '.join(result.unsubscribed)}."
    flash(request, message)
    return redirect(f"/sequences/{sequence_id}")


@router.post("/sequences/{sequence_id}/status")
def sequence_status(
    request: Request,
    sequence_id: uuid.UUID,
    actor: PageActor,
    sessions: Sessions,
    csrf: Csrf,
    now: Now,
    paused: Annotated[str, Form()],
) -> Response:
    check_csrf(request, csrf)
    with session_scope(sessions) as session:
        service.set_sequence_status(session, actor, sequence_id, paused=paused == "yes", now=now)
    flash(
        request,
        "Sequence paused: no step runs until you resume it." if paused == "yes" else "Sequence resumed.",
    )
    return redirect(f"/sequences/{sequence_id}")


@router.post("/sequences/{sequence_id}/delete")
def delete_sequence(
    request: Request, sequence_id: uuid.UUID, actor: PageActor, sessions: Sessions, csrf: Csrf
) -> Response:
    check_csrf(request, csrf)
    with session_scope(sessions) as session:
        service.delete_sequence(session, actor, sequence_id)
    flash(request, "Sequence deleted.")
    return redirect("/sequences")


_ACTIONS = {"pause": service.pause, "resume": service.resume, "unenrol": service.unenrol}
_DONE = {"pause": "Enrolment paused.", "resume": "Enrolment resumed.", "unenrol": "Enduser unenrolled."}


@router.post("/sequences/enrolments/{enrolment_id}/{action}")
def change_enrolment(
    request: Request,
    enrolment_id: uuid.UUID,
    action: str,
    actor: PageActor,
    sessions: Sessions,
    csrf: Csrf,
    now: Now,
) -> Response:
    check_csrf(request, csrf)
    change = _ACTIONS.get(action)
    if change is None:
        raise NotFoundError("no such change of an enrolment")
    with session_scope(sessions) as session:
        sequence_id = service.get_enrolment(session, actor, enrolment_id).sequence_id
    try:
        with session_scope(sessions) as session:
            change(session, actor, enrolment_id, now=now)
    except ConflictError as error:
        flash(request, str(error), "error")
    else:
        flash(request, _DONE[action])
    return redirect(f"/sequences/{sequence_id}")
