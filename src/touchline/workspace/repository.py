"""List queries with filters and pagination, always inside the caller's workspace."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from touchline.kit.pagination import Page, PageRequest
from touchline.models import Company, CompanyDomain, Contact
from touchline.workspace.permissions import Actor, Permission


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


T = TypeVar("T")


def _page(session: Session, query: Select[T], request: PageRequest) -> Page[T]:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    items = list(session.scalars(query.limit(request.limit).offset(request.offset)).unique())
    return Page(items=items, total=total, limit=request.limit, offset=request.offset)


@dataclass(frozen=True)
class CompanyFilter:
    search: str | None = None
    domain: str | None = None
    account_owner_id: uuid.UUID | None = None


def list_companies(
    session: Session, actor: Actor, filters: CompanyFilter, request: PageRequest
) -> Page[Company]:
    actor.require(Permission.VIEW_CUSTOMERS)
    query = select(Company).where(Company.workspace_id == actor.workspace_id)
    if filters.search:
        matching_domain = select(CompanyDomain.company_id).where(
            CompanyDomain.workspace_id == actor.workspace_id,
            CompanyDomain.domain.like(_like(filters.search), escape="\\"),
        )
        query = query.where(
            or_(
                func.lower(Company.name).like(_like(filters.search), escape="\\"),
                Company.id.in_(matching_domain),
            )
        )
    if filters.domain:
        query = query.where(
            Company.id.in_(
                select(CompanyDomain.company_id).where(
                    CompanyDomain.workspace_id == actor.workspace_id,
                    CompanyDomain.domain == filters.domain.strip().lower(),
                )
            )
        )
    if filters.account_owner_id:
        query = query.where(Company.account_owner_id == filters.account_owner_id)
    return _page(session, query.order_by(func.lower(Company.name), Company.id), request)


@dataclass(frozen=True)
class ContactFilter:
    search: str | None = None
    company_id: uuid.UUID | None = None
    email: str | None = None
    without_company: bool = False


def list_contacts(
    session: Session, actor: Actor, filters: ContactFilter, request: PageRequest
) -> Page[Contact]:
    actor.require(Permission.VIEW_CUSTOMERS)
    query = select(Contact).where(Contact.workspace_id == actor.workspace_id)
    if filters.search:
        pattern = _like(filters.search)
        query = query.where(
            or_(func.lower(Contact.name).like(pattern, escape="\\"), Contact.email.like(pattern, escape="\\"))
        )
    if filters.company_id:
        query = query.where(Contact.company_id == filters.company_id)
    if filters.without_company:
        query = query.where(Contact.company_id.is_(None))
    if filters.email:
        query = query.where(Contact.email == filters.email.strip().lower())
    return _page(session, query.order_by(Contact.email, Contact.id), request)


def count_contacts(session: Session, actor: Actor, company_id: uuid.UUID) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Contact)
            .where(Contact.workspace_id == actor.workspace_id, Contact.company_id == company_id)
        )
        or 0
    )
