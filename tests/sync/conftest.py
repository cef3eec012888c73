"""Sync scenarios: a workspace with customers, users with real Dovecot mailboxes, and touchline's sync."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.services.dovecot import LOOPBACK_ALLOWED, DovecotServer, ImapUser, start_dovecot
from tests.services.smtp_sink import smtp_sink  # noqa: F401 -- offered to the connect tests below
from touchline.config import Settings
from touchline.db import session_scope
from touchline.inbound.fetch.service import SyncReport, sync_mailbox
from touchline.inbound.timeline import email_records
from touchline.kit.crypto import SecretBox
from touchline.mailboxes import service as mailboxes
from touchline.mailboxes.connect import imap_account
from touchline.mailboxes.providers.imap import ImapProvider
from touchline.worker import configure_queue
from touchline.workspace import service
from touchline.workspace.permissions import Actor

INTERNAL = "touchline-team.example"
CUSTOMER = "customer.example"


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    server = start_dovecot()
    yield server
    server.stop()


def message(
    subject: str,
    *,
    sender: str = f"Jane Doe <jane.doe@{CUSTOMER}>",
    to: str = f"Sam <sam@{INTERNAL}>",
    cc: str | None = None,
    sent_at: dt.datetime | None = None,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    body: str = "Hello from a customer.\n",
) -> bytes:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = to
    if cc:
        email["Cc"] = cc
    email["Subject"] = subject
    email["Date"] = format_datetime(sent_at or dt.datetime.now(dt.UTC))
    email["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@{CUSTOMER}>"
    if in_reply_to:
        email["In-Reply-To"] = in_reply_to
        email["References"] = in_reply_to
    email.set_content(body)
    return email.as_bytes()


@dataclass
class SyncWorld:
    sessions: sessionmaker[Session]
    box: SecretBox
    dovecot: DovecotServer
    workspace_id: uuid.UUID
    company_id: uuid.UUID
    settings: Settings

    @property
    def operator(self) -> Actor:
        return Actor.operator(self.workspace_id)

    def add_user(self, local: str) -> tuple[uuid.UUID, ImapUser]:
        imap = self.dovecot.add_user()
        with session_scope(self.sessions) as session:
            user = service.add_user(session, self.operator, f"{local}@{INTERNAL}", role="Member")
            return user.id, imap

    def connect(self, user_id: uuid.UUID, imap: ImapUser) -> uuid.UUID:
        connection = {
            "host": "127.0.0.1",
            "port": self.dovecot.imap_port,
            "security": "plain",
            "username": imap.username,
        }
        with ImapProvider(imap_account(connection, imap.password, LOOPBACK_ALLOWED)) as provider:
            folders = provider.list_folders()
        with session_scope(self.sessions) as session:
            mailbox = mailboxes.connect_mailbox(
                session,
                self.operator,
                self.box,
                user_id=user_id,
                provider="imap",
                address=imap.username,
                connection=connection,
                credentials={"password": imap.password},
                folders=folders,
            )
            return mailbox.id

    def sync(self, mailbox_id: uuid.UUID, **kwargs: object) -> SyncReport:
        kwargs.setdefault("settings", self.settings)
        return sync_mailbox(self.sessions, self.box, mailbox_id, **kwargs)  # type: ignore[arg-type]

    def emails(self) -> list[dict[str, object]]:
        with session_scope(self.sessions) as session:
            return email_records(session, self.workspace_id)

    def subjects(self) -> list[str]:
        return sorted(str(record["subject"]) for record in self.emails())

    def select(self, mailbox_id: uuid.UUID, *names: str) -> None:
        with session_scope(self.sessions) as session:
            mailbox = mailboxes.get_mailbox(session, self.operator, mailbox_id)
            wanted = {folder.id for folder in mailbox.folders if folder.name in names}
            mailboxes.select_folders(session, self.operator, mailbox_id, wanted)

    def refresh_folders(self, mailbox_id: uuid.UUID, imap: ImapUser) -> None:
        with session_scope(self.sessions) as session:
            mailbox = mailboxes.get_mailbox(session, self.operator, mailbox_id)
            connection = dict(mailbox.connection)
        with ImapProvider(imap_account(connection, imap.password, LOOPBACK_ALLOWED)) as provider:
            folders = provider.list_folders()
        with session_scope(self.sessions) as session:
            mailboxes.save_folders(
                session, mailboxes.get_mailbox(session, self.operator, mailbox_id), folders
            )


@pytest.fixture
def world(
    settings: Settings, sessions: sessionmaker[Session], box: SecretBox, dovecot: DovecotServer
) -> Iterator[SyncWorld]:
    queue = configure_queue(settings)
    with session_scope(sessions) as session:
        workspace = service.create_workspace(
            session, box, "Sync Co", internal_domains=[INTERNAL], inbound_domain="log.test.example"
        )
        company = service.create_company(
            session, Actor.operator(workspace.id), "Customer", domains=[CUSTOMER]
        )
        ids = workspace.id, company.id
    yield SyncWorld(sessions, box, dovecot, ids[0], ids[1], settings)
    queue.close()


Appender = Callable[..., int]
