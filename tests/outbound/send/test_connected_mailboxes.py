"""Senders opened for mailboxes connected through touchline's OAuth flow, on the fake providers.

Connecting asks for reading only; "Allow sending" (connecting with `sending=True` here) adds the send
permission to the grant. The sender shares the mailbox's stored, encrypted tokens and writes refreshed
ones back, as sync does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import FakeClock
from tests.fakes.gmail import FakeGmail
from tests.fakes.graph import FakeGraph
from tests.mailboxes.messages import email_bytes
from tests.outbound.send.conftest import outgoing
from tests.sync.conftest import CUSTOMER, INTERNAL
from tests.sync.oauth_world import OAuthWorld, oauth_settings
from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.mailboxes.oauth import (
    GOOGLE_SCOPES,
    GOOGLE_SEND_SCOPES,
    MICROSOFT_SCOPES,
    MICROSOFT_SEND_SCOPES,
)
from touchline.mailboxes.oauth_connect import GOOGLE, MICROSOFT, OAuthAccountKind
from touchline.mailboxes.service import credentials_of
from touchline.models import Mailbox, OutboundEmail, User
from touchline.outbound.send import service as outbox
from touchline.outbound.send import tasks
from touchline.outbound.send.contract import DeliveryError
from touchline.outbound.send.delivery import VIA_MAILBOX, open_sender
from touchline.outbound.send.rest import open_api_sender
from touchline.worker import configure_queue
from touchline.workspace import service
from touchline.workspace.permissions import Actor
from touchline.workspace.service import actor_for

BOTH = pytest.mark.parametrize("kind", [GOOGLE, MICROSOFT], ids=["gmail", "graph"])
SEND_SCOPE = {
    GOOGLE: "https://www.googleapis.com/auth/gmail.send",
    MICROSOFT: "https://graph.microsoft.com/Mail.Send",
}


@pytest.fixture
def world(
    settings: Settings,
    sessions: sessionmaker[Session],
    box: SecretBox,
    fake_gmail: FakeGmail,
    fake_graph: FakeGraph,
    gmail_url: str,
    graph_url: str,
) -> Iterator[OAuthWorld]:
    queue = configure_queue(settings)  # connecting a mailbox queues its first sync
    with session_scope(sessions) as session:
        workspace = service.create_workspace(
            session, box, "Send Co", internal_domains=[INTERNAL], inbound_domain="log.test.example"
        )
        company = service.create_company(
            session, Actor.operator(workspace.id), "Customer", domains=[CUSTOMER]
        )
        ids = workspace.id, company.id
    yield OAuthWorld(
        oauth_settings(settings, gmail_url, graph_url), sessions, box, ids[0], ids[1], fake_gmail, fake_graph
    )
    queue.close()


def sent_count(world: OAuthWorld, kind: OAuthAccountKind) -> int:
    return len(world.gmail.state.sent) if kind is GOOGLE else len(world.graph.sent_items())


def stored_credentials(world: OAuthWorld, mailbox_id: uuid.UUID) -> dict[str, object]:
    with session_scope(world.sessions) as session:
        return dict(credentials_of(session.get_one(Mailbox, mailbox_id), world.box))


def test_connecting_asks_for_reading_and_allowing_sending_asks_for_the_send_permission() -> None:
    assert SEND_SCOPE[GOOGLE] not in GOOGLE_SCOPES
    assert SEND_SCOPE[MICROSOFT] not in MICROSOFT_SCOPES
    assert (SEND_SCOPE[GOOGLE],) == GOOGLE_SEND_SCOPES
    assert (SEND_SCOPE[MICROSOFT],) == MICROSOFT_SEND_SCOPES


@BOTH
def test_a_newly_connected_mailbox_sends_with_its_stored_tokens_and_keeps_refreshed_ones(
    world: OAuthWorld, kind: OAuthAccountKind
) -> None:
    mailbox_id = world.connect(world.add_user("sam"), kind, sending=True)
    world.oauth(kind).expire_access_tokens()
    before = stored_credentials(world, mailbox_id)
    message = outgoing()

    with session_scope(world.sessions) as session:
        mailbox = session.get_one(Mailbox, mailbox_id)
        sender = open_api_sender(mailbox, world.box, settings=world.settings, sessions=world.sessions)
    try:
        sender.deliver(message)
        assert sender.find_sent(message.message_id) is True
    finally:
        sender.close()

    assert sent_count(world, kind) == 1
    assert stored_credentials(world, mailbox_id)["access_token"] != before["access_token"]


@BOTH
def test_a_mailbox_connected_for_reading_only_is_refused_sending_until_it_is_allowed(
    world: OAuthWorld, kind: OAuthAccountKind
) -> None:
    mailbox_id = world.connect(world.add_user("sam"), kind)  # reading only, as connecting asks

    with session_scope(world.sessions) as session:
        mailbox = session.get_one(Mailbox, mailbox_id)
        sender = open_api_sender(mailbox, world.box, settings=world.settings, sessions=world.sessions)
    try:
        with pytest.raises(DeliveryError) as raised:
            sender.deliver(outgoing())
    finally:
        sender.close()

    assert not raised.value.temporary
    assert "Allow sending on Profile > Email" in raised.value.reason
    assert sent_count(world, kind) == 0
    report = world.sync(mailbox_id)  # reading goes on as before
    assert (report.status, report.error) == ("connected", None)


def test_imap_mailboxes_do_not_send_through_a_rest_api(world: OAuthWorld) -> None:
    with pytest.raises(ValueError, match="REST API"):
        open_api_sender(
            Mailbox(provider="imap", credentials_encrypted=""), world.box, settings=world.settings
        )


def queue_email(world: OAuthWorld, user_id: uuid.UUID, now: datetime) -> uuid.UUID:
    """An email composed by `user_id` from their own address, as the API and the CLI compose one."""
    with session_scope(world.sessions) as session:
        user = session.get_one(User, user_id)
        draft = outbox.Draft(
            sender=user.email,
            to=[outbox.Recipient(f"jane@{CUSTOMER}", "Jane")],
            subject="Your renewal",
            html="<p>Hello Jane</p>",
        )
        row = outbox.send_email(session, actor_for(user), draft, settings=world.settings, now=now)
        assert (row.via, row.status) == (VIA_MAILBOX, outbox.QUEUED)
        return row.id


def outbound(world: OAuthWorld, outbound_id: uuid.UUID) -> OutboundEmail:
    with session_scope(world.sessions) as session:
        row = session.get_one(OutboundEmail, outbound_id)
        session.expunge(row)
        return row


def searches_and_sends(world: OAuthWorld, kind: OAuthAccountKind) -> list[str]:
    """The fake's sending and Sent-lookup requests, in the order they came."""
    if kind is GOOGLE:
        return [
            "search" if "q" in params else "send"
            for path, params in world.gmail.state.requests
            if path.endswith("messages/send") or (path.endswith("/messages") and "q" in params)
        ]
    return [
        "search" if "$filter" in params else "send"
        for path, params, _ in world.graph.state.requests
        if path.endswith("/sendMail") or "$filter" in params
    ]


