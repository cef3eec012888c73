"""Storing a batch at once gives the store that storing its messages one by one gives, also when
another worker stores the same mail at the same moment or one message of the batch cannot be stored."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.sync.conftest import CUSTOMER, message
from touchline.db import session_scope
from touchline.inbound import reading
from touchline.inbound.importing import import_messages
from touchline.inbound.store import conversations
from touchline.inbound.store import service as store
from touchline.inbound.timeline import email_records
from touchline.kit.crypto import SecretBox
from touchline.models import Company, Contact, Conversation, Email, QuarantinedMessage
from touchline.workspace import service
from touchline.workspace.permissions import Actor

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def _mail() -> list[tuple[str, bytes]]:
    """Threads with replies before their parents, a message joining two threads, repeats, new contacts."""
    rng = random.Random(5)
    mail = []
    for number in range(60):
        parent = rng.randrange(number) if number and rng.random() < 0.6 else None
        second = rng.randrange(number) if number > 5 and rng.random() < 0.1 else None
        references = " ".join(f"<m{n}@{CUSTOMER}>" for n in (second, parent) if n is not None)
        raw = message(
            f"Re: Topic {number % 7}" if parent is not None else f"Topic {number % 7}",
            sender=f"Person {number % 9} <p{number % 9}@{CUSTOMER}>",
            message_id=f"<m{number}@{CUSTOMER}>",
            sent_at=START + dt.timedelta(hours=number),
            body=f"Message {number}\n",
        )
        if references:
            threading = f"References: {references}\nIn-Reply-To: <m{parent}@{CUSTOMER}>\n"
            raw = raw.replace(b"Subject:", threading.encode() + b"Subject:", 1)
        mail.append((f"mail/INBOX/{number}", raw))
    rng.shuffle(mail)
    return mail + mail[:5]  # the same messages again, later in the same batch


def _workspace(sessions: sessionmaker[Session], box: SecretBox, name: str) -> tuple[uuid.UUID, uuid.UUID]:
    with session_scope(sessions) as session:
        team_domain = name.lower().replace(" ", "-") + ".example"
        workspace = service.create_workspace(
            session, box, name, internal_domains=[team_domain], inbound_domain="log.test.example"
        )
        operator = Actor.operator(workspace.id)
        service.create_company(session, operator, "Customer", domains=[CUSTOMER])
        user = service.add_user(session, operator, f"sam@{team_domain}", role="Member")
        return workspace.id, user.id


def _snapshot(sessions: sessionmaker[Session], workspace_id: uuid.UUID) -> dict[str, Any]:
    with session_scope(sessions) as session:
        records = email_records(session, workspace_id)
        conversations_of: dict[object, int] = {}
        for record in sorted(records, key=lambda r: str(r["message_id"])):
            conversations_of.setdefault(record["conversation_id"], len(conversations_of))
        latest = dict(
            session.execute(
                select(Conversation.id, Conversation.last_message_at).where(
                    Conversation.workspace_id == workspace_id
                )
            ).all()
        )
        return {
            "emails": sorted(
                (
                    str(r["message_id"]),
                    len(r["companies"]),
                    tuple(r["contacts"]),
                    len(r["holders"]),
                    conversations_of[r["conversation_id"]],
                )
                for r in records
            ),
            "conversations": len(latest),
            "latest": sorted(str(moment) for moment in latest.values()),
            "company_touch": session.scalar(
                select(Company.last_touch_at).where(Company.workspace_id == workspace_id)
            ),
            "contacts": sorted(
                session.execute(
                    select(Contact.email, Contact.last_touch_at).where(Contact.workspace_id == workspace_id)
                ).all()
            ),
        }


def test_a_batch_stores_what_one_message_at_a_time_stores(
    sessions: sessionmaker[Session], box: SecretBox
) -> None:
    mail = _mail()
    batched, batched_user = _workspace(sessions, box, "Batched")
    one_by_one, one_user = _workspace(sessions, box, "One by one")

    report = import_messages(sessions, batched, batched_user, mail)
    for label, raw in mail:
        import_messages(sessions, one_by_one, one_user, [(label, raw)])

    assert (report.read, report.kept, report.quarantined) == (65, 65, 0)
    expected = _snapshot(sessions, one_by_one)
    assert len(expected["emails"]) == 60
    assert 1 < expected["conversations"] < 60
    assert _snapshot(sessions, batched) == expected


def test_an_email_another_worker_stored_meanwhile_is_joined_not_doubled(
    sessions: sessionmaker[Session], box: SecretBox, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace_id, user_id = _workspace(sessions, box, "Racing")
    parent = message("Renewal", message_id=f"<parent@{CUSTOMER}>")
    reply = message("Re: Renewal", message_id=f"<reply@{CUSTOMER}>", in_reply_to=f"<parent@{CUSTOMER}>")
    import_messages(sessions, workspace_id, user_id, [("first", parent)])

    # The batch's look-ups miss what the other worker committed just before: its inserts meet the
    # stored email and the stored thread key, and it is stored again from what is there now.
    real_emails, real_links = store._BatchWriter._stored_emails, conversations._stored_links
    misses = {"emails": 1, "links": 1}

    def stale_emails(self: Any, keys: Any) -> Any:
        if misses["emails"]:
            misses["emails"] -= 1
            return {}
        return real_emails(self, keys)

    def stale_links(session: Session, workspace: uuid.UUID, keys: Any) -> Any:
        if misses["links"]:
            misses["links"] -= 1
            return {}
        return real_links(session, workspace, keys)

    monkeypatch.setattr(store._BatchWriter, "_stored_emails", stale_emails)
    report = import_messages(sessions, workspace_id, user_id, [("again", parent)])
    assert report.kept == 1
    assert misses["emails"] == 0
    monkeypatch.setattr(conversations, "_stored_links", stale_links)
    report = import_messages(sessions, workspace_id, user_id, [("reply", reply)])
    assert report.kept == 1
    assert misses["links"] == 0

    with session_scope(sessions) as session:
        records = email_records(session, workspace_id)
        assert session.scalar(select(func.count()).select_from(QuarantinedMessage)) == 0
    assert sorted(r["message_id"] for r in records) == [f"parent@{CUSTOMER}", f"reply@{CUSTOMER}"]
    assert len({r["conversation_id"] for r in records}) == 1


def _choke_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    real = reading.shown_of

    def choking(parsed: Any) -> Any:
        if parsed.subject == "Poison":
            raise RuntimeError("the reading choked")
        return real(parsed)

    monkeypatch.setattr(reading, "shown_of", choking)


def _choke_storing(monkeypatch: pytest.MonkeyPatch) -> None:
    real = store._email_row

    def choking(*args: Any) -> Any:
        if args[3].parsed.subject == "Poison":  # the email's first copy
            raise RuntimeError("the storing choked")
        return real(*args)

    monkeypatch.setattr(store, "_email_row", choking)


@pytest.mark.parametrize(
    ("stage", "choke"),
    [("reading", _choke_reading), ("storing", _choke_storing)],
    ids=["cannot-be-read", "cannot-be-stored"],
)
def test_a_message_that_fails_costs_only_itself(
    sessions: sessionmaker[Session],
    box: SecretBox,
    monkeypatch: pytest.MonkeyPatch,
    stage: str,
    choke: Any,
) -> None:
    """Whether reading it fails (parsing, snippet, sanitising) or storing its batch does."""
    workspace_id, user_id = _workspace(sessions, box, f"Poisoned {stage}")
    choke(monkeypatch)
    mail = [(name, message(name)) for name in ("Before", "Poison", "After")]
    report = import_messages(sessions, workspace_id, user_id, mail)

    assert (report.kept, report.quarantined) == (2, 1)
    with session_scope(sessions) as session:
        subjects = sorted(session.scalars(select(Email.subject).where(Email.workspace_id == workspace_id)))
        reasons = list(
            session.scalars(
                select(QuarantinedMessage.reason).where(QuarantinedMessage.workspace_id == workspace_id)
            )
        )
    assert subjects == ["After", "Before"]
    assert reasons == [f"Poison: RuntimeError: the {stage} choked"]


def test_a_batch_whose_new_emails_cannot_be_named_in_their_job_leaves_nothing_behind(
    sessions: sessionmaker[Session], box: SecretBox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job that names newly stored emails (engagement finds replies among them) is part of the
    batch: when it cannot be recorded, the emails are not stored without it, nor stored and set aside
    at once; each is quarantined with why, and nothing of the batch stays behind."""
    workspace_id, user_id = _workspace(sessions, box, "Unnamed")

    def failing(*args: Any, **kwargs: Any) -> None:
        raise KeyError("no job named 'mail.stored'; declare it with @job")

    monkeypatch.setattr(store, "enqueue", failing)
    mail = [(name, message(name)) for name in ("First", "Second")]
    report = import_messages(sessions, workspace_id, user_id, mail)

    assert (report.kept, report.quarantined) == (0, 2)
    with session_scope(sessions) as session:
        stored = session.scalar(select(func.count(Email.id)).where(Email.workspace_id == workspace_id))
        reasons = sorted(
            session.scalars(
                select(QuarantinedMessage.reason).where(QuarantinedMessage.workspace_id == workspace_id)
            )
        )
    assert stored == 0
    assert len(reasons) == 2
    assert all("mail.stored" in reason for reason in reasons)


