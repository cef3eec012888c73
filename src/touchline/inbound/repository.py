"""Queries over stored mail, always inside the caller's workspace."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from touchline.kit.errors import NotFoundError
from touchline.kit.pagination import Page, PageRequest
from touchline.models import Contact, Conversation, Email, EmailCompany, EmailContact
from touchline.workspace.permissions import Actor, Permission


@dataclass(frozen=True)
class EmailFilter:
    company_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    unassigned: bool | None = None
    source: str | None = None


def list_emails(session: Session, actor: Actor, filters: EmailFilter, request: PageRequest) -> Page[Email]:
    actor.require(Permission.VIEW_CUSTOMERS)
    query = select(Email).where(Email.workspace_id == actor.workspace_id)
    if filters.company_id:
        query = query.where(
            Email.id.in_(select(EmailCompany.email_id).where(EmailCompany.company_id == filters.company_id))
        )
    if filters.contact_id:
        query = query.where(
            Email.id.in_(select(EmailContact.email_id).where(EmailContact.contact_id == filters.contact_id))
        )
    if filters.unassigned is not None:
        query = query.where(Email.unassigned.is_(filters.unassigned))
    if filters.source:
        query = query.where(Email.source == filters.source)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = list(
        session.scalars(
            query.order_by(Email.sent_at.desc().nulls_last(), Email.id)
            .limit(request.limit)
            .offset(request.offset)
        )
    )
    return Page(items=items, total=total, limit=request.limit, offset=request.offset)


def get_email(session: Session, actor: Actor, email_id: uuid.UUID) -> Email:
    actor.require(Permission.VIEW_CUSTOMERS)
    email = session.scalar(
        select(Email).where(Email.id == email_id, Email.workspace_id == actor.workspace_id)
    )
    if email is None:
        raise NotFoundError("email not found")
    return email


def get_conversation(
    session: Session, actor: Actor, conversation_id: uuid.UUID
) -> tuple[Conversation, list[Email]]:
    """A conversation of this workspace with its emails, oldest first."""
    actor.require(Permission.VIEW_CUSTOMERS)
    conversation = session.scalar(
        select(Conversation).where(
            Conversation.id == conversation_id, Conversation.workspace_id == actor.workspace_id
        )
    )
    if conversation is None:
        raise NotFoundError("conversation not found")
    emails = session.scalars(
        select(Email)
        .where(Email.workspace_id == actor.workspace_id, Email.conversation_id == conversation.id)
        .order_by(Email.sent_at.asc().nulls_first(), Email.id)
    )
    return conversation, list(emails)


def links_of(session: Session, email: Email) -> tuple[list[uuid.UUID], list[str]]:
    companies = list(
        session.scalars(select(EmailCompany.company_id).where(EmailCompany.email_id == email.id))
    )
    contacts = list(
        session.scalars(
            select(Contact.email)
            .join(EmailContact, EmailContact.contact_id == Contact.id)
            .where(EmailContact.email_id == email.id)
        )
    )
    return companies, sorted(contacts)
