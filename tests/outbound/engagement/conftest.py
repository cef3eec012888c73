"""Sent emails made as rows (no delivery), their events, and a recording stand-in for the notification
job, for the engagement tests on both databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team
from touchline.config import Settings
from touchline.db import session_scope
from touchline.models import Contact, Email, EngagementEvent, OutboundEmail, OutboundRecipient, TrackedLink
from touchline.outbound.engagement.repository import ensure_record
from touchline.outbound.notify import ENGAGEMENT_JOB as NOTIFY_JOB
from touchline.worker import Queue, configure_queue
from touchline.worker import queue as worker_queue
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor

SENT_AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@dataclass
class Notifications:
    """What the notification job was sent, call by call."""

    calls: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(autouse=True)
def notifications(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Notifications]:
    """The notification job replaced by one that records its calls (every engagement test: a refresh
    may send it); the queue runs jobs as they are sent (after the commit)."""
    recorded = Notifications()

    def record(context: object, **kwargs: Any) -> None:
        recorded.calls.append(kwargs)

    monkeypatch.setitem(worker_queue._REGISTRY, NOTIFY_JOB, worker_queue._JobSpec(NOTIFY_JOB, record, 0, 0))
    queue: Queue = configure_queue(settings, immediate=True)
    yield recorded
    queue.close()


@dataclass(frozen=True)
class Customer:
    contact_id: uuid.UUID
    address: str


def add_contact(
    sessions: sessionmaker[Session], team: Team, address: str, company: str | None = None
) -> Customer:
    with session_scope(sessions) as session:
        operator = Actor.operator(team.workspace_id)
        company_id = None
        if company is not None:
            found = workspace_service.find_company(session, operator, company)
            company_id = (found or workspace_service.create_company(session, operator, company)).id
        contact = workspace_service.create_contact(session, operator, address, company_id=company_id)
        return Customer(contact.id, contact.email)


def sent_email(
    sessions: sessionmaker[Session],
    team: Team,
    to: list[str],
    *,
    sender_id: uuid.UUID | None = None,
    track_opens: bool = True,
    track_clicks: bool = True,
    links: int = 0,
    sent_at: datetime = SENT_AT,
    subject: str = "Your renewal",
    sequence_id: uuid.UUID | None = None,
    sequence_step: int | None = None,
) -> uuid.UUID:
    """A sent outbound email with its record, as the outbox leaves one, and `links` tracked links."""
    sender = sender_id or team.member_id
    with session_scope(sessions) as session:
        contacts = {
            c.email: c
            for c in session.scalars(
                select(Contact).where(Contact.workspace_id == team.workspace_id, Contact.email.in_(to))
            )
        }
        row = OutboundEmail(
            workspace_id=team.workspace_id,
            created_by=sender,
            sender_choice="member@team-a.example",
            sender_user_id=sender,
            from_address="member@team-a.example",
            via="relay",
            subject=subject,
            html_body="<p>hi</p>",
            text_body="hi",
            idempotency_key=uuid.uuid4().hex,
            message_id=f"<{uuid.uuid4().hex}@team-a.example>",
            status="sent",
            sent_at=sent_at,
            track_opens=track_opens,
            track_clicks=track_clicks,
            sequence_id=sequence_id,
            sequence_step=sequence_step,
        )
        first_marked = False
        for position, address in enumerate(to):
            contact = contacts.get(address)
            first = contact is not None and not first_marked
            first_marked = first_marked or first
            row.recipients.append(
                OutboundRecipient(
                    workspace_id=team.workspace_id,
                    position=position,
                    kind="to",
                    address=address,
                    first_enduser=first,
                    contact_id=contact.id if contact else None,
                    company_id=contact.company_id if contact else None,
                )
            )
        session.add(row)
        session.flush()
        for position in range(links):
            session.add(
                TrackedLink(
                    workspace_id=team.workspace_id,
                    outbound_email_id=row.id,
                    token=uuid.uuid4().hex,
                    kind="click",
                    url=f"https://example.com/{position}",
                    position=position,
                )
            )
        ensure_record(session, row, sent_at)
        return row.id


def link_ids(sessions: sessionmaker[Session], outbound_id: uuid.UUID) -> list[uuid.UUID]:
    with session_scope(sessions) as session:
        return list(
            session.scalars(
                select(TrackedLink.id)
                .where(TrackedLink.outbound_email_id == outbound_id)
                .order_by(TrackedLink.position)
            )
        )


def add_event(
    sessions: sessionmaker[Session],
    team: Team,
    outbound_id: uuid.UUID,
    kind: str,
    after: timedelta,
    *,
    link_id: uuid.UUID | None = None,
    machine_reason: str | None = None,
) -> uuid.UUID:
    """An event as the tracking endpoint stores it, `after` the email was sent."""
    with session_scope(sessions) as session:
        event = EngagementEvent(
            workspace_id=team.workspace_id,
            outbound_email_id=outbound_id,
            kind=kind,
            occurred_at=SENT_AT + after,
            link_id=link_id,
            method="GET",
            machine_reason=machine_reason,
            detail={},
        )
        session.add(event)
        session.flush()
        return event.id


def stored_email(
    sessions: sessionmaker[Session],
    team: Team,
    sender: str,
    *,
    in_reply_to: tuple[str, ...] = (),
    references: tuple[str, ...] = (),
    automatic: str | None = None,
    subject: str = "Re: Your renewal",
) -> uuid.UUID:
    """An email as inbound stores it (Message-IDs without brackets)."""
    with session_scope(sessions) as session:
        key = f"{uuid.uuid4().hex}@customer.example"
        email = Email(
            workspace_id=team.workspace_id,
            dedup_key=key,
            message_id=key,
            subject=subject,
            sent_at=SENT_AT + timedelta(hours=2),
            from_address=sender,
            to_addresses=["member@team-a.example"],
            in_reply_to=list(in_reply_to),
            references=list(references),
            automatic=automatic,
            source="sync",
        )
        session.add(email)
        session.flush()
        return email.id


def bare(message_id: str) -> str:
    return message_id.strip("<>")
