"""Email Engagement: records brought up to date from their events, replies and bounces attributed to
the emails they answer, and the records and events people may read.

Takes a session; may flush, never commits. Notices for senders are sent after the commit.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, select, tuple_
from sqlalchemy.orm import Session

from touchline.inbound.parse.headers import message_ids
from touchline.inbound.reports.model import DeliveryReport
from touchline.kit.errors import InvalidInputError
from touchline.models import (
    Contact,
    Email,
    EmailEngagement,
    EngagementEvent,
    Enrolment,
    Mailbox,
    OutboundEmail,
    TrackedLink,
    User,
)
from touchline.models import (
    Sequence as SequenceRow,
)
from touchline.models.sequences import RUNNING_STATES
from touchline.outbound.engagement import rules
from touchline.outbound.engagement.repository import ensure_record, outcome_of, write_outcome
from touchline.outbound.notify import ENGAGEMENT_JOB as NOTIFY_JOB
from touchline.outbound.send import service as outbox
from touchline.outbound.sequences import service as sequences
from touchline.worker import enqueue
from touchline.workspace.permissions import Actor, Permission

log = logging.getLogger(__name__)

BOUNCE_KINDS = ("hard", "soft", "blocked")


# --- refreshing records ------------------------------------------------------------------------------


def _facts(event: EngagementEvent, urls: dict[uuid.UUID, str | None]) -> rules.Event:
    detail = event.detail or {}
    bounce = detail.get("kind") if event.kind == "bounce" else None
    if event.kind == "click":
        summary = urls.get(event.link_id) or "" if event.link_id else ""
    elif event.kind in ("reply", "auto_reply"):
        summary = str(detail.get("subject", ""))
    elif event.kind == "bounce":
        summary = " ".join(str(part) for part in (bounce, detail.get("status")) if part)
    else:
        summary = ""
    return rules.Event(
        id=str(event.id),
        kind=event.kind,
        occurred_at=event.occurred_at,
        link_id=str(event.link_id) if event.link_id else None,
        machine_reason=event.machine_reason,
        bounce=str(bounce) if bounce else None,
        summary=summary,
    )


@dataclass(frozen=True)
class Notice:
    workspace_id: uuid.UUID
    user_id: uuid.UUID
    body: dict[str, str]


def _notice(row: OutboundEmail, record: EmailEngagement, found: rules.News) -> dict[str, str]:
    return {
        "kind": found.kind,
        "outbound_id": str(row.id),
        "subject": row.subject,
        "recipient": record.recipient_address,
        "at": found.event.occurred_at.isoformat(),
        "detail": found.event.summary,
    }


def refresh(session: Session, outbound_ids: Iterable[uuid.UUID]) -> list[Notice]:
    """Bring the records of these sent emails up to date from all their events: email-level machine
    labels written onto the events, figures recomputed. Idempotent; the notices are what is new."""
    notices: list[Notice] = []
    for outbound_id in sorted(set(outbound_ids)):
        row = session.get(OutboundEmail, outbound_id)
        if row is None or row.sent_at is None:
            continue
        record = ensure_record(session, row, row.sent_at)
        # Two refreshes of one email wait for each other, so news is found once.
        session.refresh(record, with_for_update=True)
        events = list(
            session.scalars(select(EngagementEvent).where(EngagementEvent.outbound_email_id == row.id))
        )
        links = session.execute(
            select(TrackedLink.id, TrackedLink.kind, TrackedLink.url).where(
                TrackedLink.outbound_email_id == row.id
            )
        ).all()
        urls = {link.id: link.url for link in links}
        sent = rules.SentEmail(
            row.sent_at, row.track_opens, row.track_clicks, sum(1 for link in links if link.kind == "click")
        )
        facts = rules.labelled(sent, [_facts(event, urls) for event in events])
        reasons = {fact.id: fact.machine_reason for fact in facts}
        for event in events:
            if event.machine_reason is None and reasons[str(event.id)] is not None:
                event.machine_reason = reasons[str(event.id)]
        before = outcome_of(record)
        after = rules.outcome(sent, facts)
        write_outcome(record, after)
        if row.sender_user_id is not None:
            notices.extend(
                Notice(row.workspace_id, row.sender_user_id, _notice(row, record, found))
                for found in rules.news(before, after, facts)
            )
    session.flush()
    return notices


def tell_senders(session: Session, notices: Sequence[Notice]) -> None:
    """One notification job per sender, sent when the session commits."""
    grouped: dict[tuple[uuid.UUID, uuid.UUID], list[dict[str, str]]] = defaultdict(list)
    for notice in notices:
        grouped[(notice.workspace_id, notice.user_id)].append(notice.body)
    for (workspace_id, user_id), bodies in grouped.items():
        enqueue(session, NOTIFY_JOB, workspace_id=str(workspace_id), user_id=str(user_id), notices=bodies)


def refresh_and_tell(session: Session, outbound_ids: Iterable[uuid.UUID]) -> None:
    tell_senders(session, refresh(session, outbound_ids))


# --- replies -----------------------------------------------------------------------------------------


def _bracketed(ids: Iterable[str]) -> list[str]:
    return [f"<{one}>" for one in ids]


def _sent_by_message_id(
    session: Session, workspace_id: uuid.UUID, ids: Sequence[str]
) -> dict[str, OutboundEmail]:
    """The sent emails these (bracketless) Message-IDs name, by id."""
    if not ids:
        return {}
    rows = session.scalars(
        select(OutboundEmail).where(
            OutboundEmail.workspace_id == workspace_id,
            OutboundEmail.message_id.in_(_bracketed(ids)),
            OutboundEmail.sent_at.is_not(None),
        )
    )
    return {message_ids(row.message_id)[0]: row for row in rows if message_ids(row.message_id)}


def answered_email(session: Session, email: Email) -> OutboundEmail | None:
    """The sent email a stored email answers: the one its In-Reply-To names, else the nearest (last
    listed) one of its References that touchline sent."""
    named = [*email.in_reply_to, *email.references]
    sent = _sent_by_message_id(session, email.workspace_id, named)
    for one in email.in_reply_to:
        if one in sent:
            return sent[one]
    for one in reversed(email.references):
        if one in sent:
            return sent[one]
    return None


def _internal_addresses(session: Session, workspace_id: uuid.UUID) -> set[str]:
    users = session.scalars(select(func.lower(User.email)).where(User.workspace_id == workspace_id))
    mailboxes = session.scalars(
        select(func.lower(Mailbox.address)).where(Mailbox.workspace_id == workspace_id)
    )
    return {*users, *mailboxes}


def _end_enrolment_on_reply(
    session: Session, row: OutboundEmail, contact_id: uuid.UUID, now: datetime
) -> None:
    if row.sequence_id is None:
        return
    enrolment = session.scalar(
        select(Enrolment).where(
            Enrolment.sequence_id == row.sequence_id,
            Enrolment.contact_id == contact_id,
            Enrolment.state.in_(RUNNING_STATES),
        )
    )
    sequence = session.get(SequenceRow, row.sequence_id)
    if enrolment is None or sequence is None or not sequence.exit_on_reply:
        return
    sequences.end_on_reply(session, enrolment, now=now)


def record_replies(
    session: Session, workspace_id: uuid.UUID, email_ids: Iterable[uuid.UUID], now: datetime
) -> list[uuid.UUID]:
    """Replies and automatic replies among newly stored emails, each recorded on the sent email it
    answers; a reply ends the sequence enrolment of the enduser the email was sent to. Returns the
    sent emails whose records need a refresh."""
    emails = list(
        session.scalars(
            select(Email).where(Email.workspace_id == workspace_id, Email.id.in_(list(email_ids)))
        )
    )
    if not emails:
        return []
    internal = _internal_addresses(session, workspace_id)
    touched = []
    for email in emails:
        sender = (email.from_address or "").lower()
        if not sender or sender in internal:
            continue
        contact = session.scalar(
            select(Contact).where(Contact.workspace_id == workspace_id, func.lower(Contact.email) == sender)
        )
        if contact is None:
            continue
        answered = answered_email(session, email)
        if answered is None:
            continue
        already = session.scalar(
            select(EngagementEvent.id).where(
                EngagementEvent.outbound_email_id == answered.id, EngagementEvent.email_id == email.id
            )
        )
        if already is not None:
            continue
        kind = "auto_reply" if email.automatic else "reply"
        detail = {"subject": email.subject, "from": sender}
        if email.automatic:
            detail["automatic"] = email.automatic
        session.add(
            EngagementEvent(
                workspace_id=workspace_id,
                outbound_email_id=answered.id,
                kind=kind,
                occurred_at=email.sent_at or now,
                email_id=email.id,
                contact_id=contact.id,
                detail=detail,
            )
        )
        if kind == "reply":
            # Credited to the first enduser in To: their enrolment ends, whoever replied.
            credited = ensure_record(session, answered, answered.sent_at or now).contact_id
            _end_enrolment_on_reply(session, answered, credited or contact.id, now)
        touched.append(answered.id)
    session.flush()
    return touched


# --- bounces -----------------------------------------------------------------------------------------


def hard_bounce_reason(status: str, diagnostic: str) -> str:
    return f"hard bounce {status or 'without status'}: {diagnostic or 'no diagnostic given'}"[:2000]


def record_bounce(
    session: Session, workspace_id: uuid.UUID, report: DeliveryReport, now: datetime
) -> uuid.UUID | None:
    """One bounce event per failed or delayed recipient of the sent email the report returns; a
    hard bounce marks that address's contact undeliverable. Never creates contacts. Returns the sent
    email, or None when the report names none of this workspace's."""
    ids = [one for value in report.returned_message_ids for one in message_ids(value)]
    found = _sent_by_message_id(session, workspace_id, ids)
    row = next((found[one] for one in ids if one in found), None)
    if row is None:
        log.info("a delivery report names no email sent from workspace %s: %s", workspace_id, ids)
        return None
    at = report.received_at or now
    existing = {
        (event.detail.get("address"), event.detail.get("kind"), event.detail.get("status"))
        for event in session.scalars(
            select(EngagementEvent).where(
                EngagementEvent.outbound_email_id == row.id, EngagementEvent.kind == "bounce"
            )
        )
    }
    for recipient in report.recipients:
        address = recipient.address.strip().lower()
        if (address, recipient.kind, recipient.status) in existing:
            continue
        contact = session.scalar(
            select(Contact).where(Contact.workspace_id == workspace_id, func.lower(Contact.email) == address)
        )
        session.add(
            EngagementEvent(
                workspace_id=workspace_id,
                outbound_email_id=row.id,
                kind="bounce",
                occurred_at=at,
                contact_id=contact.id if contact is not None else None,
                detail={
                    "kind": recipient.kind,
                    "status": recipient.status,
                    "diagnostic": recipient.diagnostic[:2000],
                    "address": address,
                    "action": recipient.action,
                },
            )
        )
        if recipient.kind == "hard" and contact is not None and contact.undeliverable_at is None:
            contact.undeliverable_at = at
            contact.undeliverable_reason = hard_bounce_reason(recipient.status, recipient.diagnostic)
    session.flush()
    return row.id


