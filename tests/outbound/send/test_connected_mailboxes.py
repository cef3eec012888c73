"""Senders opened for mailboxes connected through touchline's OAuth flow, on the fake providers.

Connecting asks for the send permission, so a newly connected mailbox can send at once; the sender
shares the mailbox's stored, encrypted tokens and writes refreshed ones back, as sync does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.fakes.gmail import FakeGmail
from tests.fakes.graph import FakeGraph
from tests.outbound.send.conftest import outgoing
from tests.sync.conftest import CUSTOMER, INTERNAL
from tests.sync.oauth_world import OAuthWorld, oauth_settings
from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.mailboxes.oauth import GOOGLE_SCOPES, MICROSOFT_SCOPES
from touchline.mailboxes.oauth_connect import GOOGLE, MICROSOFT, OAuthAccountKind
from touchline.mailboxes.service import credentials_of
from touchline.models import Mailbox
from touchline.outbound.send.contract import DeliveryError
from touchline.outbound.send.rest import open_api_sender
from touchline.worker import configure_queue
from touchline.workspace import service
from touchline.workspace.permissions import Actor

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


def test_the_consent_request_asks_for_the_send_permission() -> None:
    assert SEND_SCOPE[GOOGLE] in GOOGLE_SCOPES
    assert SEND_SCOPE[MICROSOFT] in MICROSOFT_SCOPES


@BOTH
def test_a_newly_connected_mailbox_sends_with_its_stored_tokens_and_keeps_refreshed_ones(
    world: OAuthWorld, kind: OAuthAccountKind
) -> None:
    mailbox_id = world.connect(world.add_user("sam"), kind)
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
def test_a_mailbox_connected_without_the_send_permission_must_be_reconnected_to_send(
    world: OAuthWorld, kind: OAuthAccountKind
) -> None:
    mailbox_id = world.connect(world.add_user("sam"), kind)
    authorization = world.oauth(kind)
    requested = GOOGLE_SCOPES if kind is GOOGLE else MICROSOFT_SCOPES
    for grant in list(authorization.subjects):  # consented before the application asked for sending
        authorization.granted_scopes[grant] = frozenset(requested) - {SEND_SCOPE[kind]}

    with session_scope(world.sessions) as session:
        mailbox = session.get_one(Mailbox, mailbox_id)
        sender = open_api_sender(mailbox, world.box, settings=world.settings, sessions=world.sessions)
    try:
        with pytest.raises(DeliveryError) as raised:
            sender.deliver(outgoing())
    finally:
        sender.close()

    assert not raised.value.temporary
    assert "reconnect it to allow sending" in raised.value.reason
    assert sent_count(world, kind) == 0
    report = world.sync(mailbox_id)  # reading goes on as before
    assert (report.status, report.error) == ("connected", None)


def test_imap_mailboxes_do_not_send_through_a_rest_api(world: OAuthWorld) -> None:
    with pytest.raises(ValueError, match="REST API"):
        open_api_sender(
            Mailbox(provider="imap", credentials_encrypted=""), world.box, settings=world.settings
        )
