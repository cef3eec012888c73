"""Mail to the log address is logged within seconds while long mailbox syncs fill every thread a
worker has for them: syncs run in a lane of their own, and never hold the threads quick jobs need."""

from __future__ import annotations

import smtplib
import threading
import time
import uuid
from ipaddress import ip_network

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.receive.conftest import LOOPBACK, LogWorld, message
from touchline.config import Settings
from touchline.db import session_scope
from touchline.inbound.fetch import tasks
from touchline.inbound.fetch.service import SyncReport
from touchline.inbound.receive.smtp import InboundServer
from touchline.jobs import declare_all
from touchline.kit.crypto import SecretBox
from touchline.mailboxes import service as mailboxes
from touchline.mailboxes.providers.base import Folder, SpecialUse
from touchline.worker import configure_queue
from touchline.workspace import service

SENDER = "member@team-a.example"
LONG_SYNCS = 4
WORKER_THREADS = 2
LOGGED_WITHIN_SECONDS = 2.0


def _mailboxes(world: LogWorld, box: SecretBox, count: int) -> list[uuid.UUID]:
    ids = []
    for n in range(count):
        with session_scope(world.sessions) as session:
            user = service.add_user(session, world.operator, f"box{n}@team-a.example", role="Member")
            mailbox = mailboxes.connect_mailbox(
                session,
                world.operator,
                box,
                user_id=user.id,
                provider="imap",
                address=f"box{n}@team-a.example",
                connection={"host": "127.0.0.1", "port": 1, "security": "plain", "username": f"box{n}"},
                credentials={"password": "p"},
                folders=[Folder("INBOX", "INBOX", SpecialUse.INBOX)],
            )
            ids.append(mailbox.id)
    return ids


def _send(server: InboundServer, world: LogWorld, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
        client.sendmail(SENDER, [world.log_address], message(subject))


def _wait_for_subjects(world: LogWorld, expected: list[str], *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    found: list[str] = []
    while time.monotonic() < deadline:
        found = sorted(str(record["subject"]) for record in world.emails())
        if found == expected:
            return
        time.sleep(0.05)
    raise AssertionError(f"logged {found} within {seconds} s, expected {expected}")


def test_the_log_address_is_logged_within_seconds_while_long_syncs_fill_the_worker(
    world: LogWorld,
    settings: Settings,
    sessions: sessionmaker[Session],
    box: SecretBox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finish_syncs = threading.Event()
    entered: list[uuid.UUID] = []
    entered_changed = threading.Condition()

    def long_sync(_sessions: object, _box: object, mailbox_id: uuid.UUID, **_: object) -> SyncReport:
        with entered_changed:
            entered.append(mailbox_id)
            entered_changed.notify_all()
        finish_syncs.wait(60)
        return SyncReport(mailbox_id)

    monkeypatch.setattr(tasks, "sync_mailbox", long_sync)
    # The worker looks the sender's domain up for the record; this machine has no DNS to answer, so
    # the lookups are cut short and the time measured is the queue's, not a resolver's timeout.
    relayed = settings.model_copy(
        update={
            "inbound_trusted_networks": [ip_network(one) for one in LOOPBACK],
            "inbound_dkim_dns_timeout": 0.1,
        }
    )
    declare_all()  # the worker must know the logging and sync jobs
    queue = configure_queue(relayed)
    try:
        queue.start_in_process(WORKER_THREADS, periodic=False)
        with InboundServer(relayed, host="127.0.0.1", port=0, sessions=sessions) as server:
            # A first message warms the worker up (its first parse builds the quote patterns, which
            # takes seconds on a busy machine); the one measured below meets a worker in its stride.
            _send(server, world, "Warm-up")
            _wait_for_subjects(world, ["Warm-up"], seconds=60)
            for mailbox_id in _mailboxes(world, box, LONG_SYNCS):
                queue.send(mailboxes.SYNC_JOB, mailbox_id=str(mailbox_id))
            with entered_changed:
                # Every thread the worker has for long jobs is taken by a sync that waits; two more wait.
                assert entered_changed.wait_for(lambda: len(entered) >= WORKER_THREADS, timeout=60)
            sent_at = time.monotonic()
            _send(server, world, "Logged beside long syncs")
            _wait_for_subjects(world, ["Logged beside long syncs", "Warm-up"], seconds=LOGGED_WITHIN_SECONDS)
            assert time.monotonic() - sent_at < LOGGED_WITHIN_SECONDS
            assert queue.ping_worker(timeout=LOGGED_WITHIN_SECONDS) is not None
        assert len(entered) == WORKER_THREADS  # the syncs were still running throughout
    finally:
        finish_syncs.set()
        queue.close()
