"""Store a kept (or logged) email: once per workspace, with holders, links, conversation and Last Touch.

Takes a session and never commits; the caller commits the batch together with its sync checkpoint,
so a crash either stores a batch and its checkpoint or neither.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from touchline.inbound.directory import Directory
from touchline.inbound.match import Decision
from touchline.inbound.parse import ParsedEmail
from touchline.inbound.quotes import html_to_text
from touchline.inbound.quotes import snippet as make_snippet
from touchline.inbound.store.conversations import assign_conversation
from touchline.kit.html import sanitise_html
from touchline.models import (
    Company,
    Contact,
    Email,
    EmailCompany,
    EmailContact,
    EmailHolder,
    QuarantinedMessage,
)

MAX_BODY_CHARS = 1_000_000


@dataclass(frozen=True)
class Holding:
    """Who holds this copy and where: a synced folder, the log address, or an import."""

    user_id: uuid.UUID
    via: str  # sync | log | import
    folder_id: uuid.UUID | None = None
    folder_name: str = ""
    provider_message_id: str | None = None
    provider_thread_id: str | None = None
    provider: str = "imap"


@dataclass(frozen=True)
class Stored:
    email_id: uuid.UUID
    created: bool
    created_contacts: tuple[str, ...]


def remember_new_contacts(directory: Directory, decision: Decision, stored: Stored) -> None:
    """Tell a cached directory about the contacts `store_email` just created, so the rest of the batch
    matches them as contacts without reloading the directory."""
    companies = {new.email: new.company for new in decision.created_contacts}
    for address in stored.created_contacts:
        directory.add_contact(address, companies.get(address))


def _storable(text: str) -> str:
    """PostgreSQL text cannot hold NUL characters; mail sometimes carries them, meaning nothing."""
    return text.replace("\x00", "")


# A snippet shows the start of the newest reply; reading further only feeds the quote heuristics'
# regular expressions text whose result is cut away.
SNIPPET_SOURCE_CHARS = 4000


def _snippet(parsed: ParsedEmail) -> str:
    sender = parsed.from_[0].address if parsed.from_ else None
    if parsed.text_body:
        return _storable(make_snippet(parsed.text_body[:SNIPPET_SOURCE_CHARS], sender=sender))
    if parsed.html_body:
        text = html_to_text(parsed.html_body[: SNIPPET_SOURCE_CHARS * 4])
        return _storable(make_snippet(text[:SNIPPET_SOURCE_CHARS], sender=sender))
    return ""


def _timeline_moment(parsed: ParsedEmail) -> datetime:
    """When the email happened, for Last Touch: its Date, but never in the future."""
    now = datetime.now(UTC)
    if parsed.date is None:
        return now
    return min(parsed.date.astimezone(UTC), now)


def _decision_record(decision: Decision) -> dict[str, object]:
    return {
        "action": decision.action,
        "rule": decision.rule,
        "reason": decision.reason,
        "matches": [
            {
                "address": match.address,
                "roles": list(match.roles),
                "outcome": match.outcome,
                "company": match.company,
                "detail": match.detail,
                "created": match.created,
            }
            for match in decision.matches
        ],
    }


def _existing_company_ids(session: Session, workspace_id: uuid.UUID, ids: Iterable[str]) -> set[uuid.UUID]:
    wanted = {uuid.UUID(value) for value in ids}
    if not wanted:
        return set()
    return set(
        session.scalars(
            select(Company.id).where(Company.workspace_id == workspace_id, Company.id.in_(wanted))
        )
    )


def _ensure_contacts(
    session: Session, workspace_id: uuid.UUID, decision: Decision
) -> tuple[list[Contact], list[str]]:
    """The decision's contacts as rows, creating the new ones (rule 5); returns rows and created addresses."""
    addresses = set(decision.contacts) | {new.email for new in decision.created_contacts}
    rows = {
        contact.email: contact
        for contact in session.scalars(
            select(Contact).where(Contact.workspace_id == workspace_id, Contact.email.in_(addresses))
        )
    }
    created: list[str] = []
    live_companies = _existing_company_ids(
        session, workspace_id, [n.company for n in decision.created_contacts]
    )
    for new in decision.created_contacts:
        if new.email in rows:
            continue
        company_id = uuid.UUID(new.company)
        contact = Contact(
            workspace_id=workspace_id,
            email=new.email,
            name=new.name,
            company_id=company_id if company_id in live_companies else None,
            custom_fields={},
        )
        try:
            with session.begin_nested():
                session.add(contact)
        except IntegrityError:
            # Another worker created the same contact a moment ago: use theirs.
            contact = session.scalars(
                select(Contact).where(Contact.workspace_id == workspace_id, Contact.email == new.email)
            ).one()
        else:
            created.append(new.email)
        rows[new.email] = contact
    return list(rows.values()), created


def _link(
    session: Session,
    email: Email,
    company_ids: set[uuid.UUID],
    contacts: list[Contact],
    moment: datetime,
    *,
    new_email: bool,
) -> None:
    known_companies: set[uuid.UUID] = set()
    known_contacts: set[uuid.UUID] = set()
    if not new_email:
        known_companies = set(
            session.scalars(select(EmailCompany.company_id).where(EmailCompany.email_id == email.id))
        )
        known_contacts = set(
            session.scalars(select(EmailContact.contact_id).where(EmailContact.email_id == email.id))
        )
    for company_id in company_ids - known_companies:
        session.add(EmailCompany(email_id=email.id, company_id=company_id))
    for contact in contacts:
        if contact.id not in known_contacts:
            session.add(EmailContact(email_id=email.id, contact_id=contact.id))
    touch_last(session, company_ids, contacts, moment)


