"""Reading stored mail: the operator's list, and threaded timelines of companies and contacts."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session

from touchline.kit.pagination import Page, PageRequest
from touchline.models import (
    Company,
    Contact,
    Conversation,
    Email,
    EmailCompany,
    EmailContact,
    EmailHolder,
    User,
)


def email_records(session: Session, workspace_id: uuid.UUID) -> list[dict[str, Any]]:
    """One plain record per stored email, newest first (`touchline emails list --json`)."""
    emails = list(
        session.scalars(
            select(Email).where(Email.workspace_id == workspace_id).order_by(Email.sent_at.desc(), Email.id)
        )
    )
    ids = [email.id for email in emails]
    companies: dict[uuid.UUID, list[str]] = defaultdict(list)
    contacts: dict[uuid.UUID, list[str]] = defaultdict(list)
    if ids:
        for email_id, company_id in session.execute(
            select(EmailCompany.email_id, EmailCompany.company_id).where(EmailCompany.email_id.in_(ids))
        ):
            companies[email_id].append(str(company_id))
        for email_id, address in session.execute(
            select(EmailContact.email_id, Contact.email)
            .join(Contact, Contact.id == EmailContact.contact_id)
            .where(EmailContact.email_id.in_(ids))
        ):
            contacts[email_id].append(address)
    return [
        {
            "id": str(email.id),
            "message_id": email.message_id,
            "subject": email.subject,
            "date": email.sent_at.isoformat() if email.sent_at else None,
            "from": email.from_address,
            "companies": sorted(companies[email.id]),
            "contacts": sorted(contacts[email.id]),
            "holders": sorted({holder.user.email for holder in email.holders}),
            "folders": sorted({holder.folder_name for holder in email.holders if holder.folder_name}),
            "conversation_id": str(email.conversation_id) if email.conversation_id else None,
            "source": email.source,
            "logged": email.logged,
            "unassigned": email.unassigned,
            "rule": email.decision.get("rule"),
            "reason": email.decision.get("reason"),
        }
        for email in emails
    ]


@dataclass(frozen=True)
class TimelineEntry:
    """A conversation (its emails oldest first) or a single logged email, as a timeline shows it."""

    conversation_id: uuid.UUID | None
    subject: str
    last_at: datetime | None
    emails: list[Email]


def _timeline(
    session: Session, workspace_id: uuid.UUID, email_ids_query: Any, request: PageRequest
) -> Page[TimelineEntry]:
    # A conversation is one entry; logged mail is not threaded, so each logged email is its own entry.
    entry_key = func.coalesce(cast(Email.conversation_id, String), Email.dedup_key)
    grouped = (
        select(entry_key.label("entry"), func.max(Email.sent_at).label("last_at"))
        .where(Email.workspace_id == workspace_id, Email.id.in_(email_ids_query))
        .group_by(entry_key)
        .subquery()
    )
    total = session.scalar(select(func.count()).select_from(grouped)) or 0
    keys = list(
        session.execute(
            select(grouped.c.entry, grouped.c.last_at)
            .order_by(grouped.c.last_at.desc().nulls_last(), grouped.c.entry)
            .limit(request.limit)
            .offset(request.offset)
        )
    )
    entries = []
    for key, last_at in keys:
        emails = list(
            session.scalars(
                select(Email)
                .where(Email.workspace_id == workspace_id, entry_key == key)
                .order_by(Email.sent_at.asc().nulls_first(), Email.id)
            )
        )
        if not emails:
            continue
        conversation_id = emails[0].conversation_id
        subject = emails[0].subject
        if conversation_id is not None:
            conversation = session.get(Conversation, conversation_id)
            subject = conversation.subject if conversation and conversation.subject else subject
        entries.append(TimelineEntry(conversation_id, subject, last_at, emails))
    return Page(items=entries, total=total, limit=request.limit, offset=request.offset)


def company_timeline(
    session: Session, workspace_id: uuid.UUID, company_id: uuid.UUID, request: PageRequest
) -> Page[TimelineEntry]:
    linked = select(EmailCompany.email_id).where(EmailCompany.company_id == company_id)
    return _timeline(session, workspace_id, linked, request)


def contact_timeline(
    session: Session, workspace_id: uuid.UUID, contact_id: uuid.UUID, request: PageRequest
) -> Page[TimelineEntry]:
    linked = select(EmailContact.email_id).where(EmailContact.contact_id == contact_id)
    return _timeline(session, workspace_id, linked, request)


def owner_timeline(
    session: Session, workspace_id: uuid.UUID, owner_id: uuid.UUID, request: PageRequest
) -> Page[TimelineEntry]:
    """The conversations of every company this user is the account owner of, newest first."""
    owned = select(Company.id).where(
        Company.workspace_id == workspace_id, Company.account_owner_id == owner_id
    )
    linked = select(EmailCompany.email_id).where(EmailCompany.company_id.in_(owned))
    return _timeline(session, workspace_id, linked, request)


def holder_emails(session: Session, email: Email) -> list[str]:
    return sorted(
        session.scalars(
            select(User.email)
            .join(EmailHolder, EmailHolder.user_id == User.id)
            .where(EmailHolder.email_id == email.id)
        )
    )
