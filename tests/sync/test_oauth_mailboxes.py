"""Gmail and Microsoft 365 mailboxes end to end, against fake Google and Microsoft servers on local
HTTP: OAuth connect pages, encrypted token storage and refresh, and sync into the store."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.browser import serve
from tests.conftest import Team, sign_in_form, touchline_environment
from tests.fakes.gmail import FakeGmail, domain_policy_body, rate_limit_body
from tests.fakes.graph import FakeGraph, throttled_body
from tests.fakes.oauth import FakeAuthorizationServer
from tests.sync.conftest import CUSTOMER, INTERNAL
from tests.sync.oauth_world import SAM, OAuthWorld, consent, oauth_settings
from tests.sync.provider_day import run_day
from touchline.config import Settings
from touchline.db import session_scope
from touchline.inbound.fetch.service import SyncReport, sync_mailbox
from touchline.kit.crypto import SecretBox
from touchline.mailboxes import oauth_connect
from touchline.mailboxes import service as mailboxes
from touchline.mailboxes.connect import StoredTokens
from touchline.mailboxes.oauth import OAuthTokens
from touchline.mailboxes.oauth_connect import GOOGLE, MICROSOFT, OAuthAccountKind
from touchline.mailboxes.providers.base import TransientError
from touchline.models import ConversationLink, EmailHolder, Mailbox, MailboxFolder
from touchline.worker import configure_queue
from touchline.workspace import service
from touchline.workspace.permissions import Actor

NOW = dt.datetime.now(dt.UTC)
BOTH = pytest.mark.parametrize("kind", [GOOGLE, MICROSOFT], ids=["gmail", "graph"])
ADMIN = "admin@team-a.example"


@pytest.fixture(scope="module")
def gmail_server() -> Iterator[tuple[FakeGmail, str]]:
    fake = FakeGmail()
    with serve(fake.app, lifespan="off") as base_url:
        yield fake, base_url


@pytest.fixture(scope="module")
def graph_server() -> Iterator[tuple[FakeGraph, str]]:
    fake = FakeGraph()
    with serve(fake.app, lifespan="off") as base_url:
        yield fake, base_url


@pytest.fixture
def fake_gmail(gmail_server: tuple[FakeGmail, str]) -> FakeGmail:
    gmail_server[0].reset()
    return gmail_server[0]


@pytest.fixture
def fake_graph(graph_server: tuple[FakeGraph, str]) -> FakeGraph:
    graph_server[0].reset()
    return graph_server[0]


@pytest.fixture
def settings(
    settings: Settings, gmail_server: tuple[FakeGmail, str], graph_server: tuple[FakeGraph, str]
) -> Settings:
    """The suite's settings with both OAuth apps registered at the fakes; the app is built from it."""
    return oauth_settings(settings, gmail_server[1], graph_server[1])


@pytest.fixture
def world(
    settings: Settings,
    sessions: sessionmaker[Session],
    box: SecretBox,
    fake_gmail: FakeGmail,
    fake_graph: FakeGraph,
) -> Iterator[OAuthWorld]:
    queue = configure_queue(settings)
    with session_scope(sessions) as session:
        workspace = service.create_workspace(
            session, box, "Sync Co", internal_domains=[INTERNAL], inbound_domain="log.test.example"
        )
        company = service.create_company(
            session, Actor.operator(workspace.id), "Customer", domains=[CUSTOMER]
        )
        ids = workspace.id, company.id
    yield OAuthWorld(settings, sessions, box, ids[0], ids[1], fake_gmail, fake_graph)
    queue.close()


# --- sync ---------------------------------------------------------------------------------------


@BOTH
def test_first_sync_keeps_customer_mail_threaded_by_the_provider(
    world: OAuthWorld, kind: OAuthAccountKind
) -> None:
    user_id = world.add_user("sam")
    renewal = world.deliver(
        kind, "Renewal question", thread="thread-1", received_at=NOW - dt.timedelta(days=2)
    )
    # Same provider thread, but no In-Reply-To and a new subject: only the thread id links it.
    world.deliver(kind, "Pricing details", thread="thread-1", received_at=NOW - dt.timedelta(days=1))
    world.deliver(kind, "Our reply", sender=SAM, to=f"jane.doe@{CUSTOMER}", sent=True, received_at=NOW)
    newsletter = world.deliver(kind, "Newsletter", sender="News <news@unknown-vendor.example>")
    world.deliver(kind, "Ancient", received_at=NOW - dt.timedelta(days=200))
    mailbox_id = world.connect(user_id, kind)
    assert world.mailbox(mailbox_id)["selected"] == ["inbox", "sent"]

    report = world.sync(mailbox_id)

    assert (report.error, report.status) == (None, "connected")
    assert report.seen == 4  # the 200-day-old message is outside the 90-day look-back
    assert world.subjects() == ["Our reply", "Pricing details", "Renewal question"]
    records = {str(record["subject"]): record for record in world.emails()}
    for record in records.values():
        assert record["companies"] == [str(world.company_id)]
        assert record["contacts"] == [f"jane.doe@{CUSTOMER}"]
        assert record["holders"] == [f"sam@{INTERNAL}"]
        assert record["source"] == "sync"
    assert records["Renewal question"]["conversation_id"] == records["Pricing details"]["conversation_id"]
    assert records["Our reply"]["conversation_id"] != records["Renewal question"]["conversation_id"]
    with session_scope(world.sessions) as session:
        links = set(session.scalars(select(ConversationLink.key)))
    assert f"thread:{kind.mailbox_provider}:thread-1" in links
    # Non-customer mail never leaves the mailbox: its body was not even downloaded.
    assert _bodies_fetched(world, kind, newsletter) == 0
    assert _bodies_fetched(world, kind, renewal) == 1
    assert world.mailbox(mailbox_id)["status"] == "connected"


