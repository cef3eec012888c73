"""Mailbox sync against a real Dovecot: look-back, incremental, folders, UIDVALIDITY, flags, holders."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.sync.conftest import CUSTOMER, INTERNAL, SyncWorld, message

pytestmark = pytest.mark.dovecot

NOW = dt.datetime.now(dt.UTC)


def test_first_sync_keeps_customer_mail_within_the_look_back(world: SyncWorld) -> None:
    user_id, imap = world.add_user("sam")
    world.dovecot.append(imap, "INBOX", message("Renewal question"), received_at=NOW - dt.timedelta(days=2))
    world.dovecot.append(imap, "INBOX", message("Ancient thread"), received_at=NOW - dt.timedelta(days=200))
    world.dovecot.append(
        imap,
        "INBOX",
        message("Lunch?", sender=f"Kim <kim@{INTERNAL}>"),
        received_at=NOW - dt.timedelta(days=1),
    )
    world.dovecot.append(
        imap, "INBOX", message("Newsletter", sender="news@unknown-vendor.example"), received_at=NOW
    )
    mailbox_id = world.connect(user_id, imap)
    report = world.sync(mailbox_id)
    assert report.error is None
    assert report.seen == 3  # the 200-day-old message is outside the 90-day window
    assert world.subjects() == ["Renewal question"]
    record = world.emails()[0]
    assert record["companies"] == [str(world.company_id)]
    assert record["contacts"] == [f"jane.doe@{CUSTOMER}"]
    assert record["holders"] == [f"sam@{INTERNAL}"]
    assert record["folders"] == ["INBOX"]
    assert record["source"] == "sync"
    assert record["rule"]


def test_incremental_sync_reads_only_new_mail_and_leaves_flags_alone(world: SyncWorld) -> None:
    user_id, imap = world.add_user("sam")
    first = world.dovecot.append(imap, "INBOX", message("First"), received_at=NOW)
    mailbox_id = world.connect(user_id, imap)
    world.sync(mailbox_id)
    second = world.dovecot.append(imap, "INBOX", message("Second"), received_at=NOW)
    report = world.sync(mailbox_id)
    assert report.seen == 1
    assert world.subjects() == ["First", "Second"]
    assert world.sync(mailbox_id).seen == 0
    for uid in (first, second):
        assert b"\\Seen" not in world.dovecot.flags(imap, "INBOX", uid)


def test_folder_selection_is_obeyed(world: SyncWorld) -> None:
    user_id, imap = world.add_user("sam")
    world.dovecot.create_folder(imap, "Projects")
    world.dovecot.append(imap, "Projects", message("Project kickoff"), received_at=NOW)
    world.dovecot.append(imap, "INBOX", message("Inbox hello"), received_at=NOW)
    mailbox_id = world.connect(user_id, imap)
    world.sync(mailbox_id)
    assert world.subjects() == ["Inbox hello"]  # Projects is not selected by default

    world.select(mailbox_id, "INBOX", "Projects")
    world.sync(mailbox_id)
    assert world.subjects() == ["Inbox hello", "Project kickoff"]

    world.select(mailbox_id, "Projects")  # Inbox deselected
    world.dovecot.append(imap, "INBOX", message("After deselect"), received_at=NOW)
    world.sync(mailbox_id)
    assert "After deselect" not in world.subjects()


def test_a_uidvalidity_change_remaps_without_duplicates_or_loss(world: SyncWorld) -> None:
    user_id, imap = world.add_user("sam")
    world.dovecot.append(imap, "INBOX", message("Before"), received_at=NOW)
    mailbox_id = world.connect(user_id, imap)
    world.sync(mailbox_id)
    world.dovecot.renumber_folder(imap, "INBOX")
    world.dovecot.append(imap, "INBOX", message("After"), received_at=NOW)
    report = world.sync(mailbox_id)
    assert report.error is None
    assert world.subjects() == ["After", "Before"]


def test_two_users_holding_the_same_email_store_it_once(world: SyncWorld) -> None:
    sam_id, sam = world.add_user("sam")
    kim_id, kim = world.add_user("kim")
    shared = message("Shared thread", to=f"sam@{INTERNAL}, kim@{INTERNAL}", message_id=f"<shared@{CUSTOMER}>")
    world.dovecot.append(sam, "INBOX", shared, received_at=NOW)
    world.dovecot.append(kim, "INBOX", shared, received_at=NOW)
    for user_id, imap in ((sam_id, sam), (kim_id, kim)):
        world.sync(world.connect(user_id, imap))
    records = world.emails()
    assert len(records) == 1
    assert records[0]["holders"] == [f"kim@{INTERNAL}", f"sam@{INTERNAL}"]


def test_replies_thread_into_one_conversation(world: SyncWorld) -> None:
    user_id, imap = world.add_user("sam")
    world.dovecot.append(imap, "INBOX", message("Question", message_id=f"<q1@{CUSTOMER}>"), received_at=NOW)
    world.dovecot.append(
        imap,
        "Gesendet",  # the server's Sent folder (SPECIAL-USE \\Sent), found whatever its name
        message(
            "Re: Question",
            sender=f"Sam <sam@{INTERNAL}>",
            to=f"jane.doe@{CUSTOMER}",
            in_reply_to=f"<q1@{CUSTOMER}>",
        ),
        received_at=NOW,
    )
    world.sync(world.connect(user_id, imap))
    records = world.emails()
    assert len(records) == 2
    assert records[0]["conversation_id"] == records[1]["conversation_id"] is not None