# --- reading -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngagementFilter:
    sender: uuid.UUID | None = None
    template: uuid.UUID | None = None
    sequence: uuid.UUID | None = None
    step: int | None = None
    bulk_id: uuid.UUID | None = None
    variant: str | None = None
    bounce: str | None = None
    sent_after: datetime | None = None
    sent_before: datetime | None = None


def visible_records(actor: Actor) -> list[ColumnElement[bool]]:
    """The outbox's rule: members see the records of their own emails, admins every one."""
    conditions: list[ColumnElement[bool]] = [EmailEngagement.workspace_id == actor.workspace_id]
    if not actor.can(Permission.ADMIN_ACCESS):
        conditions.append(EmailEngagement.created_by == actor.user_id)
    return conditions


def filtered(given: EngagementFilter) -> list[ColumnElement[bool]]:
    """The conditions on records that the filter's fields set (visibility is `visible_records`)."""
    if given.bounce is not None and given.bounce not in BOUNCE_KINDS:
        raise InvalidInputError(f"bounce is one of {', '.join(BOUNCE_KINDS)}")
    conditions: list[ColumnElement[bool]] = []
    equal: list[tuple[object, Any]] = [
        (given.sender, EmailEngagement.sender_user_id),
        (given.template, EmailEngagement.template_id),
        (given.sequence, EmailEngagement.sequence_id),
        (given.step, EmailEngagement.sequence_step),
        (given.bulk_id, EmailEngagement.bulk_id),
        (given.variant, EmailEngagement.variant),
        (given.bounce, EmailEngagement.bounce),
    ]
    conditions.extend(column == value for value, column in equal if value is not None)
    if given.sent_after is not None:
        conditions.append(EmailEngagement.sent_at >= given.sent_after)
    if given.sent_before is not None:
        conditions.append(EmailEngagement.sent_at < given.sent_before)
    return conditions