def _bodies_fetched(world: OAuthWorld, kind: OAuthAccountKind, message_id: str) -> int:
    if kind is GOOGLE:
        return sum(
            params.get("format") == ["raw"] for params in world.gmail.requests_to(f"/messages/{message_id}")
        )
    return len(world.graph.requests_to(f"/messages/{message_id}/$value"))


@BOTH
def test_later_syncs_read_only_what_changed(world: OAuthWorld, kind: OAuthAccountKind) -> None:
    user_id = world.add_user("sam")
    world.deliver(kind, "First", received_at=NOW - dt.timedelta(hours=2))
    mailbox_id = world.connect(user_id, kind)
    world.sync(mailbox_id)
    world.deliver(kind, "Second")

    report = world.sync(mailbox_id)

    assert (report.seen, report.kept, report.stored_new) == (1, 1, 1)
    assert world.subjects() == ["First", "Second"]
    if kind is GOOGLE:
        assert world.gmail.requests_to("/history"), "the second sync should read Gmail's history"
    else:
        assert any("$deltatoken" in params for params, _ in world.graph.requests_to("/messages/delta"))
    assert world.sync(mailbox_id).seen == 0


@BOTH
def test_forgotten_history_or_delta_state_relists_without_duplicates(
    world: OAuthWorld, kind: OAuthAccountKind
) -> None:
    user_id = world.add_user("sam")
    world.deliver(kind, "Before", received_at=NOW - dt.timedelta(hours=2))
    mailbox_id = world.connect(user_id, kind)
    world.sync(mailbox_id)
    if kind is GOOGLE:
        world.gmail.forget_history()
    else:
        world.graph.drop_sync_state()
    world.deliver(kind, "After")

    report = world.sync(mailbox_id)

    assert report.error is None
    assert report.stored_new == 1
    assert world.subjects() == ["After", "Before"]
    assert world.sync(mailbox_id).stored_new == 0


def _select_too(world: OAuthWorld, mailbox_id: uuid.UUID, provider_folder_id: str) -> None:
    """The user ticks one more folder to sync, besides Inbox and Sent."""
    with session_scope(world.sessions) as session:
        folder = session.scalars(
            select(MailboxFolder).where(
                MailboxFolder.mailbox_id == mailbox_id, MailboxFolder.provider_folder_id == provider_folder_id
            )
        ).one()
        folder.selected = True


def _delta_requests(world: OAuthWorld, folder_id: str, since: int) -> list[dict[str, str]]:
    """The query of each delta request for one folder, from the `since`-th request the fake saw on."""
    return [
        params
        for path, params, _ in world.graph.state.requests[since:]
        if path.endswith(f"/mailFolders/{folder_id}/messages/delta")
    ]


def test_a_message_moved_between_synced_outlook_folders_stays_one_email_now_held_in_both(
    world: OAuthWorld,
) -> None:
    """Graph: a moved message leaves its folder (@removed) and enters the other with the same
    immutable id. The email is stored once (SPEC 2.7) and gains a holding in its new folder; the old
    holding stays, as removals are not tracked (docs/decisions/0003-mailbox-providers.md)."""
    user_id = world.add_user("sam")
    customers = world.graph.add_folder("Customers", parent_id=world.graph.folder_id("inbox"))
    moving = world.deliver(MICROSOFT, "Moved to Customers", received_at=NOW - dt.timedelta(hours=2))
    world.deliver(MICROSOFT, "Stays in the inbox", received_at=NOW - dt.timedelta(hours=1))
    mailbox_id = world.connect(user_id, MICROSOFT)
    _select_too(world, mailbox_id, customers)
    assert world.sync(mailbox_id).stored_new == 2
    before = {str(record["subject"]): record for record in world.emails()}
    assert before["Moved to Customers"]["folders"] == ["Inbox"]

    world.graph.move(moving, customers)
    report = world.sync(mailbox_id)

    assert (report.error, report.stored_new) == (None, 0)
    after = {str(record["subject"]): record for record in world.emails()}
    assert sorted(after) == ["Moved to Customers", "Stays in the inbox"]  # no duplicate
    moved = after["Moved to Customers"]
    assert moved["id"] == before["Moved to Customers"]["id"]
    assert moved["folders"] == ["Inbox", "Inbox/Customers"]
    assert moved["holders"] == [f"sam@{INTERNAL}"]
    assert after["Stays in the inbox"]["folders"] == ["Inbox"]
    with session_scope(world.sessions) as session:
        holdings = session.execute(
            select(EmailHolder.folder_name, EmailHolder.provider_message_id).where(
                EmailHolder.email_id == uuid.UUID(str(moved["id"]))
            )
        ).all()
    # The immutable id is the same in both folders.
    assert sorted(holdings) == [("Inbox", moving), ("Inbox/Customers", moving)]
    again = world.sync(mailbox_id)
    assert (again.error, again.seen, again.stored_new) == (None, 0, 0)


