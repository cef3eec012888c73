"""JSON API for stored emails, their explanations, and company and contact timelines. Thin."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from touchline.db import session_scope
from touchline.inbound import repository, timeline
from touchline.inbound.schemas import (
    ConversationOut,
    EmailDetailOut,
    EmailOut,
    ExplanationOut,
    TimelineOut,
    explanation_of,
)
from touchline.kit.pagination import MAX_OFFSET, Page, PageRequest
from touchline.workspace import service as workspace_service
from touchline.workspace.auth import ApiActor, Sessions
from touchline.workspace.schemas import PageOut

router = APIRouter(prefix="/api/v1", tags=["emails"])

Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]


@router.get("/emails", summary="Stored emails, newest first")
def list_emails(
    actor: ApiActor,
    sessions: Sessions,
    company_id: uuid.UUID | None = None,
    contact_id: uuid.UUID | None = None,
    unassigned: bool | None = None,
    source: Annotated[str | None, Query(pattern="^(sync|log|import)$")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> PageOut[EmailOut]:
    with session_scope(sessions) as session:
        page = repository.list_emails(
            session,
            actor,
            repository.EmailFilter(company_id, contact_id, unassigned, source),
            PageRequest(limit, offset),
        )
        return PageOut(
            items=[EmailOut.of(e) for e in page.items], total=page.total, limit=limit, offset=offset
        )


@router.get("/emails/{email_id}", summary="One email with its body (sanitised HTML) and why it was kept")
def read_email(email_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> EmailDetailOut:
    with session_scope(sessions) as session:
        email = repository.get_email(session, actor, email_id)
        companies, contacts = repository.links_of(session, email)
        return EmailDetailOut(
            **EmailOut.of(email).model_dump(),
            text_body=email.text_body,
            html_body=email.html_body,
            attachments=list(email.attachments),
            companies=companies,
            contacts=contacts,
            explanation=explanation_of(email),
        )


@router.get(
    "/emails/{email_id}/explanation", summary="Which rule kept this email, and which participant matched"
)
def explain_email(email_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> ExplanationOut:
    with session_scope(sessions) as session:
        return explanation_of(repository.get_email(session, actor, email_id))


def _timeline_out(page: Page[timeline.TimelineEntry]) -> TimelineOut:
    return TimelineOut(
        items=[
            ConversationOut(
                conversation_id=entry.conversation_id,
                subject=entry.subject,
                last_at=entry.last_at,
                emails=[EmailOut.of(email) for email in entry.emails],
            )
            for entry in page.items
        ],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/companies/{company_id}/timeline", summary="A company's conversations, newest first")
def company_timeline(
    company_id: uuid.UUID, actor: ApiActor, sessions: Sessions, limit: Limit = 20, offset: Offset = 0
) -> TimelineOut:
    with session_scope(sessions) as session:
        company = workspace_service.get_company(session, actor, company_id)
        return _timeline_out(
            timeline.company_timeline(session, actor.workspace_id, company.id, PageRequest(limit, offset))
        )


@router.get("/contacts/{contact_id}/timeline", summary="A contact's conversations, newest first")
def contact_timeline(
    contact_id: uuid.UUID, actor: ApiActor, sessions: Sessions, limit: Limit = 20, offset: Offset = 0
) -> TimelineOut:
    with session_scope(sessions) as session:
        contact = workspace_service.get_contact(session, actor, contact_id)
        return _timeline_out(
            timeline.contact_timeline(session, actor.workspace_id, contact.id, PageRequest(limit, offset))
        )
