"""List queries with filters and pagination, always inside the caller's workspace."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, func, or_, select
from sqlalchemy.orm import Session

from touchline.kit.pagination import Page, PageRequest
from touchline.models import Company, CompanyDomain, Contact, User
from touchline.workspace.permissions import Actor, Permission


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


T = TypeVar("T")


def _page(session: Session, query: Select[T], request: PageRequest) -> Page[T]:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    items = list(session.scalars(query.limit(request.limit).offset(request.offset)).unique())
    return Page(items=items, total=total, limit=request.limit, offset=request.offset)


CompanySort = Literal["name", "domain", "owner", "last_touch"]
ContactSort = Literal["name", "email", "company", "last_touch"]


@dataclass(frozen=True)
class LastTouch:
    """Touched within `days` (`within`), not within them (`stale`), or never (`days` unused)."""

    kind: Literal["within", "stale", "never"]
    days: int = 0

    def condition(self, column: SQLColumnExpression[datetime | None], now: datetime) -> ColumnElement[bool]:
        if self.kind == "never":
            return column.is_(None)
        since = now - timedelta(days=self.days)
        if self.kind == "within":
            return column >= since
        return or_(column.is_(None), column < since)


@dataclass(frozen=True)
class CompanyFilter:
    search: str | None = None
    domain: str | None = None
    account_owner_id: uuid.UUID | None = None
    without_owner: bool = False
    last_touch: LastTouch | None = None
    now: datetime | None = None
    sort: CompanySort = "name"
    descending: bool = False


def _ordered(key: SQLColumnExpression[Any], descending: bool) -> ColumnElement[Any]:
    """Ascending or descending, with empty values last either way."""
    return (key.desc() if descending else key.asc()).nulls_last()


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
    if filters.without_owner:
        query = query.where(Company.account_owner_id.is_(None))
    if filters.last_touch is not None and filters.now is not None:
        query = query.where(filters.last_touch.condition(Company.last_touch_at, filters.now))
    key: SQLColumnExpression[Any]
    if filters.sort == "domain":
        key = (
            select(func.min(CompanyDomain.domain))
            .where(CompanyDomain.company_id == Company.id)
            .scalar_subquery()
        )
    elif filters.sort == "owner":
        owner = (
            select(func.lower(func.coalesce(func.nullif(User.name, ""), User.email)))
            .where(User.id == Company.account_owner_id)
            .scalar_subquery()
        )
        key = owner
    elif filters.sort == "last_touch":
        key = Company.last_touch_at
    else:
        key = func.lower(Company.name)
    order = (_ordered(key, filters.descending), func.lower(Company.name), Company.id)
    return _page(session, query.order_by(*order), request)


@dataclass(frozen=True)
class ContactFilter:
    search: str | None = None
    company_id: uuid.UUID | None = None
    email: str | None = None
    without_company: bool = False
    # The teammate who owns the contact's company.
    owner_id: uuid.UUID | None = None
    last_touch: LastTouch | None = None
    now: datetime | None = None
    sort: ContactSort = "name"
    descending: bool = False


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
    if filters.owner_id:
        owned = select(Company.id).where(
            Company.workspace_id == actor.workspace_id, Company.account_owner_id == filters.owner_id
        )
        query = query.where(Contact.company_id.in_(owned))
    if filters.last_touch is not None and filters.now is not None:
        query = query.where(filters.last_touch.condition(Contact.last_touch_at, filters.now))
    key: SQLColumnExpression[Any]
    if filters.sort == "email":
        key = Contact.email
    elif filters.sort == "company":
        key = select(func.lower(Company.name)).where(Company.id == Contact.company_id).scalar_subquery()
    elif filters.sort == "last_touch":
        key = Contact.last_touch_at
    else:
        # Contacts without a name sort after the named ones, by address.
        key = func.lower(func.nullif(Contact.name, ""))
    order = (_ordered(key, filters.descending), Contact.email, Contact.id)
    return _page(session, query.order_by(*order), request)


def count_contacts(session: Session, actor: Actor, company_id: uuid.UUID) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Contact)
            .where(Contact.workspace_id == actor.workspace_id, Contact.company_id == company_id)
        )
        or 0
    )