def _store_raw(
    sessions: sessionmaker[Session], workspace_id: uuid.UUID, user_id: uuid.UUID, raws: list[bytes]
) -> None:
    from touchline.inbound.store.directory import directories

    with session_scope(sessions) as session:
        directory = directories.get(session, workspace_id)
        store.store_raw_messages(
            session,
            workspace_id,
            directory,
            [store.RawIncoming(raw, store.Holding(user_id=user_id, via="sync"), label="") for raw in raws],
            source="sync",
        )


def test_a_directory_told_of_the_contacts_a_batch_creates_stays_current_without_a_reload(
    sessions: sessionmaker[Session], box: SecretBox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from touchline.inbound.store import directory as cache

    workspace_id, user_id = _workspace(sessions, box, "Told Co")
    loads: list[uuid.UUID] = []
    original = cache.load_directory

    def counted(session: Session, wanted: uuid.UUID) -> Any:
        loads.append(wanted)
        return original(session, wanted)

    monkeypatch.setattr(cache, "load_directory", counted)

    def first_batch(number: int) -> list[bytes]:
        return [
            message(f"New person {number}-{n}", sender=f"New {n} <new{number}.{n}@{CUSTOMER}>")
            for n in range(3)
        ]

    _store_raw(sessions, workspace_id, user_id, first_batch(1))
    _store_raw(sessions, workspace_id, user_id, first_batch(2))
    assert len(loads) == 1  # the second batch found the directory current, contacts and all
    with session_scope(sessions) as session:
        current = cache.directories.get(session, workspace_id)
        fresh = original(session, workspace_id)
        contacts = set(session.scalars(select(Contact.email).where(Contact.workspace_id == workspace_id)))
    assert len(loads) == 1
    assert len(contacts) == 6
    for address in contacts:
        assert current.standing(address) == fresh.standing(address)

    # A change by hand is read once; the batch after it keeps that directory current.
    with session_scope(sessions) as session:
        service.create_contact(session, Actor.operator(workspace_id), f"by.hand@{CUSTOMER}")
    _store_raw(sessions, workspace_id, user_id, first_batch(3))
    assert len(loads) == 2

    # A change committed after the batch was told its directory: that directory lacks it, so it is
    # read again instead of being advanced past it. (The change commits between the two writing
    # transactions: on SQLite a writing transaction holds the write lock from its start.)
    with session_scope(sessions) as session:
        told = cache.directories.get(session, workspace_id)
    with session_scope(sessions) as other:
        service.create_contact(other, Actor.operator(workspace_id), f"meanwhile@{CUSTOMER}")
    with session_scope(sessions) as session:
        store.store_raw_messages(
            session,
            workspace_id,
            told,
            [
                store.RawIncoming(raw, store.Holding(user_id=user_id, via="sync"), label="")
                for raw in first_batch(4)
            ],
            source="sync",
        )
    with session_scope(sessions) as session:
        current = cache.directories.get(session, workspace_id)
    assert len(loads) == 3
    assert current.standing(f"meanwhile@{CUSTOMER}").is_contact
    assert current.standing(f"new4.0@{CUSTOMER}").is_contact


def test_a_batch_is_stored_with_its_callers_transaction_or_not_at_all(
    sessions: sessionmaker[Session], box: SecretBox
) -> None:
    """Sync commits a batch together with its folder's checkpoint: when that fails, neither stays."""
    from touchline.inbound.store.directory import directories

    workspace_id, user_id = _workspace(sessions, box, "Rolled back")
    raws = [message(f"Topic {number}", message_id=f"<rb{number}@{CUSTOMER}>") for number in range(3)]
    stored: list[int] = []
    holding = store.Holding(user_id=user_id, via="sync")

    def store_then_fail_the_checkpoint() -> None:
        with session_scope(sessions) as session:
            directory = directories.get(session, workspace_id)
            outcome = store.store_raw_messages(
                session,
                workspace_id,
                directory,
                [store.RawIncoming(raw, holding, label="") for raw in raws],
                source="sync",
            )
            stored.append(outcome.stored_new)
            raise RuntimeError("the checkpoint could not be written")

    with pytest.raises(RuntimeError, match="checkpoint"):
        store_then_fail_the_checkpoint()
    assert stored == [3]

    with session_scope(sessions) as session:
        assert email_records(session, workspace_id) == []
        contacts = select(func.count()).select_from(Contact).where(Contact.workspace_id == workspace_id)
        assert session.scalar(contacts) == 0