def test_an_expired_outlook_delta_link_relists_that_folder_without_loss_or_duplicates(
    world: OAuthWorld,
) -> None:
    """Graph drops a folder's older sync states once newer ones were handed out (410
    SyncStateNotFound): that folder is listed again from scratch; the others go on from their links."""
    user_id = world.add_user("sam")
    world.deliver(MICROSOFT, "Before 1", received_at=NOW - dt.timedelta(hours=3))
    world.deliver(MICROSOFT, "Before 2", received_at=NOW - dt.timedelta(hours=2))
    world.deliver(MICROSOFT, "Our reply", sender=SAM, to=f"jane.doe@{CUSTOMER}", sent=True)
    mailbox_id = world.connect(user_id, MICROSOFT)
    assert world.sync(mailbox_id).stored_new == 3
    world.graph.state.link_generations_kept = 3
    world.graph.hand_out_links("inbox", 3)  # the link touchline saved for Inbox is now too old
    world.deliver(MICROSOFT, "After")
    world.deliver(MICROSOFT, "Our second reply", sender=SAM, to=f"jane.doe@{CUSTOMER}", sent=True)
    requests_before = len(world.graph.state.requests)

    report = world.sync(mailbox_id)

    assert (report.error, report.failed_folders) == (None, {})
    assert report.stored_new == 2
    assert world.subjects() == ["After", "Before 1", "Before 2", "Our reply", "Our second reply"]
    inbox = _delta_requests(world, world.graph.folder_id("inbox"), requests_before)
    assert "$deltatoken" in inbox[0]  # answered 410
    assert not ({"$deltatoken", "$skiptoken"} & set(inbox[1]))  # listed again from scratch
    sent = _delta_requests(world, world.graph.folder_id("sentitems"), requests_before)
    assert all("$deltatoken" in params for params in sent)  # Sent went on from its own link
    again = world.sync(mailbox_id)
    assert (again.error, again.seen, again.stored_new) == (None, 0, 0)
    assert world.subjects() == ["After", "Before 1", "Before 2", "Our reply", "Our second reply"]


@BOTH
def test_a_429_is_waited_out_within_the_sync(world: OAuthWorld, kind: OAuthAccountKind) -> None:
    user_id = world.add_user("sam")
    world.deliver(kind, "Throttled")
    mailbox_id = world.connect(user_id, kind)
    if kind is GOOGLE:
        world.gmail.state.failures.add(429, rate_limit_body(), path_contains="/messages", retry_after="17")
    else:
        world.graph.state.failures.add(429, throttled_body(), path_contains="/delta", retry_after="17")

    report = world.sync(mailbox_id)

    assert (report.error, report.retry_after_seconds) == (None, None)
    assert world.subjects() == ["Throttled"]
    assert world.clock.slept == [17.0]


@BOTH
def test_throttling_surfaces_retry_after_and_loses_nothing(world: OAuthWorld, kind: OAuthAccountKind) -> None:
    user_id = world.add_user("sam")
    world.deliver(kind, "Throttled")
    mailbox_id = world.connect(user_id, kind)
    # More 429s than the backoff outlasts: the scheduler takes over.
    if kind is GOOGLE:
        world.gmail.state.failures.add(
            429, rate_limit_body(), path_contains="/messages", retry_after="17", times=7
        )
    else:
        world.graph.state.failures.add(
            429, throttled_body(), path_contains="/delta", retry_after="17", times=7
        )

    report = world.sync(mailbox_id)

    assert report.retry_after_seconds == 17.0
    assert report.status == "connected"
    assert report.error
    assert world.subjects() == []
    assert world.sync(mailbox_id).retry_after_seconds is None
    assert world.subjects() == ["Throttled"]


@BOTH
def test_a_refreshed_token_is_stored_encrypted(world: OAuthWorld, kind: OAuthAccountKind) -> None:
    user_id = world.add_user("sam")
    world.deliver(kind, "Hello")
    mailbox_id = world.connect(user_id, kind)
    before = world.mailbox(mailbox_id)
    world.oauth(kind).expire_access_tokens()

    assert world.sync(mailbox_id).error is None

    after = world.mailbox(mailbox_id)
    assert after["ciphertext"] != before["ciphertext"]
    new_access_token = after["credentials"]["access_token"]
    assert new_access_token != before["credentials"]["access_token"]
    assert world.oauth(kind).accepts(new_access_token)
    if kind is MICROSOFT:
        # Microsoft rotates refresh tokens: the new one must be what is kept.
        assert after["credentials"]["refresh_token"] != before["credentials"]["refresh_token"]
    stored = world.database_text()
    assert new_access_token not in stored
    assert after["credentials"]["refresh_token"] not in stored
    # The next sync opens the mailbox from the database and needs no refresh: the stored token works.
    requests = len(world.oauth(kind).token_requests)
    world.deliver(kind, "Again")
    assert world.sync(mailbox_id).kept == 1
    assert len(world.oauth(kind).token_requests) == requests


