"""The demo's IMAP server serves each demo user a mailbox that touchline's own IMAP client connects to,
lists and syncs: the demo customers' mail is kept, the rest ignored."""

from __future__ import annotations

import smtplib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from touchline.config import Settings
from touchline.db import session_scope
from touchline.demo import DEMO_ADMIN, DEMO_MEMBER, DEMO_USERS, ensure_demo_workspace, start_demo_sink
from touchline.demo_imap import DEMO_IMAP_HOST, DemoImapServer, demo_mailbox, start_demo_imap
from touchline.inbound.fetch.service import SyncReport, sync_mailbox
from touchline.inbound.timeline import email_records
from touchline.kit.crypto import SecretBox
from touchline.kit.net import AddressPolicy
from touchline.mailboxes import service as mailboxes
from touchline.mailboxes.connect import imap_account
from touchline.mailboxes.providers.base import SpecialUse
from touchline.mailboxes.providers.imap import ImapProvider
from touchline.models import Mailbox, User
from touchline.worker import configure_queue
from touchline.workspace.permissions import Actor

LOOPBACK = AddressPolicy(allow_private=True)


@pytest.fixture
def demo_imap(tmp_path: Path) -> Iterator[DemoImapServer]:
    server = start_demo_imap(tmp_path / "demo-data", DEMO_USERS)
    yield server
    server.stop()


def _connection(server: DemoImapServer, username: str) -> dict[str, object]:
    return {"host": server.host, "port": server.port, "security": "plain", "username": username}


def test_each_demo_user_has_inbox_sent_and_archive_with_customer_and_other_mail(
    demo_imap: DemoImapServer,
) -> None:
    assert demo_imap.host == DEMO_IMAP_HOST
    assert [account.username for account in demo_imap.accounts] == [DEMO_ADMIN, DEMO_MEMBER]
    for account in demo_imap.accounts:
        with ImapProvider(
            imap_account(_connection(demo_imap, account.username), account.password, LOOPBACK)
        ) as imap:
            folders = {folder.name: folder.special_use for folder in imap.list_folders()}
        assert folders == {"INBOX": SpecialUse.INBOX, "Sent": SpecialUse.SENT, "Archive": SpecialUse.ARCHIVE}
    generated = demo_mailbox(DEMO_ADMIN, "Demo Admin", datetime.now(UTC))
    assert {message.folder for message in generated} == {"INBOX", "Sent", "Archive"}
    assert any(message.customer for message in generated)
    assert any(not message.customer for message in generated)
    senders = {
        str(message_from_bytes(message.raw, policy=policy.default)["From"]).rsplit("@", 1)[1].rstrip(">")
        for message in generated
    }
    # Only the demo's own domains and reserved example domains: no real person's address.
    assert all(
        domain.endswith((".example", "example.com", ".example.net", ".example.org")) for domain in senders
    )


def test_a_wrong_password_is_refused(demo_imap: DemoImapServer) -> None:
    from touchline.mailboxes.providers.base import AuthError

    with (
        pytest.raises(AuthError),
        ImapProvider(imap_account(_connection(demo_imap, DEMO_ADMIN), "not-the-password", LOOPBACK)) as imap,
    ):
        imap.list_folders()


def test_the_mail_is_written_once_and_served_again_after_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo-data"
    first = start_demo_imap(data_dir, DEMO_USERS)
    try:
        account = first.accounts[0]
        with ImapProvider(
            imap_account(_connection(first, account.username), account.password, LOOPBACK)
        ) as imap:
            [batch] = list(imap.fetch_new_headers("INBOX", None, since=datetime(2000, 1, 1, tzinfo=UTC)))
    finally:
        first.stop()
    again = start_demo_imap(data_dir, DEMO_USERS)
    try:
        assert again.accounts == first.accounts  # the same passwords: a connected mailbox keeps working
        with ImapProvider(
            imap_account(_connection(again, account.username), account.password, LOOPBACK)
        ) as imap:
            [unchanged] = list(imap.fetch_new_headers("INBOX", None, since=datetime(2000, 1, 1, tzinfo=UTC)))
    finally:
        again.stop()
    assert [m.provider_message_id for m in unchanged.messages] == [
        m.provider_message_id for m in batch.messages
    ]
    assert unchanged.cursor == batch.cursor


