"""The same email synced from a real Dovecot mailbox and BCC'd to the log address is stored once."""

from __future__ import annotations

import datetime as dt
import smtplib
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.receive.conftest import LOCAL_RELAY, logging_before_replies
from tests.services.dovecot import DovecotServer
from tests.sync.conftest import CUSTOMER, INTERNAL, SyncWorld, dovecot, message
from touchline.config import Settings
from touchline.db import session_scope
from touchline.inbound.receive.smtp import InboundServer
from touchline.kit.crypto import SecretBox
from touchline.worker import configure_queue
from touchline.workspace import service
from touchline.workspace.permissions import Actor

__all__ = ["dovecot"]  # the session's Dovecot, shared with the sync tests' definition

pytestmark = pytest.mark.dovecot


@pytest.fixture
def sync_world(
    settings: Settings, sessions: sessionmaker[Session], box: SecretBox, dovecot: DovecotServer
) -> Iterator[SyncWorld]:
    queue = configure_queue(settings)  # connecting a mailbox enqueues its first sync
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


@pytest.fixture
def server(settings: Settings, sessions: sessionmaker[Session]) -> Iterator[InboundServer]:
    with InboundServer(
        settings,
        host="127.0.0.1",
        port=0,
        sessions=sessions,
        checks=LOCAL_RELAY,
        on_spooled=logging_before_replies(sessions, LOCAL_RELAY),
    ) as running:
        yield running


def log_address(world: SyncWorld) -> str:
    with session_scope(world.sessions) as session:
        return service.get_settings(session, world.operator).log_address


def bcc(server: InboundServer, sender: str, recipient: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
        client.sendmail(sender, [recipient], raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


def test_synced_then_bccd_and_bccd_then_synced_are_each_stored_once(
    sync_world: SyncWorld, server: InboundServer
) -> None:
    user_id, imap = sync_world.add_user("sam")
    address = log_address(sync_world)
    now = dt.datetime.now(dt.UTC)
    first = message(
        "Quote, synced first", sender=f"Sam <sam@{INTERNAL}>", to=f"Jane Doe <jane.doe@{CUSTOMER}>"
    )
    second = message(
        "Quote, logged first", sender=f"Sam <sam@{INTERNAL}>", to=f"Jane Doe <jane.doe@{CUSTOMER}>"
    )
    # Sam sent both with the log address in Bcc; the copies in Sam's Sent folder carry no Bcc.
    sync_world.dovecot.append(imap, "Gesendet", first, received_at=now)
    mailbox_id = sync_world.connect(user_id, imap)
    assert sync_world.sync(mailbox_id).stored_new == 1
    bcc(server, f"sam@{INTERNAL}", address, first)

    bcc(server, f"sam@{INTERNAL}", address, second)
    sync_world.dovecot.append(imap, "Gesendet", second, received_at=now)
    assert sync_world.sync(mailbox_id).stored_new == 0

    records = {str(r["subject"]): r for r in sync_world.emails()}
    assert sorted(records) == ["Quote, logged first", "Quote, synced first"]
    for record in records.values():
        assert record["logged"] is True
        assert record["unassigned"] is False
        assert record["companies"] == [str(sync_world.company_id)]
        assert record["holders"] == [f"sam@{INTERNAL}"]
        assert record["folders"] == ["Gesendet"]
    assert records["Quote, synced first"]["source"] == "sync"
    assert records["Quote, logged first"]["source"] == "log"