@BOTH
def test_a_revoked_grant_asks_the_user_to_reconnect(world: OAuthWorld, kind: OAuthAccountKind) -> None:
    user_id = world.add_user("sam")
    mailbox_id = world.connect(user_id, kind)
    world.oauth(kind).revoke_all_grants()

    report = world.sync(mailbox_id)

    assert report.status == "needs_reconnect"
    mailbox = world.mailbox(mailbox_id)
    assert mailbox["status"] == "needs_reconnect"
    assert mailbox["last_error"] == (
        f"{'Google' if kind is GOOGLE else 'Microsoft'} no longer accepts this mailbox's grant "
        "(access was withdrawn, it expired, or the password changed); reconnect the mailbox"
    )


@pytest.mark.parametrize("error", ["interaction_required", "consent_required"])
def test_a_microsoft_sign_in_that_needs_the_user_offers_reconnect(world: OAuthWorld, error: str) -> None:
    user_id = world.add_user("sam")
    mailbox_id = world.connect(user_id, MICROSOFT)
    world.graph.oauth.expire_access_tokens()
    world.graph.oauth.refresh_errors.append(error)

    report = world.sync(mailbox_id)

    assert report.status == "needs_reconnect"
    mailbox = world.mailbox(mailbox_id)
    assert mailbox["status"] == "needs_reconnect"
    assert f"Microsoft wants the user to sign in again ({error})" in mailbox["last_error"]
    assert "Trace ID" not in mailbox["last_error"]


def test_a_microsoft_sign_in_temporarily_unavailable_is_retried(world: OAuthWorld) -> None:
    user_id = world.add_user("sam")
    world.deliver(MICROSOFT, "After the outage")
    mailbox_id = world.connect(user_id, MICROSOFT)
    world.graph.oauth.expire_access_tokens()
    world.graph.oauth.refresh_errors.append("temporarily_unavailable")

    with pytest.raises(TransientError):
        world.sync(mailbox_id)

    mailbox = world.mailbox(mailbox_id)
    assert mailbox["status"] == "connected"  # the scheduler syncs it again after its backoff
    assert "temporarily unavailable" in mailbox["last_error"]
    assert world.sync(mailbox_id).error is None
    assert world.subjects() == ["After the outage"]


def test_a_refresh_racing_a_reconnect_keeps_the_new_grant(world: OAuthWorld) -> None:
    user_id = world.add_user("sam")
    mailbox_id = world.connect(user_id, GOOGLE)
    old = OAuthTokens.from_dict(world.mailbox(mailbox_id)["credentials"])
    store = StoredTokens(world.sessions, world.box, mailbox_id, old.refresh_token)
    with session_scope(world.sessions) as session:
        oauth_connect.reconnect_mailbox(
            session, world.operator, world.box, mailbox_id, world.sign_in(GOOGLE, f"sam@{INTERNAL}")
        )
    reconnected = world.mailbox(mailbox_id)["credentials"]

    store(OAuthTokens("stale-access", old.refresh_token, NOW + dt.timedelta(hours=1)))

    assert world.mailbox(mailbox_id)["credentials"] == reconnected


def test_a_broken_oauth_app_stops_sync_with_a_readable_error(world: OAuthWorld) -> None:
    user_id = world.add_user("sam")
    mailbox_id = world.connect(user_id, GOOGLE)
    world.gmail.oauth.expire_access_tokens()
    world.settings = world.settings.model_copy(update={"google_client_secret": "rotated-by-mistake"})

    report = world.sync(mailbox_id)

    assert report.status == "error"
    assert "Google sign-in refused the request: invalid_client" in str(
        world.mailbox(mailbox_id)["last_error"]
    )

    world.settings = world.settings.model_copy(update={"google_client_id": ""})
    world.sync(mailbox_id)
    assert "TOUCHLINE_GOOGLE_CLIENT_ID" in str(world.mailbox(mailbox_id)["last_error"])


def test_a_microsoft_account_without_a_mail_property_uses_its_user_principal_name(world: OAuthWorld) -> None:
    world.graph.mail_property_empty = True
    account = world.sign_in(MICROSOFT, "Sam@Outlook.example")
    assert account.address == "sam@outlook.example"
    assert {folder.special_use for folder in account.folders} >= {"inbox", "sent"}


@BOTH
def test_disconnecting_withdraws_the_grant_where_the_provider_allows(
    world: OAuthWorld, kind: OAuthAccountKind
) -> None:
    user_id = world.add_user("sam")
    mailbox_id = world.connect(user_id, kind)
    refresh_token = world.mailbox(mailbox_id)["credentials"]["refresh_token"]

    revoked = oauth_connect.disconnect_and_revoke(
        world.sessions, world.settings, world.box, world.operator, mailbox_id
    )

    with session_scope(world.sessions) as session:
        assert session.get(Mailbox, mailbox_id) is None
    grant = world.oauth(kind).refresh_tokens[refresh_token]
    # Google revokes; Microsoft has no revocation endpoint, so its grant simply stops being used.
    assert revoked is (kind is GOOGLE)
    assert (grant in world.oauth(kind).revoked_grants) is (kind is GOOGLE)