def test_syncing_a_demo_mailbox_keeps_the_customers_mail_and_ignores_the_rest(
    demo_imap: DemoImapServer, settings: Settings, sessions: sessionmaker[Session], box: SecretBox
) -> None:
    queue = configure_queue(settings)
    try:
        with session_scope(sessions) as session:
            ensure_demo_workspace(session, box, settings, "demo-password")
        account = demo_imap.accounts[1]  # casey, a Member
        connection = _connection(demo_imap, account.username)
        with ImapProvider(imap_account(connection, account.password, LOOPBACK)) as imap:
            folders = imap.list_folders()
        with session_scope(sessions) as session:
            user = session.scalars(select(User).where(User.email == account.username)).one()
            operator = Actor.operator(user.workspace_id)
            mailbox = mailboxes.connect_mailbox(
                session,
                operator,
                box,
                user_id=user.id,
                provider="imap",
                address=account.username,
                connection=connection,
                credentials={"password": account.password},
                folders=folders,
            )
            mailboxes.select_folders(session, operator, mailbox.id, {folder.id for folder in mailbox.folders})
            mailbox_id, workspace_id = mailbox.id, user.workspace_id
        counted: dict[str, int] = {}

        def progress(folder: str, count: int, so_far: SyncReport) -> None:
            counted[folder] = counted.get(folder, 0) + count
            assert so_far.seen == sum(counted.values())

        report = sync_mailbox(sessions, box, mailbox_id, progress=progress, settings=settings)
        expected = demo_mailbox(account.username, "Casey Member", datetime.now(UTC))
        assert report.error is None
        assert report.seen == len(expected) == sum(counted.values())
        assert report.kept == sum(message.customer for message in expected)
        assert report.seen - report.kept - report.quarantined == sum(not m.customer for m in expected) > 0
        with sessions() as session:
            stored = email_records(session, workspace_id)
            row = session.get_one(Mailbox, mailbox_id)
            # Where the Email page reads the counts while a sync runs.
            assert (row.sync_checked, row.sync_kept, row.sync_quarantined) == (
                report.seen,
                report.kept,
                report.quarantined,
            )
        subjects = {str(record["subject"]) for record in stored}
        assert "Training for the new team" in subjects  # from a contact
        assert "New warehouse contact" in subjects  # from an address of a customer's domain
        assert not subjects & {"Dinner on Friday?", "This week: five tips for calmer inboxes"}
        assert {folder for record in stored for folder in record["folders"]} == {"INBOX", "Sent", "Archive"}  # type: ignore[attr-defined]
        assert uuid.UUID(str(stored[0]["id"]))
    finally:
        queue.close()


def test_a_first_start_cut_short_writes_the_mail_again(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo-data"
    (data_dir / "demo-imap" / DEMO_ADMIN / ".Sent").mkdir(parents=True)  # left before accounts.json
    server = start_demo_imap(data_dir, DEMO_USERS)
    try:
        account = server.accounts[0]
        with ImapProvider(
            imap_account(_connection(server, account.username), account.password, LOOPBACK)
        ) as imap:
            [batch] = list(imap.fetch_new_headers("Sent", None, since=datetime(2000, 1, 1, tzinfo=UTC)))
    finally:
        server.stop()
    written = [m for m in demo_mailbox(DEMO_ADMIN, "Demo Admin", datetime.now(UTC)) if m.folder == "Sent"]
    assert len(batch.messages) == len(written)


def test_the_sink_takes_the_demo_mailboxes_logins_and_still_relays_without_one(tmp_path: Path) -> None:
    sink = start_demo_sink(tmp_path, {DEMO_ADMIN: "right-password"})
    try:
        letter = EmailMessage()
        letter["From"], letter["To"], letter["Subject"] = DEMO_ADMIN, "nancy@northwind-traders.example", "Hi"
        letter.set_content("Hello\n")
        with smtplib.SMTP(DEMO_IMAP_HOST, sink.port, timeout=30) as smtp:
            with pytest.raises(smtplib.SMTPAuthenticationError):
                smtp.login(DEMO_ADMIN, "wrong-password")
            smtp.login(DEMO_ADMIN, "right-password")
            smtp.send_message(letter)
        with smtplib.SMTP(
            DEMO_IMAP_HOST, sink.port, timeout=30
        ) as relay:  # the relay of users without a mailbox
            relay.send_message(letter)
        assert len(sink.received()) == 2
    finally:
        sink.stop()
