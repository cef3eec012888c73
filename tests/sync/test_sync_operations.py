"""Sync around the edges: dropped connections, removing one's mail, the admin's default labels, the CLI."""

from __future__ import annotations

import datetime as dt
import json
import mailbox as stdlib_mailbox
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import run_touchline
from tests.mailboxes.tcp_proxy import cutting_proxy
from tests.services.smtp_sink import SmtpSink
from tests.sync.conftest import CUSTOMER, INTERNAL, SyncWorld, message
from touchline.config import Settings
from touchline.db import session_scope
from touchline.inbound.fetch import folders as fetch_folders
from touchline.mailboxes import service as mailboxes
from touchline.mailboxes.providers.base import TransientError
from touchline.models import BackgroundTask, Mailbox, MailboxFolder
from touchline.worker import current_queue

pytestmark = pytest.mark.dovecot

NOW = dt.datetime.now(dt.UTC)


def test_a_connection_dropped_mid_fetch_loses_nothing(
    world: SyncWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id, imap = world.add_user("sam")
    for number in range(7):
        world.dovecot.append(imap, "INBOX", message(f"Message {number}"), received_at=NOW)
    mailbox_id = world.connect(user_id, imap)
    monkeypatch.setattr(fetch_folders, "BATCH_SIZE", 2)
    with cutting_proxy(world.dovecot.host, world.dovecot.imap_port) as proxy:
        with session_scope(world.sessions) as session:
            row = session.get(Mailbox, mailbox_id)
            assert row is not None
            row.connection = {**row.connection, "port": proxy.port}
        # A batch of two is two header FETCH responses, then two body FETCH responses: cut in batch two.
        proxy.cut_at(b" FETCH (", occurrence=6)
        with pytest.raises(TransientError):
            world.sync(mailbox_id)
        partial = world.subjects()
        assert 0 < len(partial) < 7  # the batches before the cut were stored with their checkpoint
        with session_scope(world.sessions) as session:
            row = session.get(Mailbox, mailbox_id)
            assert row is not None
            assert (row.last_error or "").startswith("retrying")
        report = world.sync(mailbox_id)
    assert report.error is None
    assert world.subjects() == [f"Message {number}" for number in range(7)]


def test_removing_my_synced_emails_keeps_what_colleagues_hold(world: SyncWorld) -> None:
    sam_id, sam = world.add_user("sam")
    kim_id, kim = world.add_user("kim")
    shared = message("Shared", message_id=f"<shared@{CUSTOMER}>")
    world.dovecot.append(sam, "INBOX", shared, received_at=NOW)
    world.dovecot.append(kim, "INBOX", shared, received_at=NOW)
    world.dovecot.append(sam, "INBOX", message("Only Sam's"), received_at=NOW)
    for user_id, imap in ((sam_id, sam), (kim_id, kim)):
        world.sync(world.connect(user_id, imap))
    assert world.subjects() == ["Only Sam's", "Shared"]
    with session_scope(world.sessions) as session:
        outcome = mailboxes.remove_synced_emails(session, world.operator, sam_id)
    assert outcome == {"deleted": 1, "kept_for_others": 1}
    records = world.emails()
    assert [(r["subject"], r["holders"]) for r in records] == [("Shared", [f"kim@{INTERNAL}"])]


def _folders(world: SyncWorld, mailbox_id: uuid.UUID) -> dict[str, bool]:
    with session_scope(world.sessions) as session:
        rows = session.scalars(select(MailboxFolder).where(MailboxFolder.mailbox_id == mailbox_id))
        return {row.name: row.selected for row in rows if row.name in {"INBOX", "Gesendet", "Projects"}}


def _apply(world: SyncWorld, *, inbox: bool, sent: bool) -> BackgroundTask:
    with session_scope(world.sessions) as session:
        settings = mailboxes.workspace_service.get_settings(session, world.operator)
        settings.default_sync_inbox, settings.default_sync_sent = inbox, sent
        task = mailboxes.start_apply_default_labels(session, world.operator)
        task_id = task.id
    queue = current_queue()
    queue.start_in_process(workers=1, periodic=False)
    try:
        deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
        while dt.datetime.now(dt.UTC) < deadline:
            with session_scope(world.sessions) as session:
                task = session.get(BackgroundTask, task_id)
                assert task is not None
                if task.status in {"done", "failed"}:
                    return task
            import time

            time.sleep(0.1)
    finally:
        queue.stop_in_process()
    raise AssertionError("the apply job did not finish")


def test_apply_to_all_users_overrides_inbox_and_sent_only(world: SyncWorld) -> None:
    sam_id, sam = world.add_user("sam")
    world.dovecot.create_folder(sam, "Projects")
    sam_mailbox = world.connect(sam_id, sam)
    world.select(sam_mailbox, "Projects", "INBOX")  # Sam's own choice: Projects and Inbox, not Sent
    world.add_user("lee")  # no mailbox connected

    task = _apply(world, inbox=False, sent=True)
    assert (task.status, task.done, task.total) == ("done", 2, 2)
    assert task.result == {"changed": 1, "no mailbox": 1}
    assert _folders(world, sam_mailbox) == {"INBOX": False, "Gesendet": True, "Projects": True}

    # Users added after an apply are not affected until the admin applies again.
    kim_id, kim = world.add_user("kim")
    kim_mailbox = world.connect(kim_id, kim)  # a new connection starts with Inbox and Sent
    assert _folders(world, kim_mailbox) == {"INBOX": True, "Gesendet": True}
    task = _apply(world, inbox=True, sent=False)
    assert task.total == 3
    assert _folders(world, sam_mailbox) == {"INBOX": True, "Gesendet": False, "Projects": True}
    assert _folders(world, kim_mailbox) == {"INBOX": True, "Gesendet": False}


def test_operator_connects_syncs_and_lists_from_the_command_line(
    world: SyncWorld, settings: Settings, smtp_sink: SmtpSink
) -> None:
    _, imap = world.add_user("sam")
    smtp_sink.username, smtp_sink.password = imap.username, imap.password
    world.dovecot.append(
        imap, "INBOX", message("Contract renewal", message_id=f"<renewal@{CUSTOMER}>"), received_at=NOW
    )

    def connect(password: str) -> subprocess.CompletedProcess[str]:
        return run_touchline(
            settings,
            *("mailbox", "connect-imap", "--workspace", str(world.workspace_id), "--user", f"sam@{INTERNAL}"),
            *("--host", "127.0.0.1", "--port", str(world.dovecot.imap_port), "--security", "plain"),
            *("--username", imap.username, "--password-stdin"),
            *("--smtp-host", "127.0.0.1", "--smtp-port", str(smtp_sink.port), "--smtp-security", "plain"),
            stdin=password + "\n",
        )

    connected = connect(imap.password)
    assert connected.returncode == 0, connected.stderr
    assert "5 folders; syncing Gesendet, INBOX" in connected.stdout
    refused = connect("wrong")
    assert refused.returncode == 1
    assert "could not sign in" in refused.stderr

    synced = run_touchline(settings, "sync", "--user", f"sam@{INTERNAL}", "--once")
    assert synced.returncode == 0, synced.stderr
    assert "1 checked, 1 kept, 0 ignored, 0 quarantined" in synced.stdout

    listed = run_touchline(settings, "mailbox", "list", "--workspace", str(world.workspace_id))
    assert "connected" in listed.stdout

    lines = run_touchline(
        settings, "emails", "list", "--workspace", str(world.workspace_id), "--json"
    ).stdout.splitlines()
    record = json.loads(lines[0])
    assert record["message_id"] == f"renewal@{CUSTOMER}"
    assert record["holders"] == [f"sam@{INTERNAL}"]
    assert record["folders"] == ["INBOX"]
    assert record["companies"] == [str(world.company_id)]
    assert record["source"] == "sync"
    assert record["unassigned"] is False
    assert {"subject", "date", "contacts", "conversation_id"} <= record.keys()


def test_mail_import_goes_through_the_same_pipeline(
    world: SyncWorld, settings: Settings, tmp_path: Path
) -> None:
    world.add_user("sam")
    box = stdlib_mailbox.mbox(tmp_path / "export.mbox")
    box.add(message("Imported question", message_id=f"<q@{CUSTOMER}>"))
    box.add(
        message(
            "Re: Imported question",
            sender=f"sam@{INTERNAL}",
            to=f"jane.doe@{CUSTOMER}",
            in_reply_to=f"<q@{CUSTOMER}>",
        )
    )
    box.add(message("Not a customer", sender="someone@elsewhere.example"))
    box.add(b"\xff\xfe not a message at all")
    box.flush()
    imported = run_touchline(
        settings, "import", "mail", str(tmp_path / "export.mbox"), "--user", f"sam@{INTERNAL}"
    )
    assert imported.returncode == 1, imported.stderr  # the item that is no message is reported
    assert "4 read: 2 kept (2 new), 1 not customer mail, 0 quarantined, 1 unreadable" in imported.stdout
    assert "no readable header fields" in imported.stdout
    records = world.emails()
    assert {r["source"] for r in records} == {"import"}
    assert len({r["conversation_id"] for r in records}) == 1
