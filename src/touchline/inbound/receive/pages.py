"""The unassigned list: logged emails nobody's participants matched, to assign or dismiss. Thin."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from touchline.db import session_scope
from touchline.inbound.receive import repository, service
from touchline.kit.errors import InvalidInputError
from touchline.kit.pagination import MAX_PAGE, PageRequest
from touchline.ui import CheckedForm, flash, redirect, render
from touchline.workspace import repository as workspace_repository
from touchline.workspace import service as workspace_service
from touchline.workspace.auth import PageActor, Sessions
from touchline.workspace.permissions import Actor

router = APIRouter(include_in_schema=False)

PER_PAGE = 25
COMPANY_CHOICES = 500
"""Companies offered as completions in the assign form; any other is found by typing its name or domain."""
_SEPARATORS = re.compile(r"[,;\n]+")


@router.get("/unassigned", response_class=HTMLResponse)
def unassigned_page(
    request: Request, actor: PageActor, sessions: Sessions, page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1
) -> HTMLResponse:
    with session_scope(sessions) as session:
        result = repository.list_unassigned(session, actor, PageRequest(PER_PAGE, (page - 1) * PER_PAGE))
        companies = repository.companies_by_id(
            session, actor, [value for email in result.items for value in email.suggested_company_ids]
        )
        rows = [(email, repository.suggestions_of(email, companies)) for email in result.items]
        log_address = workspace_service.visible_log_address(
            actor, workspace_service.get_settings(session, actor)
        )
        return render(
            request,
            "unassigned.html",
            actor,
            {"page": result, "rows": rows, "page_number": page, "q": "", "log_address": log_address},
        )


@router.get("/unassigned/refused", response_class=HTMLResponse)
def refused_page(
    request: Request, actor: PageActor, sessions: Sessions, page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1
) -> HTMLResponse:
    with session_scope(sessions) as session:
        result = repository.list_refusals(session, actor, PageRequest(PER_PAGE, (page - 1) * PER_PAGE))
        return render(
            request, "unassigned_refused.html", actor, {"page": result, "page_number": page, "q": ""}
        )


def _email_page(
    request: Request,
    actor: Actor,
    session: Session,
    email_id: uuid.UUID,
    *,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    email = repository.get_unassigned(session, actor, email_id)
    suggestions = repository.suggestions_of(
        email, repository.companies_by_id(session, actor, email.suggested_company_ids)
    )
    choices = workspace_repository.list_companies(
        session, actor, workspace_repository.CompanyFilter(), PageRequest(COMPANY_CHOICES, 0)
    ).items
    forwarded: dict[str, Any] = (email.decision or {}).get("forwarded") or {}
    return render(
        request,
        "unassigned_email.html",
        actor,
        {
            "email": email,
            "suggestions": suggestions,
            "company_choices": choices,
            "forwarded": forwarded,
            "log_entries": list((email.decision or {}).get("log", [])),
            "error": error,
            "form": form or {},
        },
        status_code=status_code,
    )


@router.get("/unassigned/{email_id}", response_class=HTMLResponse)
def unassigned_email_page(
    request: Request, email_id: uuid.UUID, actor: PageActor, sessions: Sessions
) -> HTMLResponse:
    with session_scope(sessions) as session:
        return _email_page(request, actor, session, email_id)


def _resolve(
    session: Session, actor: Actor, suggested: list[str], companies_text: str, contacts_text: str
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """Company ids from the ticked suggestions and typed names or domains; contact ids from addresses."""
    company_ids: list[uuid.UUID] = []
    for value in suggested:
        try:
            company_ids.append(uuid.UUID(value))
        except ValueError:
            raise InvalidInputError("the form was damaged; reload the page") from None
    for name in filter(None, (part.strip() for part in _SEPARATORS.split(companies_text))):
        company = workspace_service.find_company(session, actor, name)
        if company is None:
            raise InvalidInputError(f"no company is named {name!r} or has that domain")
        company_ids.append(company.id)
    contact_ids: list[uuid.UUID] = []
    for address in filter(None, (part.strip() for part in _SEPARATORS.split(contacts_text))):
        try:
            contact = workspace_service.find_contact_by_email(session, actor, address)
        except InvalidInputError:
            contact = None
        if contact is None:
            raise InvalidInputError(f"no contact has the address {address!r}")
        contact_ids.append(contact.id)
    return list(dict.fromkeys(company_ids)), list(dict.fromkeys(contact_ids))


@router.post("/unassigned/{email_id}/assign", response_class=HTMLResponse)
def assign(
    request: Request, email_id: uuid.UUID, actor: PageActor, sessions: Sessions, form: CheckedForm
) -> Response:
    suggested = [str(value) for value in form.getlist("company_ids")]
    companies_text = str(form.get("companies", ""))
    contacts_text = str(form.get("contacts", ""))
    try:
        with session_scope(sessions) as session:
            company_ids, contact_ids = _resolve(session, actor, suggested, companies_text, contacts_text)
            email = service.assign(session, actor, email_id, company_ids=company_ids, contact_ids=contact_ids)
            subject = email.subject or "(no subject)"
            names = [
                workspace_service.get_company(session, actor, company_id).name for company_id in company_ids
            ]
    except InvalidInputError as error:
        with session_scope(sessions) as session:
            return _email_page(
                request,
                actor,
                session,
                email_id,
                error=str(error),
                form={"companies": companies_text, "contacts": contacts_text},
                status_code=400,
            )
    targets = ", ".join([*names, f"{len(contact_ids)} contact(s)"] if contact_ids else names)
    flash(request, f"Assigned “{subject}” to {targets}.")
    return redirect("/unassigned")


@router.post("/unassigned/{email_id}/dismiss")
def dismiss(
    request: Request, email_id: uuid.UUID, actor: PageActor, sessions: Sessions, form: CheckedForm
) -> Response:
    with session_scope(sessions) as session:
        subject = repository.get_unassigned(session, actor, email_id).subject or "(no subject)"
        service.dismiss(session, actor, email_id)
    flash(request, f"Dismissed “{subject}”.")
    return redirect("/unassigned")
