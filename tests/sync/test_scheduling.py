"""When the next sync may run: Retry-After, growing backoff after failures, and the minute scheduler."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from tests.sync.conftest import SyncWorld
from touchline.db import session_scope
from touchline.inbound.fetch.service import sync_mailbox
from touchline.inbound.fetch.tasks import schedule_syncs
from touchline.mailboxes import service as mailboxes
from touchline.mailboxes.providers.base import Folder, HeaderBatch, RateLimited, SpecialUse, TransientError
from touchline.models import Mailbox
from touchline.worker import current_queue


class FailingProvider:
    """A provider whose every listing fails as told; sync must record it and wait before trying again."""

    kind = "imap"

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.closed = False

    def list_folders(self) -> list[Folder]:
        return [Folder("INBOX", "INBOX", SpecialUse.INBOX)]

    def fetch_new_headers(self, folder_id: str, cursor: object, **_: Any) -> Iterator[HeaderBatch[Any]]:
        raise self.error
        yield  # pragma: no cover -- makes this a generator like a real provider

    def fetch_raw_messages(self, folder_id: str, message_ids: Sequence[str]) -> list[Any]:
        return []

    def cursor_from_json(self, data: Mapping[str, object]) -> Any:
        return data

    def close(self) -> None:
        self.closed = True


def _mailbox(world: SyncWorld) -> uuid.UUID:
    user_id, _ = world.add_user("sam")
    with session_scope(world.sessions) as session:
        mailbox = mailboxes.connect_mailbox(
            session,
            world.operator,
            world.box,
            user_id=user_id,
            provider="imap",
            address="sam@x.example",
            connection={"host": "127.0.0.1", "port": 1, "security": "plain", "username": "sam"},
            credentials={"password": "p"},
            folders=[Folder("INBOX", "INBOX", SpecialUse.INBOX)],
        )
        return mailbox.id


def _row(world: SyncWorld, mailbox_id: uuid.UUID) -> Mailbox:
    with session_scope(world.sessions) as session:
        row = session.get(Mailbox, mailbox_id)
        assert row is not None
        return row


def test_a_rate_limit_waits_for_retry_after(world: SyncWorld) -> None:
    mailbox_id = _mailbox(world)
    provider = FailingProvider(RateLimited("quota exceeded", retry_after_seconds=120))
    report = sync_mailbox(world.sessions, world.box, mailbox_id, provider_factory=lambda *_: provider)
    assert report.retry_after_seconds == 120
    assert provider.closed
    row = _row(world, mailbox_id)
    assert row.status == "connected"
    assert row.last_synced_at is None
    assert row.sync_not_before is not None
    wait = (row.sync_not_before - dt.datetime.now(dt.UTC)).total_seconds()
    assert 100 < wait <= 120


def test_failures_back_off_and_success_resets(world: SyncWorld) -> None:
    mailbox_id = _mailbox(world)
    waits = []
    for _ in range(3):
        with pytest.raises(TransientError):
            sync_mailbox(
                world.sessions,
                world.box,
                mailbox_id,
                provider_factory=lambda *_: FailingProvider(TransientError("connection reset")),
            )
        row = _row(world, mailbox_id)
        assert row.sync_not_before is not None
        waits.append(round((row.sync_not_before - dt.datetime.now(dt.UTC)).total_seconds() / 30))
    assert waits == [1, 2, 4]
    assert (_row(world, mailbox_id).last_error or "").startswith("retrying: connection reset")


def test_the_scheduler_skips_mailboxes_that_must_wait(world: SyncWorld) -> None:
    waiting, due = _mailbox(world), None
    user_id, _ = world.add_user("kim")
    with session_scope(world.sessions) as session:
        due = mailboxes.connect_mailbox(
            session,
            world.operator,
            world.box,
            user_id=user_id,
            provider="imap",
            address="kim@x.example",
            connection={"host": "127.0.0.1", "port": 1, "security": "plain", "username": "kim"},
            credentials={"password": "p"},
            folders=[],
        ).id
        row = session.get(Mailbox, waiting)
        assert row is not None
        row.sync_not_before = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    queue = current_queue()
    syncs = queue.lanes["long"]  # syncs run in the long jobs' lane
    syncs.flush()
    schedule_syncs(queue.context)
    queued = [message.kwargs["mailbox_id"] for message in syncs.pending()]
    assert queued == [str(due)]
