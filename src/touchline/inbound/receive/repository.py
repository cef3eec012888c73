"""Queries for the unassigned list and the log address's refusals, always inside the caller's workspace."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from touchline.inbound import repository as emails
from touchline.kit.errors import NotFoundError
from touchline.kit.pagination import Page, PageRequest
from touchline.models import Company, Email
from touchline.models.inbound import InboundRefusal
from touchline.workspace.permissions import Actor, Permission


def list_unassigned(session: Session, actor: Actor, request: PageRequest) -> Page[Email]:
    return emails.list_emails(session, actor, emails.EmailFilter(unassigned=True), request)


def get_unassigned(session: Session, actor: Actor, email_id: uuid.UUID) -> Email:
    """An unassigned email of the actor's workspace; one assigned meanwhile is no longer "unassigned"."""
    email = emails.get_email(session, actor, email_id)
    if not email.unassigned:
        raise NotFoundError("this email is not on the unassigned list (it was assigned or dismissed)")
    return email


def companies_by_id(session: Session, actor: Actor, ids: Iterable[str]) -> dict[str, Company]:
    """The existing companies among `ids` (suggestions may name companies deleted since)."""
    wanted: set[uuid.UUID] = set()
    for value in ids:
        try:
            wanted.add(uuid.UUID(str(value)))
        except ValueError:
            continue
    if not wanted:
        return {}
    rows = session.scalars(
        select(Company).where(Company.workspace_id == actor.workspace_id, Company.id.in_(wanted))
    )
    return {str(company.id): company for company in rows}


def suggestions_of(email: Email, companies: dict[str, Company]) -> list[Company]:
    return [companies[value] for value in email.suggested_company_ids if value in companies]


def list_refusals(session: Session, actor: Actor, request: PageRequest) -> Page[InboundRefusal]:
    actor.require(Permission.ADMIN_ACCESS)
    query = select(InboundRefusal).where(InboundRefusal.workspace_id == actor.workspace_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = list(
        session.scalars(
            query.order_by(InboundRefusal.created_at.desc(), InboundRefusal.id)
            .limit(request.limit)
            .offset(request.offset)
        )
    )
    return Page(items=items, total=total, limit=request.limit, offset=request.offset)
