"""The demo sends: its workspace's outbox leaves through the demo's local sink, which keeps each
message as a file in the folder the demo names."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from touchline.config import Settings
from touchline.db import session_scope
from touchline.demo import (
    DEMO_ADMIN,
    DEMO_FOLLOW_UP,
    DEMO_SEQUENCE,
    DEMO_TEMPLATE,
    SENT_FOLDER,
    DemoSink,
    demo_relay_environment,
    ensure_demo_workspace,
    start_demo_sink,
)
from touchline.kit.crypto import SecretBox
from touchline.models import OutboundEmail, Sequence, Template, User
from touchline.outbound.send import service as outbox
from touchline.outbound.send import tasks
from touchline.outbound.sequences import scheduler
from touchline.outbound.sequences import service as sequences
from touchline.worker import Queue, configure_queue
from touchline.workspace import service

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
CUSTOMER = "nancy.davolio@northwind-traders.example"


@pytest.fixture
def sink(settings: Settings) -> Iterator[DemoSink]:
    started = start_demo_sink(settings.data_dir)
    yield started
    started.stop()


@pytest.fixture
def demo_settings(settings: Settings, sink: DemoSink, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings `touchline demo` serves with: read from the environment it sets."""
    for name, value in demo_relay_environment(sink).items():
        monkeypatch.setenv(name, value)
    return Settings(
        data_dir=settings.data_dir,
        database_url=settings.database_url,
        secret_key=settings.secret_key,
        in_process_worker=False,
        inbound_domain=settings.inbound_domain,
    )


@pytest.fixture
def queue(demo_settings: Settings) -> Iterator[Queue]:
    """A queue nobody consumes: the test runs the delivery job's work itself."""
    configured = configure_queue(demo_settings)
    yield configured
    configured.close()


def _demo_admin(session: Session) -> User:
    return session.scalars(select(User).where(User.email == DEMO_ADMIN)).one()


@pytest.mark.usefixtures("queue")
def test_an_email_from_the_demo_s_outbox_lands_in_the_folder_the_demo_names(
    sessions: sessionmaker[Session], box: SecretBox, demo_settings: Settings, sink: DemoSink
) -> None:
    with session_scope(sessions) as session:
        _, created = ensure_demo_workspace(session, box, demo_settings, "demo-password")
    assert created
    assert sink.folder == demo_settings.data_dir / SENT_FOLDER
    assert sink.received() == []

    with session_scope(sessions) as session:
        sent = outbox.send_email(
            session,
            service.actor_for(_demo_admin(session)),
            outbox.Draft(sender=DEMO_ADMIN, to=[outbox.Recipient(CUSTOMER)], template=DEMO_TEMPLATE),
            settings=demo_settings,
            now=NOW,
        )
        outbound_id, message_id = sent.id, sent.message_id
    assert tasks.deliver(sessions, box, demo_settings, outbound_id, clock=lambda: NOW) == "sent"

    [path] = sink.received()
    assert path.parent == demo_settings.data_dir / SENT_FOLDER
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == "Northwind Traders: your renewal"
    assert message["To"].addresses[0].addr_spec == CUSTOMER
    assert message["From"].addresses[0].addr_spec == DEMO_ADMIN
    assert message["Message-ID"] == message_id
    html = message.get_body(("html",))
    assert html is not None
    assert "Northwind Traders" in str(html.get_content())
    assert list(sink.folder.iterdir()) == [path]  # no partial file left beside it


def test_the_demo_template_is_made_once_and_kept_on_every_start(
    sessions: sessionmaker[Session], box: SecretBox, demo_settings: Settings
) -> None:
    for password, expect_created in (("first-password", True), ("second-password", False)):
        with session_scope(sessions) as session:
            _, created = ensure_demo_workspace(session, box, demo_settings, password)
        assert created is expect_created
    with session_scope(sessions) as session:
        stored = session.scalars(select(Template)).all()
        assert sorted((template.name, template.version) for template in stored) == [
            (DEMO_TEMPLATE, 1),
            (DEMO_FOLLOW_UP, 1),
        ]
        assert {template.created_by for template in stored} == {_demo_admin(session).id}
        assert [sequence.name for sequence in session.scalars(select(Sequence))] == [DEMO_SEQUENCE]


@pytest.mark.usefixtures("queue")
def test_enrolling_a_customer_in_the_demo_playbook_sends_its_first_step_to_the_sink(
    sessions: sessionmaker[Session], box: SecretBox, demo_settings: Settings, sink: DemoSink
) -> None:
    with session_scope(sessions) as session:
        ensure_demo_workspace(session, box, demo_settings, "demo-password")
        admin = service.actor_for(_demo_admin(session))
        playbook = sequences.sequence_named(session, admin, DEMO_SEQUENCE)
        [contact] = sequences.contacts_by_email(session, admin, [CUSTOMER])
        sequences.enrol(session, admin, playbook.id, [contact], now=NOW)
    [step] = scheduler.run_due(sessions, demo_settings, NOW)
    assert step.outcome == "queued"
    with session_scope(sessions) as session:
        [queued] = session.scalars(select(OutboundEmail.id).where(OutboundEmail.sequence_id == playbook.id))
    assert tasks.deliver(sessions, box, demo_settings, queued, clock=lambda: NOW) == "sent"
    [path] = sink.received()
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert message["Subject"] == "Northwind Traders: your renewal"
    assert message["List-Unsubscribe"].startswith(f"<{demo_settings.base_url.rstrip('/')}/u/")
