"""A reply ends the enduser's enrolment when it arrives; an automatic reply does not, here or in the
tick's own reading of replies; and the sequences' conditions read the engagement records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team
from tests.outbound.engagement.conftest import add_contact, add_event, bare, sent_email, stored_email
from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.models import Contact, Conversation, Email, Enrolment, OutboundEmail, StepRun
from touchline.outbound.engagement import service
from touchline.outbound.engagement.repository import recorded_engagement
from touchline.outbound.sequences import scheduler
from touchline.outbound.sequences import service as sequences
from touchline.outbound.sequences.outcomes import Engagement, replied_conversations
from touchline.outbound.templates import service as templates
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def _enrolled(
    sessions: sessionmaker[Session], team: Team, contact_id: uuid.UUID
) -> tuple[uuid.UUID, uuid.UUID]:
    with session_scope(sessions) as session:
        operator = Actor.operator(team.workspace_id)
        member = workspace_service.actor_for(workspace_service.get_user(session, operator, team.member_id))
        template = templates.create_template(
            session, member, "Welcome", templates.TemplateText("Hi", "<p>Hi</p>")
        )
        spec = sequences.SequenceSpec(
            "Onboarding", "member@team-a.example", [sequences.StepSpec(template.id)]
        )
        sequence = sequences.create_sequence(session, member, spec)
        sequences.enrol(session, member, sequence.id, [contact_id], now=NOW)
        enrolment = session.scalars(select(Enrolment)).one()
        return sequence.id, enrolment.id


def _message_id(sessions: sessionmaker[Session], outbound_id: uuid.UUID) -> str:
    with session_scope(sessions) as session:
        row = session.get(OutboundEmail, outbound_id)
        assert row is not None
        return bare(row.message_id)


def _state(sessions: sessionmaker[Session], enrolment_id: uuid.UUID) -> tuple[str, str | None]:
    with session_scope(sessions) as session:
        enrolment = session.get(Enrolment, enrolment_id)
        assert enrolment is not None
        return enrolment.state, enrolment.reason


def test_a_reply_ends_the_enrolment_at_once_and_an_automatic_reply_does_not(
    sessions: sessionmaker[Session], team: Team
) -> None:
    ana = add_contact(sessions, team, "ana@globex.example")
    sequence_id, enrolment_id = _enrolled(sessions, team, ana.contact_id)
    outbound = sent_email(sessions, team, [ana.address], sequence_id=sequence_id, sequence_step=1)
    ours = (_message_id(sessions, outbound),)
    away = stored_email(sessions, team, ana.address, in_reply_to=ours, automatic="subject: Out of office")
    with session_scope(sessions) as session:
        service.record_replies(session, team.workspace_id, [away], NOW)
    assert _state(sessions, enrolment_id) == ("active", None)
    reply = stored_email(sessions, team, ana.address, in_reply_to=ours)
    with session_scope(sessions) as session:
        service.record_replies(session, team.workspace_id, [reply], NOW)
    assert _state(sessions, enrolment_id) == ("exited", "ana@globex.example replied")


def test_the_ticks_own_reading_of_replies_skips_automatic_ones(
    sessions: sessionmaker[Session], team: Team
) -> None:
    ana = add_contact(sessions, team, "ana@globex.example")
    _, enrolment_id = _enrolled(sessions, team, ana.contact_id)
    with session_scope(sessions) as session:
        conversation = Conversation(workspace_id=team.workspace_id, subject="Welcome")
        session.add(conversation)
        session.flush()
        session.add(
            Email(
                workspace_id=team.workspace_id,
                dedup_key="away@globex.example",
                message_id="away@globex.example",
                from_address=ana.address,
                automatic="Auto-Submitted: auto-replied",
                conversation_id=conversation.id,
                source="sync",
            )
        )
        session.flush()
        enrolment = session.get(Enrolment, enrolment_id)
        assert enrolment is not None
        assert replied_conversations(session, enrolment, [conversation.id]) == set()


def test_conditions_read_the_records(sessions: sessionmaker[Session], team: Team) -> None:
    ana = add_contact(sessions, team, "ana@globex.example")
    opened = sent_email(sessions, team, [ana.address])
    untouched = sent_email(sessions, team, [ana.address])
    add_event(sessions, team, opened, "open", timedelta(hours=1), machine_reason="Apple Private Relay")
    with session_scope(sessions) as session:
        service.refresh(session, [opened])
        read = recorded_engagement(session, [opened, untouched, uuid.uuid4()])
    assert read == {opened: Engagement(opened=True), untouched: Engagement()}


def test_a_step_for_an_undeliverable_address_unenrols_with_the_reason(
    sessions: sessionmaker[Session], team: Team, settings: Settings, box: SecretBox
) -> None:
    ana = add_contact(sessions, team, "ana@globex.example")
    _, enrolment_id = _enrolled(sessions, team, ana.contact_id)
    with session_scope(sessions) as session:
        contact = session.get(Contact, ana.contact_id)
        assert contact is not None
        contact.undeliverable_at, contact.undeliverable_reason = NOW, "hard bounce 5.1.1: user unknown"
    with session_scope(sessions) as session:
        enrolment = session.get(Enrolment, enrolment_id)
        assert enrolment is not None
        done = scheduler.run_step(session, enrolment, settings=settings, box=box, now=NOW + timedelta(days=1))
        [run] = session.scalars(select(StepRun))
        assert (run.outcome, run.outbound_id) == ("undeliverable", None)
    assert (done.outcome, done.state) == ("undeliverable", "unenrolled")
    state, reason = _state(sessions, enrolment_id)
    assert state == "unenrolled"
    assert reason is not None
    assert "is undeliverable (hard bounce 5.1.1: user unknown)" in reason