@BOTH
def test_an_email_queued_in_the_outbox_leaves_through_the_mailbox_s_own_api(
    world: OAuthWorld, kind: OAuthAccountKind
) -> None:
    sam = world.add_user("sam")
    mailbox_id = world.connect(sam, kind, sending=True)
    outbound_id = queue_email(world, sam, datetime.now(UTC))

    assert tasks.deliver(world.sessions, world.box, world.settings, outbound_id) == outbox.SENT

    row = outbound(world, outbound_id)
    assert (row.status, row.mailbox_id, row.error) == (outbox.SENT, mailbox_id, None)
    assert sent_count(world, kind) == 1
    if kind is GOOGLE:
        [(provider_id, stored)] = world.gmail.state.messages.items()
        assert row.provider_message_id == provider_id
        assert stored.raw == row.raw_message
    else:  # sendMail answers 202 with no id; the copy in Sent Items carries our Message-ID
        assert row.provider_message_id is None
        assert [item.internet_message_id for item in world.graph.sent_items()] == [row.message_id]
    assert row.email_id is not None  # the sent copy is on the timeline


def test_a_reply_leaves_in_the_sending_mailbox_s_gmail_thread_of_the_email_it_answers(
    world: OAuthWorld,
) -> None:
    sam = world.add_user("sam")
    world.connect(sam, GOOGLE, sending=True)
    question = email_bytes("Your renewal", sender=f"Jane <jane@{CUSTOMER}>")
    world.gmail.deliver(question, received_at=datetime.now(UTC), thread_id="thread-42")
    answered = str(message_from_bytes(question)["Message-ID"])
    outbound_id = queue_email(world, sam, datetime.now(UTC))
    with session_scope(world.sessions) as session:  # as a reply composed on the conversation is queued
        session.get_one(OutboundEmail, outbound_id).in_reply_to = answered

    assert tasks.deliver(world.sessions, world.box, world.settings, outbound_id) == outbox.SENT

    row = outbound(world, outbound_id)
    assert row.provider_message_id is not None
    assert world.gmail.state.messages[row.provider_message_id].thread_id == "thread-42"
    assert searches_and_sends(world, GOOGLE) == ["search", "send"]  # the thread looked up, then sent


@BOTH
def test_an_email_found_sending_after_a_crash_is_looked_up_in_sent_and_not_sent_again(
    world: OAuthWorld, kind: OAuthAccountKind
) -> None:
    sam = world.add_user("sam")
    world.connect(sam, kind, sending=True)
    clock = FakeClock()
    clock.now = datetime.now(UTC)
    outbound_id = queue_email(world, sam, clock.now)
    # The process claims the email, hands it over, and dies before recording the outcome.
    with session_scope(world.sessions) as session:
        held = outbox.claim(session, outbound_id, clock.now)
        assert held is not None
        mailbox = session.get_one(Mailbox, held.mailbox_id)
        sender = open_sender(mailbox, world.box, world.settings)
    try:
        sender.deliver(held.outgoing)
    finally:
        sender.close()
    assert searches_and_sends(world, kind) == ["send"]

    clock.advance(minutes=outbox.SENDING_LEASE.total_seconds() / 60 + 1)
    status = tasks.deliver(world.sessions, world.box, world.settings, outbound_id, clock=clock)

    assert status == outbox.SENT
    assert searches_and_sends(world, kind) == ["send", "search"]
    assert sent_count(world, kind) == 1


def test_an_email_whose_crashed_attempt_never_reached_gmail_is_sent_after_the_lookup(
    world: OAuthWorld,
) -> None:
    sam = world.add_user("sam")
    world.connect(sam, GOOGLE, sending=True)
    clock = FakeClock()
    clock.now = datetime.now(UTC)
    outbound_id = queue_email(world, sam, clock.now)
    with session_scope(world.sessions) as session:
        assert outbox.claim(session, outbound_id, clock.now) is not None  # and the process dies

    clock.advance(minutes=outbox.SENDING_LEASE.total_seconds() / 60 + 1)
    status = tasks.deliver(world.sessions, world.box, world.settings, outbound_id, clock=clock)

    assert status == outbox.SENT
    assert searches_and_sends(world, GOOGLE) == ["search", "send"]
    assert sent_count(world, GOOGLE) == 1
