"""A workspace with two endusers at Acme, stored templates and a relay on a loopback sink, with the
sequence tick run by hand on a fake clock."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from collections.abc import Sequence as Many
from dataclasses import dataclass
from datetime import UTC, datetime, time

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import FakeClock, Team
from tests.outbound.send.conftest import queue, relay_settings
from tests.services.smtp_sink import SmtpSink, open_relay
from touchline.config import Settings
from touchline.db import session_scope
from touchline.inbound.store.directory import directories
from touchline.inbound.store.service import Holding, RawIncoming, store_raw_messages
from touchline.kit.crypto import SecretBox
from touchline.models import Company, CompanyDomain, Contact, Enrolment, OutboundEmail, StepRun
from touchline.outbound.send import tasks as delivery
from touchline.outbound.sequences import scheduler
from touchline.outbound.sequences import service as sequences
from touchline.outbound.sequences.outcomes import Engagement, EngagementReader
from touchline.outbound.templates import service as templates
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor

__all__ = ["open_relay", "queue", "relay_settings"]

MEMBER = "member@team-a.example"
JANE = "jane@acme.example"
BOB = "bob@acme.example"
MONDAY_MORNING = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # 09:00 in Berlin


def no_engagement_recorded(session: Session, outbound_ids: Many[uuid.UUID]) -> Mapping[uuid.UUID, Engagement]:
    """A reader for which nothing was opened, clicked or bounced."""
    return {}


@dataclass
class Playbook:
    team: Team
    sessions: sessionmaker[Session]
    settings: Settings
    box: SecretBox
    clock: FakeClock
    relay: SmtpSink
    jane: uuid.UUID
    bob: uuid.UUID
    templates: dict[str, uuid.UUID]

    def member(self, session: Session) -> Actor:
        operator = Actor.operator(self.team.workspace_id)
        return workspace_service.actor_for(workspace_service.find_user_by_email(session, operator, MEMBER))

    def create(
        self,
        steps: Sequence[tuple[str, int, str]],
        *,
        name: str = "Onboarding",
        zone: str = "Europe/Berlin",
        business_days: bool = True,
        exit_on_reply: bool = True,
        window: tuple[time, time] = (time(9), time(17)),
    ) -> uuid.UUID:
        """A sequence of (template name, delay in days, condition) steps sent by the member."""
        with session_scope(self.sessions) as session:
            spec = sequences.SequenceSpec(
                name=name,
                sender=MEMBER,
                steps=[sequences.StepSpec(self.templates[t], delay, cond) for t, delay, cond in steps],
                exit_on_reply=exit_on_reply,
                time_zone=zone,
                window_start=window[0],
                window_end=window[1],
                business_days_only=business_days,
            )
            return sequences.create_sequence(session, self.member(session), spec).id

    def enrol(self, sequence_id: uuid.UUID, *contact_ids: uuid.UUID) -> list[uuid.UUID]:
        with session_scope(self.sessions) as session:
            result = sequences.enrol(
                session, self.member(session), sequence_id, list(contact_ids), now=self.clock.now
            )
            by_contact = {row.contact_id: row.id for row in result.enrolled}
            return [by_contact[contact_id] for contact_id in contact_ids if contact_id in by_contact]

    def tick(
        self,
        engagement: EngagementReader = no_engagement_recorded,
        before_commit: scheduler.BeforeCommit | None = None,
    ) -> list[scheduler.StepDone]:
        if before_commit is None:
            return scheduler.run_due(self.sessions, self.settings, self.clock.now, engagement=engagement)
        return scheduler.run_due(
            self.sessions, self.settings, self.clock.now, engagement=engagement, before_commit=before_commit
        )

    def enrolment(self, enrolment_id: uuid.UUID) -> Enrolment:
        with session_scope(self.sessions) as session:
            row = session.get(Enrolment, enrolment_id)
            assert row is not None
            session.expunge(row)
            return row

    def runs(self, enrolment_id: uuid.UUID) -> list[tuple[int, str]]:
        with session_scope(self.sessions) as session:
            return [
                (run.position, run.outcome)
                for run in session.scalars(
                    select(StepRun).where(StepRun.enrolment_id == enrolment_id).order_by(StepRun.position)
                )
            ]

    def outbound(self) -> list[OutboundEmail]:
        with session_scope(self.sessions) as session:
            rows = list(session.scalars(select(OutboundEmail).order_by(OutboundEmail.created_at)))
            session.expunge_all()
            return rows

    def deliver_all(self) -> list[str | None]:
        return [
            delivery.deliver(self.sessions, self.box, self.settings, row.id, clock=self.clock)
            for row in self.outbound()
            if row.status == "queued"
        ]

    def receive_reply(self, from_address: str, in_reply_to: str) -> None:
        """An email from `from_address` answering the message `in_reply_to`, as sync would store it."""
        raw = (
            f"From: <{from_address}>\r\nTo: {MEMBER}\r\nSubject: Re: Welcome\r\n"
            "Date: Mon, 07 Dec 2026 12:00:00 +0000\r\n"
            f"Message-ID: <reply-{uuid.uuid4().hex}@acme.example>\r\n"
            f"In-Reply-To: <{in_reply_to}>\r\nReferences: <{in_reply_to}>\r\n\r\nThanks, got it.\r\n"
        ).encode()
        with session_scope(self.sessions) as session:
            store_raw_messages(
                session,
                self.team.workspace_id,
                directories.get(session, self.team.workspace_id),
                [RawIncoming(raw, Holding(user_id=self.team.member_id, via="import"), label="reply")],
                source="import",
            )


@pytest.fixture
def playbook(
    team: Team,
    sessions: sessionmaker[Session],
    relay_settings: Settings,
    box: SecretBox,
    queue: object,
    open_relay: SmtpSink,
) -> Playbook:
    with session_scope(sessions) as session:
        company = Company(
            workspace_id=team.workspace_id,
            name="Acme",
            account_owner_id=team.member_id,
            custom_fields={"tier": "gold"},
        )
        session.add(company)
        session.flush()
        session.add(
            CompanyDomain(workspace_id=team.workspace_id, company_id=company.id, domain="acme.example")
        )
        jane = Contact(workspace_id=team.workspace_id, email=JANE, name="Jane Doe", company_id=company.id)
        bob = Contact(workspace_id=team.workspace_id, email=BOB, name="Bob Roe", company_id=company.id)
        session.add_all([jane, bob])
        session.flush()
        operator = Actor.operator(team.workspace_id)
        workspace_service.create_custom_field(session, operator, "company", "Tier", "text")
        member = workspace_service.actor_for(workspace_service.find_user_by_email(session, operator, MEMBER))
        made = {
            name: templates.create_template(
                session,
                member,
                name,
                templates.TemplateText(
                    subject=f"{name} for {{{{ company.name }}}}",
                    html=f"<p>Hi {{{{ enduser.first_name }}}}, {name}.</p>",
                ),
            ).id
            for name in ("Welcome", "Nudge", "Last call")
        }
        ids = (jane.id, bob.id)
    clock = FakeClock()
    clock.now = MONDAY_MORNING
    settings = relay_settings.model_copy(update={"base_url": "https://touchline.example"})
    return Playbook(team, sessions, settings, box, clock, open_relay, ids[0], ids[1], made)
