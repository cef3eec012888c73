"""Sequence emails leave through the member's own mailbox (SMTP on a loopback sink), carry one-click
unsubscribe, and later steps answer the first one."""

from __future__ import annotations

from datetime import UTC, datetime, time

from sqlalchemy import select

from tests.outbound.send.conftest import World, queue, world
from tests.services.dovecot import dovecot, dovecot_oauth2_introspection_url, imap_user
from tests.services.smtp_sink import smtp_sink
from touchline.db import session_scope
from touchline.models import Contact, OutboundEmail
from touchline.outbound.sequences import scheduler
from touchline.outbound.sequences import service as sequences
from touchline.outbound.templates import service as templates
from touchline.outbound.unsubscribe.service import unsubscribe_url
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor

__all__ = ["dovecot", "dovecot_oauth2_introspection_url", "imap_user", "queue", "smtp_sink", "world"]


def test_sequence_steps_arrive_with_unsubscribe_and_threaded(world: World) -> None:
    settings = world.settings.model_copy(update={"base_url": "https://touchline.example"})
    world.clock.now = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    with session_scope(world.sessions) as session:
        member = workspace_service.actor_for(
            workspace_service.get_user(session, Actor.operator(world.team.workspace_id), world.team.member_id)
        )
        welcome = templates.create_template(
            session,
            member,
            "Welcome",
            templates.TemplateText("Welcome to {{ company.name }}", "<p>Hi {{ enduser.first_name }}</p>"),
        )
        spec = sequences.SequenceSpec(
            name="Onboarding",
            sender="member@team-a.example",
            steps=[sequences.StepSpec(welcome.id, 0), sequences.StepSpec(welcome.id, 1)],
            time_zone="UTC",
            window_start=time(8),
            window_end=time(18),
        )
        sequence = sequences.create_sequence(session, member, spec)
        jane = session.scalars(select(Contact).where(Contact.email == world.contact)).one()
        sequences.enrol(session, member, sequence.id, [jane.id], now=world.clock.now)
        link = unsubscribe_url(settings.base_url, world.box, world.team.workspace_id, jane.id)

    for _ in range(2):
        [done] = scheduler.run_due(world.sessions, settings, world.clock.now)
        assert done.outcome == "queued"
        with session_scope(world.sessions) as session:
            queued = session.scalars(select(OutboundEmail.id).where(OutboundEmail.status == "queued")).all()
        assert [world.deliver(outbound_id) for outbound_id in queued] == ["sent"]
        world.clock.advance(days=1)

    first, second = (received.message for received in world.sink.received)
    assert [m["To"] for m in (first, second)] == ["Jane <jane@acme.example>"] * 2
    assert first["Subject"] == "Welcome to Acme"
    assert "Hi Jane" in first.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    for message in (first, second):
        assert message["List-Unsubscribe"] == f"<{link}>"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert second["In-Reply-To"] == first["Message-ID"]
