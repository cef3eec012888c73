"""Company and contact profiles with their threaded timelines, and single emails. Thin."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from touchline.db import session_scope
from touchline.inbound import repository, timeline, wording
from touchline.inbound.receive import repository as receive_repository
from touchline.kit.errors import ConflictError, InvalidInputError, NotFoundError
from touchline.kit.pagination import MAX_PAGE, Page, PageRequest
from touchline.ui import check_csrf, flash, redirect, render
from touchline.workspace import repository as workspace_repository
from touchline.workspace import service as workspace_service
from touchline.workspace.auth import PageActor, Sessions
from touchline.workspace.permissions import Actor

router = APIRouter(include_in_schema=False)

CONVERSATIONS_PER_PAGE = 10

SentEngagement = Callable[[Session, Actor, Iterable[uuid.UUID]], Mapping[uuid.UUID, object]]
"""What the outbound layer shows of the emails touchline sent, by the id of their stored sent copy: the
app lists it as `sent_engagement`, so these pages need no import of it."""


def _sent_engagement(
    request: Request, session: Session, actor: Actor, email_ids: Iterable[uuid.UUID]
) -> Mapping[uuid.UUID, object]:
    reader: SentEngagement | None = getattr(request.app.state, "sent_engagement", None)
    return reader(session, actor, email_ids) if reader is not None else {}


def _timeline_email_ids(conversations: Page[timeline.TimelineEntry]) -> list[uuid.UUID]:
    return [email.id for entry in conversations.items for email in entry.emails]


@router.get("/companies/{company_id}", response_class=HTMLResponse)
def company_page(
    request: Request,
    company_id: uuid.UUID,
    actor: PageActor,
    sessions: Sessions,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> HTMLResponse:
    with session_scope(sessions) as session:
        company = workspace_service.get_company(session, actor, company_id)
        contacts = workspace_repository.list_contacts(
            session, actor, workspace_repository.ContactFilter(company_id=company.id), PageRequest(200, 0)
        )
        conversations = timeline.company_timeline(
            session,
            actor.workspace_id,
            company.id,
            PageRequest(CONVERSATIONS_PER_PAGE, (page - 1) * CONVERSATIONS_PER_PAGE),
        )
        return render(
            request,
            "company.html",
            actor,
            {
                "company": company,
                "contacts": contacts,
                "users": workspace_service.list_users(session, actor),
                "custom_fields": workspace_service.list_custom_fields(session, actor, "company"),
                "timeline": conversations,
                "engagement": _sent_engagement(request, session, actor, _timeline_email_ids(conversations)),
                "page_number": page,
                "error": None,
            },
        )


@router.get("/contacts/{contact_id}", response_class=HTMLResponse)
def contact_page(
    request: Request,
    contact_id: uuid.UUID,
    actor: PageActor,
    sessions: Sessions,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> HTMLResponse:
    return _contact_page(request, actor, sessions, contact_id, page)


def _contact_page(
    request: Request,
    actor: Actor,
    sessions: Sessions,
    contact_id: uuid.UUID,
    page: int = 1,
    *,
    error: str | None = None,
    form: Mapping[str, str] | None = None,
) -> HTMLResponse:
    with session_scope(sessions) as session:
        contact = workspace_service.get_contact(session, actor, contact_id)
        conversations = timeline.contact_timeline(
            session,
            actor.workspace_id,
            contact.id,
            PageRequest(CONVERSATIONS_PER_PAGE, (page - 1) * CONVERSATIONS_PER_PAGE),
        )
        companies = workspace_repository.list_companies(
            session, actor, workspace_repository.CompanyFilter(), PageRequest(500, 0)
        )
        return render(
            request,
            "contact.html",
            actor,
            {
                "contact": contact,
                "companies": companies.items,
                "custom_fields": workspace_service.list_custom_fields(session, actor, "contact"),
                "timeline": conversations,
                "engagement": _sent_engagement(request, session, actor, _timeline_email_ids(conversations)),
                "page_number": page,
                "error": error,
                "form": form or {},
            },
            status_code=400 if error else 200,
        )


@router.post("/contacts/{contact_id}", response_class=HTMLResponse)
def edit_contact(
    request: Request,
    contact_id: uuid.UUID,
    actor: PageActor,
    sessions: Sessions,
    csrf_token: Annotated[str, Form()],
    email: Annotated[str, Form()],
    name: Annotated[str, Form()] = "",
    company_id: Annotated[str, Form()] = "",
) -> Response:
    """The contact page's edit form: name, address and company; a mistake keeps what was typed."""
    check_csrf(request, csrf_token)
    try:
        company = uuid.UUID(company_id) if company_id else None
        with session_scope(sessions) as session:
            workspace_service.update_contact(
                session,
                actor,
                contact_id,
                email=email,
                name=name,
                company_id=company,
                clear_company=company is None,
            )
    except (InvalidInputError, ConflictError, NotFoundError, ValueError) as error:
        message = "choose a company from the list" if isinstance(error, ValueError) else str(error)
        typed = {"email": email, "name": name, "company_id": company_id}
        return _contact_page(request, actor, sessions, contact_id, error=message, form=typed)
    flash(request, "Contact saved.")
    return redirect(f"/contacts/{contact_id}")


@router.get("/conversations/{conversation_id}", response_class=HTMLResponse)
def conversation_page(
    request: Request, conversation_id: uuid.UUID, actor: PageActor, sessions: Sessions
) -> HTMLResponse:
    with session_scope(sessions) as session:
        conversation, emails = repository.get_conversation(session, actor, conversation_id)
        return render(
            request,
            "conversation.html",
            actor,
            {
                "conversation": conversation,
                "emails": emails,
                "engagement": _sent_engagement(request, session, actor, [email.id for email in emails]),
            },
        )


@router.get("/emails/{email_id}", response_class=HTMLResponse)
def email_page(request: Request, email_id: uuid.UUID, actor: PageActor, sessions: Sessions) -> HTMLResponse:
    with session_scope(sessions) as session:
        email = repository.get_email(session, actor, email_id)
        companies, contacts = repository.links_of(session, email)
        company_rows = [workspace_service.get_company(session, actor, company_id) for company_id in companies]
        named = receive_repository.companies_by_id(session, actor, wording.company_ids(email.decision or {}))
        rule, reason, participants = wording.explanation_words(
            email.decision or {}, {company_id: company.name for company_id, company in named.items()}
        )
        return render(
            request,
            "email.html",
            actor,
            {
                "email": email,
                "companies": company_rows,
                "contacts": contacts,
                "explanation": {"rule": rule, "reason": reason, "participants": participants},
                "shown": _sent_engagement(request, session, actor, [email.id]).get(email.id),
            },
        )
