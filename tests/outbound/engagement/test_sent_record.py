"""An email delivered through the relay (a real SMTP sink on loopback) has its engagement record from
the moment it is recorded sent."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team
from tests.outbound.engagement.conftest import add_contact
from tests.outbound.send.conftest import open_relay, relay_settings
from tests.services.smtp_sink import SmtpSink
from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.models import EmailEngagement
from touchline.outbound.send import service as outbox
from touchline.outbound.send import tasks as delivery
from touchline.worker import configure_queue
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor

__all__ = ["open_relay", "relay_settings"]

SENT_AT = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def test_recording_an_email_sent_makes_its_record(
    sessions: sessionmaker[Session],
    team: Team,
    relay_settings: Settings,
    open_relay: SmtpSink,
    box: SecretBox,
) -> None:
    ana = add_contact(sessions, team, "ana@globex.example", company="Globex")
    configure_queue(relay_settings)  # nobody consumes it: the test delivers the email itself
    with session_scope(sessions) as session:
        operator = Actor.operator(team.workspace_id)
        member = workspace_service.actor_for(workspace_service.get_user(session, operator, team.member_id))
        draft = outbox.Draft(
            sender="member@team-a.example",
            to=[outbox.Recipient("someone@partner.example"), outbox.Recipient(ana.address)],
            subject="Renewal",
            html="<p>Shall we talk?</p>",
            track_clicks=False,
        )
        outbound_id = outbox.send_email(session, member, draft, settings=relay_settings, now=SENT_AT).id
    assert delivery.deliver(sessions, box, relay_settings, outbound_id, clock=lambda: SENT_AT) == "sent"
    assert len(open_relay.received) == 1
    with session_scope(sessions) as session:
        [record] = session.scalars(select(EmailEngagement))
        assert record.outbound_email_id == outbound_id
        assert (record.contact_id, record.recipient_address) == (ana.contact_id, ana.address)
        assert (record.sender_user_id, record.created_by, record.sent_at) == (
            team.member_id,
            team.member_id,
            SENT_AT,
        )
        assert (record.track_opens, record.track_clicks) == (True, False)
        assert (record.open_rate, record.click_rate, record.reply_rate, record.human_open_rate) == (
            0,
            None,
            0,
            0,
        )
