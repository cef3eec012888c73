"""A workspace whose member sends through an IMAP mailbox (Dovecot) with SMTP on a loopback sink; the fake
Gmail and Graph servers of the provider tests, and messages to send through them."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import FakeClock, Team
from tests.mailboxes.conftest import (
    _gmail_server,
    _graph_server,
    fake_gmail,
    fake_graph,
    gmail,
    gmail_tokens,
    gmail_url,
    google_flow,
    graph,
    graph_tokens,
    graph_url,
    microsoft_flow,
    pacing_clock,  # noqa: F401 -- the provider fixtures above ask for it
)
from tests.services.dovecot import (
    DovecotServer,
    ImapUser,
    dovecot,
    dovecot_oauth2_introspection_url,
    imap_user,
)
from tests.services.smtp_sink import SmtpSink, open_relay, smtp_sink
from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.models import Company, CompanyDomain, Contact, Mailbox, OutboundEmail
from touchline.outbound.compose.mime import Mailbox as MimeMailbox
from touchline.outbound.compose.mime import OutgoingEmail, build_message
from touchline.outbound.send import tasks
from touchline.outbound.send.contract import Outgoing
from touchline.worker import Queue, configure_queue

__all__ = [
    "_gmail_server",
    "_graph_server",
    "dovecot",
    "dovecot_oauth2_introspection_url",
    "fake_gmail",
    "fake_graph",
    "gmail",
    "gmail_tokens",
    "gmail_url",
    "google_flow",
    "graph",
    "graph_tokens",
    "graph_url",
    "imap_user",
    "microsoft_flow",
    "open_relay",
    "smtp_sink",
]


@pytest.fixture
def queue(settings: Settings) -> Iterator[Queue]:
    """A queue nobody consumes: tests run the delivery of each email themselves."""
    queue = configure_queue(settings)
    yield queue
    queue.close()


@pytest.fixture
def relay_settings(settings: Settings, open_relay: SmtpSink) -> Settings:
    """Settings whose relay is the open sink on loopback."""
    return settings.model_copy(
        update={
            "relay_smtp_host": "127.0.0.1",
            "relay_smtp_port": open_relay.port,
            "relay_smtp_security": "plain",
        }
    )


@dataclass
class World:
    team: Team
    sessions: sessionmaker[Session]
    box: SecretBox
    settings: Settings
    clock: FakeClock
    company_id: uuid.UUID
    contact: str
    sink: SmtpSink
    dovecot: DovecotServer
    imap: ImapUser
    mailbox_id: uuid.UUID

    def deliver(self, outbound_id: uuid.UUID | str) -> str | None:
        return tasks.deliver(
            self.sessions, self.box, self.settings, uuid.UUID(str(outbound_id)), clock=self.clock
        )

    def outbound(self, outbound_id: uuid.UUID | str) -> OutboundEmail:
        with session_scope(self.sessions) as session:
            row = session.get(OutboundEmail, uuid.UUID(str(outbound_id)))
            assert row is not None
            session.expunge(row)
            return row

    def sent_folder_holds(self, message_id: str) -> bool:
        with self.dovecot.client(self.imap) as client:
            client.select_folder("Gesendet", readonly=True)
            return bool(client.search(["HEADER", "Message-ID", message_id]))


def connect_sending_mailbox(
    sessions: sessionmaker[Session],
    box: SecretBox,
    *,
    workspace_id: uuid.UUID,
    user_id: uuid.UUID,
    address: str,
    dovecot: DovecotServer,
    imap: ImapUser,
    smtp_port: int,
) -> uuid.UUID:
    connection = {
        "host": dovecot.host,
        "port": dovecot.imap_port,
        "security": "plain",
        "username": imap.username,
        "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "plain"},
    }
    with session_scope(sessions) as session:
        mailbox = Mailbox(
            workspace_id=workspace_id,
            user_id=user_id,
            provider="imap",
            address=address,
            connection=connection,
            credentials_encrypted=box.encrypt(json.dumps({"password": imap.password})),
            status="connected",
        )
        session.add(mailbox)
        session.flush()
        return mailbox.id


@pytest.fixture
def world(
    team: Team,
    sessions: sessionmaker[Session],
    box: SecretBox,
    settings: Settings,
    queue: Queue,
    smtp_sink: SmtpSink,
    dovecot: DovecotServer,
    imap_user: ImapUser,
) -> World:
    smtp_sink.username, smtp_sink.password = imap_user.username, imap_user.password
    with session_scope(sessions) as session:
        company = Company(workspace_id=team.workspace_id, name="Acme", account_owner_id=team.member_id)
        session.add(company)
        session.flush()
        session.add(
            CompanyDomain(workspace_id=team.workspace_id, company_id=company.id, domain="acme.example")
        )
        session.add(
            Contact(
                workspace_id=team.workspace_id, email="jane@acme.example", name="Jane", company_id=company.id
            )
        )
        company_id = company.id
    mailbox_id = connect_sending_mailbox(
        sessions,
        box,
        workspace_id=team.workspace_id,
        user_id=team.member_id,
        address="member@team-a.example",
        dovecot=dovecot,
        imap=imap_user,
        smtp_port=smtp_sink.port,
    )
    clock = FakeClock()
    clock.now = datetime.now(UTC)
    return World(
        team,
        sessions,
        box,
        settings,
        clock,
        company_id,
        "jane@acme.example",
        smtp_sink,
        dovecot,
        imap_user,
        mailbox_id,
    )


def outgoing(
    subject: str = "Renewal next month",
    *,
    to: tuple[str, ...] = ("jane@customer.example",),
    cc: tuple[str, ...] = (),
    in_reply_to: str | None = None,
) -> Outgoing:
    built = build_message(
        OutgoingEmail(
            sender=MimeMailbox("sam@touchline.example", "Sam Seller"),
            to=tuple(MimeMailbox(address) for address in to),
            cc=tuple(MimeMailbox(address) for address in cc),
            subject=subject,
            text="Hello Jane,\n\nyour renewal is due next month.\n",
            html="<p>Hello Jane,</p><p>your renewal is due next month.</p>",
            date=dt.datetime(2026, 12, 6, 9, 30, tzinfo=dt.UTC),
            in_reply_to=in_reply_to,
        ),
        "touchline.example",
    )
    return Outgoing(
        raw=built.raw,
        envelope_from="sam@touchline.example",
        recipients=built.recipients,
        message_id=built.message_id,
        in_reply_to=in_reply_to or "",
    )