def list_engagements(
    session: Session,
    actor: Actor,
    given: EngagementFilter = EngagementFilter(),
    *,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 100,
) -> list[tuple[EmailEngagement, OutboundEmail, int]]:
    """Records newest first, with their email and event count, after the cursor `after` (the
    sent_at and id of the last one of the previous page)."""
    actor.require(Permission.SEND_EMAIL)
    conditions = [*visible_records(actor), *filtered(given)]
    if after is not None:
        conditions.append(tuple_(EmailEngagement.sent_at, EmailEngagement.id) < tuple_(*after))
    events = (
        select(func.count(EngagementEvent.id))
        .where(EngagementEvent.outbound_email_id == EmailEngagement.outbound_email_id)
        .scalar_subquery()
    )
    rows = session.execute(
        select(EmailEngagement, OutboundEmail, events)
        .join(OutboundEmail, OutboundEmail.id == EmailEngagement.outbound_email_id)
        .where(*conditions)
        .order_by(EmailEngagement.sent_at.desc(), EmailEngagement.id.desc())
        .limit(limit)
    ).all()
    return [(record, row, int(count)) for record, row, count in rows]


def events_of(
    session: Session, actor: Actor, outbound_id: uuid.UUID
) -> list[tuple[EngagementEvent, str | None]]:
    """Every event of one sent email the actor may see, oldest first, with the URL of a click."""
    actor.require(Permission.SEND_EMAIL)
    row = outbox.get_outbound(session, actor, outbound_id)
    rows = session.execute(
        select(EngagementEvent, TrackedLink.url)
        .outerjoin(TrackedLink, TrackedLink.id == EngagementEvent.link_id)
        .where(
            EngagementEvent.outbound_email_id == row.id, EngagementEvent.workspace_id == actor.workspace_id
        )
        .order_by(EngagementEvent.occurred_at, EngagementEvent.id)
    ).all()
    return [(event, url if event.kind == "click" else None) for event, url in rows]