def touch_last(
    session: Session, company_ids: set[uuid.UUID], contacts: list[Contact], moment: datetime
) -> None:
    """Move Last Touch forward (never back) for the companies and contacts an email is linked to.

    One UPDATE per table, compared in the database: no rows are loaded, and two workers storing
    mail of the same company at once cannot move it backwards.
    """
    contact_ids = {contact.id for contact in contacts}
    for model, ids in ((Company, company_ids), (Contact, contact_ids)):
        if ids:
            session.execute(
                update(model)
                .where(model.id.in_(ids), or_(model.last_touch_at.is_(None), model.last_touch_at < moment))
                .values(last_touch_at=moment)
                .execution_options(synchronize_session=False)
            )


def _add_holder(session: Session, email: Email, workspace_id: uuid.UUID, holding: Holding) -> None:
    for holder in email.holders:
        if (
            holder.user_id == holding.user_id
            and holder.folder_id == holding.folder_id
            and holder.via == holding.via
        ):
            if holding.provider_message_id and holder.provider_message_id != holding.provider_message_id:
                holder.provider_message_id = holding.provider_message_id
            return
    email.holders.append(
        EmailHolder(
            workspace_id=workspace_id,
            user_id=holding.user_id,
            via=holding.via,
            folder_id=holding.folder_id,
            folder_name=holding.folder_name,
            provider_message_id=holding.provider_message_id,
        )
    )


def store_email(
    session: Session,
    workspace_id: uuid.UUID,
    parsed: ParsedEmail,
    decision: Decision,
    holding: Holding,
    *,
    suggested_company_ids: Iterable[str] = (),
) -> Stored:
    """Store `parsed` as `decision` says (keep, or unassigned for the log address) for `holding`."""
    if decision.action not in {"keep", "unassigned"}:
        raise ValueError(f"only kept or logged mail is stored, not {decision.action!r}")
    # Nothing read here depends on this email's own pending rows, so one flush at the end replaces the
    # dozen that autoflush would issue before each query.
    with session.no_autoflush:
        return _store(session, workspace_id, parsed, decision, holding, suggested_company_ids)


def _store(
    session: Session,
    workspace_id: uuid.UUID,
    parsed: ParsedEmail,
    decision: Decision,
    holding: Holding,
    suggested_company_ids: Iterable[str],
) -> Stored:
    logged = holding.via == "log"
    moment = _timeline_moment(parsed)
    existing = session.scalars(
        select(Email).where(Email.workspace_id == workspace_id, Email.dedup_key == parsed.dedup_key)
    ).one_or_none()
    contacts, created = _ensure_contacts(session, workspace_id, decision)
    company_ids = _existing_company_ids(session, workspace_id, decision.companies)
    company_ids |= {contact.company_id for contact in contacts if contact.company_id is not None}

    if existing is None:
        email = Email(
            workspace_id=workspace_id,
            dedup_key=parsed.dedup_key[:998],
            message_id=parsed.message_id[:998] if parsed.message_id else None,
            subject=_storable(parsed.subject),
            sent_at=parsed.date,
            from_address=parsed.sender,
            from_name=_storable(parsed.from_[0].name[:500]) if parsed.from_ else "",
            to_addresses=[a.address for a in parsed.to],
            cc_addresses=[a.address for a in parsed.cc],
            in_reply_to=list(parsed.in_reply_to),
            references=list(parsed.references),
            snippet=_snippet(parsed),
            text_body=_storable(parsed.text_body[:MAX_BODY_CHARS]) if parsed.text_body else None,
            html_body=_storable(sanitise_html(parsed.html_body[:MAX_BODY_CHARS]))
            if parsed.html_body
            else None,
            attachments=[
                {"filename": a.filename, "content_type": a.content_type, "size": a.size, "inline": a.inline}
                for a in parsed.attachments
            ],
            defects=list(parsed.defects),
            provider_thread_id=holding.provider_thread_id,
            source=holding.via,
            logged=logged,
            unassigned=logged and not company_ids and not contacts,
            suggested_company_ids=list(suggested_company_ids),
            decision=_decision_record(decision),
            holders=[],
        )
        try:
            with session.begin_nested():
                session.add(email)
        except IntegrityError:
            # The same email was stored by another worker between our look-up and our insert.
            existing = session.scalars(
                select(Email).where(Email.workspace_id == workspace_id, Email.dedup_key == parsed.dedup_key)
            ).one()
        else:
            # Logged mail is "not shown in chains" (SPEC §4); synced and imported mail is threaded.
            if not logged:
                email.conversation_id = assign_conversation(
                    session,
                    workspace_id,
                    parsed,
                    provider_thread_id=holding.provider_thread_id,
                    provider=holding.provider,
                    sent_at=parsed.date,
                )
            _add_holder(session, email, workspace_id, holding)
            _link(session, email, company_ids, contacts, moment, new_email=True)
            session.flush()
            return Stored(email.id, True, tuple(created))

    if logged:
        existing.logged = True
    if existing.unassigned and (company_ids or contacts):
        existing.unassigned = False
    _add_holder(session, existing, workspace_id, holding)
    _link(session, existing, company_ids, contacts, moment, new_email=False)
    session.flush()
    return Stored(existing.id, False, tuple(created))


def quarantine(
    session: Session,
    workspace_id: uuid.UUID,
    *,
    source: str,
    reason: str,
    mailbox_id: uuid.UUID | None = None,
    provider_message_id: str | None = None,
    raw: bytes = b"",
) -> None:
    """Keep a message that could not be processed, with why, so an admin can see it; sync goes on."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0][:4000]
    session.add(
        QuarantinedMessage(
            workspace_id=workspace_id,
            mailbox_id=mailbox_id,
            source=source,
            reason=reason[:4000],
            provider_message_id=provider_message_id,
            headers_excerpt=head.decode("utf-8", "replace"),
        )
    )