def test_a_failed_revocation_does_not_block_disconnecting(world: OAuthWorld) -> None:
    user_id = world.add_user("sam")
    mailbox_id = world.connect(user_id, GOOGLE)
    # Nothing listens on port 9 (discard) of the loopback interface: the revocation cannot connect.
    unreachable = world.settings.model_copy(update={"google_revocation_url": "http://127.0.0.1:9/revoke"})

    assert not oauth_connect.disconnect_and_revoke(
        world.sessions, unreachable, world.box, world.operator, mailbox_id
    )
    with session_scope(world.sessions) as session:
        assert session.get(Mailbox, mailbox_id) is None


# --- connect pages ------------------------------------------------------------------------------


@pytest.fixture
def pages(app: FastAPI, client: TestClient, team: Team) -> TestClient:
    """A browser signed in as the team's admin (who has email_sync), with the OAuth pages served."""
    response = sign_in_form(client, ADMIN, "admin-password-123")
    assert response.status_code == 303, response.text
    return client


def _start(pages: TestClient, slug: str, *, sending: bool = False) -> tuple[str, dict[str, str]]:
    query = "?sending=1" if sending else ""
    response = pages.get(f"/profile/email/oauth/{slug}/start{query}", follow_redirects=False)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    return location, {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def _callback(pages: TestClient, slug: str, query: dict[str, str]) -> str:
    """Return to touchline as the provider's redirect does; the text of the Email tab shown after."""
    response = pages.get(f"/profile/email/oauth/{slug}/callback", params=query, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/profile/email"
    page: str = pages.get("/profile/email").text
    return page


def _my_mailbox(pages: TestClient, team: Team) -> dict[str, Any] | None:
    response = pages.get("/api/v1/users/me/mailbox", headers=team.headers())
    return response.json() if response.status_code == 200 else None


def _authorization(
    kind: OAuthAccountKind, fake_gmail: FakeGmail, fake_graph: FakeGraph
) -> FakeAuthorizationServer:
    return fake_gmail.oauth if kind is GOOGLE else fake_graph.oauth


def _sync(
    sessions: sessionmaker[Session], box: SecretBox, mailbox_id: uuid.UUID, settings: Settings
) -> SyncReport:
    return sync_mailbox(sessions, box, mailbox_id, settings=settings)


def test_the_email_tab_offers_only_configured_providers(app: FastAPI, pages: TestClient) -> None:
    page = pages.get("/profile/email").text
    assert "Enable Google Account Access" in page
    assert "Enable Outlook Account Access" in page

    app.state.settings = app.state.settings.model_copy(update={"microsoft_client_id": ""})
    page = pages.get("/profile/email").text
    assert "Enable Google Account Access" in page
    assert "Enable Outlook Account Access" not in page
    assert pages.get("/profile/email/oauth/microsoft/start", follow_redirects=False).status_code == 404

    app.state.settings = app.state.settings.model_copy(update={"google_client_id": ""})
    assert 'id="connect-oauth"' not in pages.get("/profile/email").text


@BOTH
def test_signing_in_connects_the_mailbox_with_inbox_and_sent_selected(
    pages: TestClient,
    team: Team,
    settings: Settings,
    sessions: sessionmaker[Session],
    box: SecretBox,
    fake_gmail: FakeGmail,
    fake_graph: FakeGraph,
    kind: OAuthAccountKind,
) -> None:
    authorization = _authorization(kind, fake_gmail, fake_graph)
    authorization.consenting_subject = ADMIN
    location, params = _start(pages, kind.slug)
    authorize_url = (
        settings.google_authorization_url if kind is GOOGLE else f"{settings.microsoft_login_base_url}/"
    )
    assert location.startswith(authorize_url)
    assert params["redirect_uri"] == f"{settings.base_url}/profile/email/oauth/{kind.slug}/callback"
    assert params["code_challenge_method"] == "S256"
    assert "code_verifier" not in params

    page = _callback(pages, kind.slug, consent(location))

    assert f"{ADMIN} is connected" in page
    mailbox = _my_mailbox(pages, team)
    assert mailbox is not None
    assert (mailbox["provider"], mailbox["address"], mailbox["status"]) == (
        kind.mailbox_provider,
        ADMIN,
        "connected",
    )
    selected = sorted(str(folder["special_use"]) for folder in mailbox["folders"] if folder["selected"])
    assert selected == ["inbox", "sent"]
    with session_scope(sessions) as session:
        stored = session.get(Mailbox, uuid.UUID(str(mailbox["id"])))
        assert stored is not None
        tokens = OAuthTokens.from_dict(mailboxes.credentials_of(stored, box))
        assert tokens.refresh_token
        assert tokens.refresh_token not in stored.credentials_encrypted
    assert authorization.accepts(tokens.access_token)


def test_a_callback_with_the_wrong_state_is_refused(pages: TestClient, team: Team) -> None:
    location, _ = _start(pages, GOOGLE.slug)
    returned = consent(location)

    page = _callback(pages, GOOGLE.slug, {**returned, "state": returned["state"] + "x"})

    assert "could not be verified" in page
    assert _my_mailbox(pages, team) is None
    # The pending sign-in is used up by the refused attempt: the genuine answer cannot be replayed.
    assert "could not be verified" in _callback(pages, GOOGLE.slug, returned)
    assert _my_mailbox(pages, team) is None


def test_a_callback_nobody_started_is_refused(pages: TestClient, team: Team) -> None:
    page = _callback(pages, MICROSOFT.slug, {"code": "stolen", "state": "guessed"})
    assert "could not be verified" in page
    assert _my_mailbox(pages, team) is None


def test_declined_consent_is_explained(pages: TestClient, team: Team, fake_graph: FakeGraph) -> None:
    fake_graph.oauth.declines_consent = True
    location, _ = _start(pages, MICROSOFT.slug)

    page = _callback(pages, MICROSOFT.slug, consent(location))

    assert "Access to your Outlook account was not granted, so nothing was connected." in page
    assert _my_mailbox(pages, team) is None


def test_an_injected_error_code_is_not_echoed(pages: TestClient) -> None:
    _start(pages, GOOGLE.slug)
    page = _callback(pages, GOOGLE.slug, {"error": "Call 555-0100 to verify your account"})
    assert "Google sign-in failed; nothing was connected." in page
    assert "555-0100" not in page


def test_a_needs_reconnect_mailbox_is_reconnected_through_the_same_pages(
    pages: TestClient,
    team: Team,
    settings: Settings,
    sessions: sessionmaker[Session],
    box: SecretBox,
    fake_gmail: FakeGmail,
) -> None:
    fake_gmail.oauth.consenting_subject = ADMIN
    _callback(pages, GOOGLE.slug, consent(_start(pages, GOOGLE.slug)[0]))
    mailbox = _my_mailbox(pages, team)
    assert mailbox is not None
    mailbox_id = uuid.UUID(str(mailbox["id"]))
    fake_gmail.oauth.revoke_all_grants()
    assert _sync(sessions, box, mailbox_id, settings).status == "needs_reconnect"
    assert "Reconnect Google account" in pages.get("/profile/email").text

    location, params = _start(pages, GOOGLE.slug)
    assert params["login_hint"] == ADMIN
    page = _callback(pages, GOOGLE.slug, consent(location))

    assert f"{ADMIN} is reconnected" in page
    assert "Reconnect Google account" not in page
    mailbox = _my_mailbox(pages, team)
    assert mailbox is not None
    assert (mailbox["id"], mailbox["status"], mailbox["last_error"]) == (str(mailbox_id), "connected", None)
    report = _sync(sessions, box, mailbox_id, settings)
    assert (report.status, report.error) == ("connected", None)


# --- scopes: reading at connect, sending when allowed, granular consent --------------------------

SEND = {
    GOOGLE: "https://www.googleapis.com/auth/gmail.send",
    MICROSOFT: "https://graph.microsoft.com/Mail.Send",
}
READ = {
    GOOGLE: "https://www.googleapis.com/auth/gmail.readonly",
    MICROSOFT: "https://graph.microsoft.com/Mail.Read",
}


@BOTH
def test_connecting_asks_for_reading_and_allow_sending_adds_the_send_permission(
    pages: TestClient, team: Team, fake_gmail: FakeGmail, fake_graph: FakeGraph, kind: OAuthAccountKind
) -> None:
    authorization = _authorization(kind, fake_gmail, fake_graph)
    authorization.consenting_subject = ADMIN
    location, params = _start(pages, kind.slug)
    assert READ[kind] in params["scope"].split()
    assert SEND[kind] not in params["scope"].split()
    page = _callback(pages, kind.slug, consent(location))
    assert f"{ADMIN} is connected" in page
    assert 'id="oauth-allow-sending"' in page
    mailbox = _my_mailbox(pages, team)
    assert mailbox is not None

    location, params = _start(pages, kind.slug, sending=True)
    assert {READ[kind], SEND[kind]} <= set(params["scope"].split())
    if kind is GOOGLE:  # incremental authorization keeps what was granted before
        assert params["include_granted_scopes"] == "true"
    page = _callback(pages, kind.slug, consent(location))

    assert 'id="oauth-allow-sending"' not in page
    again = _my_mailbox(pages, team)
    assert again is not None
    assert again["id"] == mailbox["id"]
    assert {READ[kind], SEND[kind]} <= set(authorization.consented[ADMIN])


def test_a_reading_permission_left_unticked_is_named_and_nothing_is_connected(
    pages: TestClient, team: Team, fake_gmail: FakeGmail
) -> None:
    fake_gmail.oauth.consenting_subject = ADMIN
    fake_gmail.oauth.unticked_scopes.add(READ[GOOGLE])  # Google's granular consent screen

    page = _callback(pages, GOOGLE.slug, consent(_start(pages, GOOGLE.slug)[0]))

    assert "read your email (https://www.googleapis.com/auth/gmail.readonly)" in page
    assert "Nothing was connected" in page
    assert _my_mailbox(pages, team) is None
    assert fake_gmail.oauth.revoked_grants  # the unusable grant was withdrawn


def test_a_send_permission_left_unticked_connects_for_reading_and_says_so(
    pages: TestClient, team: Team, fake_gmail: FakeGmail
) -> None:
    fake_gmail.oauth.consenting_subject = ADMIN
    fake_gmail.oauth.unticked_scopes.add(SEND[GOOGLE])

    page = _callback(pages, GOOGLE.slug, consent(_start(pages, GOOGLE.slug, sending=True)[0]))

    assert "sending was not allowed" in page
    assert 'id="oauth-allow-sending"' in page
    mailbox = _my_mailbox(pages, team)
    assert mailbox is not None
    assert mailbox["status"] == "connected"


@BOTH
def test_a_reconnect_asks_again_for_the_sending_it_had(
    pages: TestClient,
    team: Team,
    settings: Settings,
    sessions: sessionmaker[Session],
    box: SecretBox,
    fake_gmail: FakeGmail,
    fake_graph: FakeGraph,
    kind: OAuthAccountKind,
) -> None:
    authorization = _authorization(kind, fake_gmail, fake_graph)
    authorization.consenting_subject = ADMIN
    _callback(pages, kind.slug, consent(_start(pages, kind.slug, sending=True)[0]))
    mailbox = _my_mailbox(pages, team)
    assert mailbox is not None
    authorization.revoke_all_grants()
    assert _sync(sessions, box, uuid.UUID(str(mailbox["id"])), settings).status == "needs_reconnect"

    _, params = _start(pages, kind.slug)

    assert SEND[kind] in params["scope"].split()


def test_a_microsoft_grant_is_refreshed_with_the_scopes_it_was_granted(world: OAuthWorld) -> None:
    mailbox_id = world.connect(world.add_user("sam"), MICROSOFT)  # reading only
    world.graph.oauth.expire_access_tokens()

    report = world.sync(mailbox_id)

    assert (report.status, report.error) == ("connected", None)
    refresh = world.graph.oauth.token_requests[-1]
    assert refresh["grant_type"] == "refresh_token"
    asked = refresh["scope"].split()
    assert READ[MICROSOFT] in asked
    assert "offline_access" in asked
    assert SEND[MICROSOFT] not in asked  # Microsoft refuses a refresh for a permission never granted


def test_reconnecting_as_another_account_is_refused_and_that_grant_withdrawn(
    pages: TestClient, team: Team, fake_gmail: FakeGmail
) -> None:
    fake_gmail.oauth.consenting_subject = ADMIN
    _callback(pages, GOOGLE.slug, consent(_start(pages, GOOGLE.slug)[0]))
    before = _my_mailbox(pages, team)
    fake_gmail.oauth.consenting_subject = "someone.else@team-a.example"
    location, _ = _start(pages, GOOGLE.slug)

    page = _callback(pages, GOOGLE.slug, consent(location))

    assert "you signed in as someone.else@team-a.example, but this mailbox is admin@team-a.example" in page
    assert _my_mailbox(pages, team) == before
    other_grants = {
        g for g, subject in fake_gmail.oauth.subjects.items() if subject.startswith("someone.else")
    }
    assert other_grants
    assert other_grants <= fake_gmail.oauth.revoked_grants


def test_an_imap_mailbox_must_be_disconnected_before_signing_in_with_google(
    pages: TestClient, team: Team, sessions: sessionmaker[Session], box: SecretBox
) -> None:
    with session_scope(sessions) as session:
        mailboxes.connect_mailbox(
            session,
            Actor.operator(team.workspace_id),
            box,
            user_id=team.admin_id,
            provider="imap",
            address=ADMIN,
            connection={"host": "imap.team-a.example", "port": 993, "security": "tls", "username": ADMIN},
            credentials={"password": "secret"},
            folders=[],
        )
    response = pages.get("/profile/email/oauth/google/start", follow_redirects=False)
    assert response.headers["location"] == "/profile/email"
    assert "disconnect it before connecting a Google account" in pages.get("/profile/email").text


def test_users_without_email_sync_cannot_start(client: TestClient, app: FastAPI, team: Team) -> None:
    client.patch(
        f"/api/v1/users/{team.viewer_id}", json={"password": "viewer-password-1"}, headers=team.headers()
    )
    sign_in_form(client, "viewer@team-a.example", "viewer-password-1")
    assert client.get("/profile/email/oauth/google/start", follow_redirects=False).status_code == 403


def test_a_failing_folder_does_not_stop_the_others_and_is_shown(
    pages: TestClient,
    team: Team,
    settings: Settings,
    sessions: sessionmaker[Session],
    box: SecretBox,
    fake_gmail: FakeGmail,
) -> None:
    """Any unexpected provider answer about one folder is kept on that folder with the provider's
    words and a growing wait; the folders sorted after it still sync."""
    customers = fake_gmail.add_label("AAA Customers")  # sorted first, before INBOX and SENT
    fake_gmail.oauth.consenting_subject = ADMIN
    _callback(pages, GOOGLE.slug, consent(_start(pages, GOOGLE.slug)[0]))
    mailbox = _my_mailbox(pages, team)
    assert mailbox is not None
    mailbox_id = uuid.UUID(str(mailbox["id"]))
    with session_scope(sessions) as session:
        for folder in session.scalars(select(MailboxFolder).where(MailboxFolder.mailbox_id == mailbox_id)):
            folder.selected = folder.provider_folder_id in {customers, "INBOX", "SENT"}
    failure = {
        "error": {"code": 400, "message": "Precondition check failed.", "status": "FAILED_PRECONDITION"}
    }
    fake_gmail.state.failures.add(400, failure, path_contains="/messages")

    report = _sync(sessions, box, mailbox_id, settings)

    assert report.status == "connected"
    assert list(report.failed_folders) == ["AAA Customers"]
    folders = _folders(sessions, mailbox_id)
    assert folders["INBOX"].last_synced_at is not None
    assert folders["SENT"].last_synced_at is not None
    assert folders["AAA Customers"].last_synced_at is None
    assert "Precondition check failed." in str(folders["AAA Customers"].last_error)
    assert folders["AAA Customers"].next_retry_at is not None
    page = pages.get("/profile/email").text
    assert "1 of 3 synced folders failing" in page
    assert "failing: Gmail answered HTTP 400" in page
    listed = _cli_mailbox_list(settings)
    assert "1 of 3 synced folders failing" in listed
    assert "AAA Customers: Gmail answered HTTP 400" in listed
    assert "next try" in listed

    # Until its retry is due the failing folder is left alone; then it syncs and the error clears.
    listings = len(fake_gmail.requests_to("/messages"))
    _sync(sessions, box, mailbox_id, settings)
    assert [
        p for p in fake_gmail.requests_to("/messages")[listings:] if p.get("labelIds") == [customers]
    ] == []
    with session_scope(sessions) as session:
        session.execute(
            update(MailboxFolder).where(MailboxFolder.mailbox_id == mailbox_id).values(next_retry_at=NOW)
        )
    assert _sync(sessions, box, mailbox_id, settings).failed_folders == {}
    assert _folders(sessions, mailbox_id)["AAA Customers"].last_error is None
    assert "failing" not in pages.get("/profile/email").text


def test_every_folder_failing_says_so(
    pages: TestClient,
    team: Team,
    settings: Settings,
    sessions: sessionmaker[Session],
    box: SecretBox,
    fake_gmail: FakeGmail,
) -> None:
    fake_gmail.oauth.consenting_subject = ADMIN
    _callback(pages, GOOGLE.slug, consent(_start(pages, GOOGLE.slug)[0]))
    mailbox = _my_mailbox(pages, team)
    assert mailbox is not None
    failure = {
        "error": {"code": 400, "message": "Precondition check failed.", "status": "FAILED_PRECONDITION"}
    }
    fake_gmail.state.failures.add(400, failure, path_contains="/messages", times=2)

    report = _sync(sessions, box, uuid.UUID(str(mailbox["id"])), settings)

    assert sorted(report.failed_folders) == ["INBOX", "SENT"]
    assert "every synced folder is failing" in pages.get("/profile/email").text
    assert "every synced folder is failing" in _cli_mailbox_list(settings)
    listed = pages.get("/api/v1/users/me/mailbox", headers=team.headers()).json()
    failing = {folder["name"]: folder for folder in listed["folders"] if folder["last_error"]}
    assert sorted(failing) == ["INBOX", "SENT"]
    assert all(folder["next_retry_at"] for folder in failing.values())


def test_a_domain_policy_says_an_administrator_blocks_access(
    world: OAuthWorld,
) -> None:
    user_id = world.add_user("sam")
    mailbox_id = world.connect(user_id, GOOGLE)
    world.gmail.state.failures.add(403, domain_policy_body(), path_contains="/profile")

    report = world.sync(mailbox_id)

    mailbox = world.mailbox(mailbox_id)
    assert (report.status, mailbox["status"]) == ("connected", "connected")  # no reconnect offered
    assert "administrator" in str(mailbox["last_error"])
    with session_scope(world.sessions) as session:
        row = session.get(Mailbox, mailbox_id)
        assert row is not None
        assert row.sync_not_before is not None  # tried again after a growing wait


def _folders(sessions: sessionmaker[Session], mailbox_id: uuid.UUID) -> dict[str, MailboxFolder]:
    with session_scope(sessions) as session:
        rows = session.scalars(select(MailboxFolder).where(MailboxFolder.mailbox_id == mailbox_id)).all()
        session.expunge_all()
        return {row.name: row for row in rows}


def _cli_mailbox_list(settings: Settings) -> str:
    env = {**touchline_environment(settings), "COLUMNS": "400"}
    result = subprocess.run(
        [sys.executable, "-m", "touchline.cli", "mailbox", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@BOTH
def test_a_long_day_stores_exactly_the_messages_in_the_window(
    world: OAuthWorld, kind: OAuthAccountKind
) -> None:
    """A smaller day than bench/providers/day.py's 20,000 messages, with every event of it: the
    first sync under quota, new mail, a forgotten cursor, 429s, a renamed and a deleted folder, an
    unavailable token endpoint."""
    # A quota a fourth of the day's first sync needs, so that Gmail answers 429 on the way.
    result = run_day(world, kind, messages=400, gmail_quota_units_per_minute=1_500)

    assert (result.missing, result.unexpected) == (0, 0)
    assert result.stored == result.distinct_stored == result.in_window
    assert result.stuck_folders == ()
    assert result.throttled_requests > 0
