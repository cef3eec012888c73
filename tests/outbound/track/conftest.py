"""Tracked emails sent for real (rendered from a template, delivered through the relay sink), and the
tracking endpoints answering for them inside the app and alone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import FakeClock, Team
from tests.services.smtp_sink import Received, SmtpSink, open_relay
from touchline.app import create_app
from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.models import Contact, User
from touchline.models.engagement import EngagementEvent, TrackedLink
from touchline.outbound.send import service as outbox
from touchline.outbound.send import tasks
from touchline.outbound.templates import service as templates
from touchline.worker import Queue, configure_queue
from touchline.workspace import service as workspace

__all__ = ["open_relay"]

TRACKING_BASE = "https://t.touchline.test"
HTML = (
    "<p>Hello {{ enduser.first_name }},</p>"
    '<p>See <a href="https://acme.example/renewal?plan=pro">the plan</a>,'
    ' <a href="mailto:help@team-a.example">write</a>, <a href="#terms">terms</a> and'
    ' <a href="https://acme.example/private" data-touchline-track="off">your account</a>.</p>'
)


@dataclass
class RecordingJobs:
    """Stands in for the queue: the jobs the tracking app sends after each commit."""

    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def send(self, name: str, **kwargs: Any) -> None:
        self.sent.append((name, kwargs))


@dataclass
class Tracked:
    team: Team
    sessions: sessionmaker[Session]
    box: SecretBox
    settings: Settings
    sink: SmtpSink
    clock: FakeClock
    queue: Queue

    def send(self, *, opens: bool = True, clicks: bool = True, html: str = HTML) -> uuid.UUID:
        """Queues an email from a template with these switches to jane@acme.example and delivers it."""
        with session_scope(self.sessions) as session:
            admin = session.get(User, self.team.admin_id)
            assert admin is not None
            actor = workspace.actor_for(admin)
            name = f"t-{uuid.uuid4().hex[:8]}"
            templates.create_template(
                session, actor, name, templates.TemplateText("Renewal", html, None, opens, clicks)
            )
            draft = outbox.Draft(
                sender="admin@team-a.example", to=[outbox.Recipient("jane@acme.example")], template=name
            )
            row = outbox.send_email(session, actor, draft, settings=self.settings, now=self.clock.now)
            outbound_id = row.id
        assert tasks.deliver(self.sessions, self.box, self.settings, outbound_id, clock=self.clock) == "sent"
        return outbound_id

    def received(self) -> Received:
        return self.sink.received[-1]

    def links(self, outbound_id: uuid.UUID) -> dict[str, list[TrackedLink]]:
        by_kind: dict[str, list[TrackedLink]] = {"open": [], "click": [], "honeypot": []}
        with session_scope(self.sessions) as session:
            for link in session.scalars(
                select(TrackedLink)
                .where(TrackedLink.outbound_email_id == outbound_id)
                .order_by(TrackedLink.position)
            ):
                session.expunge(link)
                by_kind[link.kind].append(link)
        return by_kind

    def events(self) -> list[EngagementEvent]:
        with session_scope(self.sessions) as session:
            rows = list(session.scalars(select(EngagementEvent).order_by(EngagementEvent.occurred_at)))
            for row in rows:
                session.expunge(row)
            return rows


@pytest.fixture
def tracked(
    team: Team, sessions: sessionmaker[Session], box: SecretBox, settings: Settings, open_relay: SmtpSink
) -> Iterator[Tracked]:
    relay_settings = settings.model_copy(
        update={
            "relay_smtp_host": "127.0.0.1",
            "relay_smtp_port": open_relay.port,
            "relay_smtp_security": "plain",
            "tracking_base_url": TRACKING_BASE,
        }
    )
    with session_scope(sessions) as session:
        session.add(Contact(workspace_id=team.workspace_id, email="jane@acme.example", name="Jane Doe"))
    queue = configure_queue(relay_settings)
    try:
        yield Tracked(team, sessions, box, relay_settings, open_relay, FakeClock(), queue)
    finally:
        queue.close()


@pytest.fixture
def tracking_client(tracked: Tracked) -> Iterator[tuple[TestClient, RecordingJobs]]:
    """The whole app (tracking mounted at /t), its tracking writer sending jobs to a recorder."""
    application = create_app(tracked.settings, queue=tracked.queue)
    jobs = RecordingJobs()
    application.state.tracking.writer.jobs = jobs
    with TestClient(application, base_url=TRACKING_BASE) as client:
        yield client, jobs