@dataclass(frozen=True)
class Shown:
    """What pages show of one sent email's engagement: its record and every event, oldest first,
    each with the URL of a click."""

    record: EmailEngagement
    events: list[tuple[EngagementEvent, str | None]]


def shown_engagements(
    session: Session, actor: Actor, outbound_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Shown]:
    """The records and events of these sent emails that the actor may see (the API's rule), by
    outbound email id; none for someone who may not send email."""
    wanted = list(set(outbound_ids))
    if not wanted or not actor.can(Permission.SEND_EMAIL):
        return {}
    records = {
        record.outbound_email_id: record
        for record in session.scalars(
            select(EmailEngagement).where(
                *visible_records(actor), EmailEngagement.outbound_email_id.in_(wanted)
            )
        )
    }
    events: dict[uuid.UUID, list[tuple[EngagementEvent, str | None]]] = defaultdict(list)
    if records:
        rows = session.execute(
            select(EngagementEvent, TrackedLink.url)
            .outerjoin(TrackedLink, TrackedLink.id == EngagementEvent.link_id)
            .where(
                EngagementEvent.workspace_id == actor.workspace_id,
                EngagementEvent.outbound_email_id.in_(list(records)),
            )
            .order_by(EngagementEvent.occurred_at, EngagementEvent.id)
        ).all()
        for event, url in rows:
            events[event.outbound_email_id].append((event, url if event.kind == "click" else None))
    return {outbound_id: Shown(record, events[outbound_id]) for outbound_id, record in records.items()}


def shown_for_sent_copies(
    session: Session, actor: Actor, email_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Shown]:
    """The same, by the id of the stored sent copy (an Email) of each outbound email, as timelines
    and the email page list them."""
    wanted = list(set(email_ids))
    if not wanted:
        return {}
    copies: dict[uuid.UUID, uuid.UUID] = {}
    for outbound_id, email_id in session.execute(
        select(OutboundEmail.id, OutboundEmail.email_id).where(
            OutboundEmail.workspace_id == actor.workspace_id, OutboundEmail.email_id.in_(wanted)
        )
    ).all():
        if email_id is not None:
            copies[outbound_id] = email_id
    shown = shown_engagements(session, actor, copies)
    return {copies[outbound_id]: one for outbound_id, one in shown.items()}


@dataclass(frozen=True)
class StepOutcome:
    """How the emails one step of a sequence sent fared, from their records: how many were opened,
    clicked, replied to and bounced, raw (any event) and, for opens and clicks, by a person."""

    step: int
    sent: int
    opened: int
    human_opened: int
    clicked: int
    human_clicked: int
    replied: int
    bounced: int


def step_outcomes(session: Session, actor: Actor, sequence_id: uuid.UUID) -> list[StepOutcome]:
    """Per step of a sequence, the outcomes of the sent emails whose records the actor may see."""
    if not actor.can(Permission.SEND_EMAIL):
        return []

    def reached(condition: ColumnElement[bool]) -> Any:
        return func.count(case((condition, 1)))

    rows = session.execute(
        select(
            EmailEngagement.sequence_step,
            func.count(EmailEngagement.id),
            reached(EmailEngagement.open_rate == 100),
            reached(EmailEngagement.human_open_rate == 100),
            reached(EmailEngagement.click_rate == 100),
            reached(EmailEngagement.human_click_rate == 100),
            reached(EmailEngagement.reply_rate == 100),
            reached(EmailEngagement.bounce.is_not(None)),
        )
        .where(*visible_records(actor), EmailEngagement.sequence_id == sequence_id)
        .group_by(EmailEngagement.sequence_step)
        .order_by(EmailEngagement.sequence_step)
    ).all()
    return [StepOutcome(*(int(value) for value in row)) for row in rows if row[0] is not None]
