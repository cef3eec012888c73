"""Fixtures for the mailbox provider tests: a private Dovecot, and fake Gmail and Graph servers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from tests.browser import serve
from tests.fakes.clock import PacingClock
from tests.fakes.gmail import FakeGmail
from tests.fakes.graph import FakeGraph
from tests.fakes.oauth import (
    CLIENT_ID,
    CLIENT_SECRET,
    INTROSPECTION_PATH,
    REDIRECT_URI,
    FakeAuthorizationServer,
)
from tests.services.dovecot import dovecot, dovecot_without_special_use, imap_user
from touchline.mailboxes.oauth import (
    OAuthClientCredentials,
    OAuthFlow,
    OAuthTokens,
    TokenHolder,
    google_oauth_config,
    microsoft_oauth_config,
)
from touchline.mailboxes.providers.gmail import GmailProvider
from touchline.mailboxes.providers.graph import GraphProvider

# Named here so that pytest offers the Dovecot fixtures to the tests below this folder.
__all__ = ["dovecot", "dovecot_without_special_use", "imap_user"]


@pytest.fixture(scope="session")
def _gmail_server() -> Iterator[tuple[FakeGmail, str]]:
    fake = FakeGmail()
    with serve(fake.app, lifespan="off") as base_url:
        yield fake, base_url


@pytest.fixture(scope="session")
def _graph_server() -> Iterator[tuple[FakeGraph, str]]:
    fake = FakeGraph()
    with serve(fake.app, lifespan="off") as base_url:
        yield fake, base_url


@pytest.fixture(scope="session")
def dovecot_oauth2_introspection_url(_gmail_server: tuple[FakeGmail, str]) -> str:
    """Dovecot checks XOAUTH2 tokens with the fake Google authorization server."""
    return f"{_gmail_server[1]}{INTROSPECTION_PATH}"


@pytest.fixture
def fake_gmail(_gmail_server: tuple[FakeGmail, str]) -> FakeGmail:
    fake, _ = _gmail_server
    fake.reset()
    return fake


@pytest.fixture
def gmail_url(_gmail_server: tuple[FakeGmail, str]) -> str:
    return _gmail_server[1]


@pytest.fixture
def fake_graph(_graph_server: tuple[FakeGraph, str]) -> FakeGraph:
    fake, _ = _graph_server
    fake.reset()
    return fake


@pytest.fixture
def graph_url(_graph_server: tuple[FakeGraph, str]) -> str:
    return _graph_server[1]


def _connected(flow: OAuthFlow, authorization: FakeAuthorizationServer) -> TokenHolder:
    access_token, refresh_token = authorization.issue_grant()
    tokens = OAuthTokens(
        access_token, refresh_token, expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    )
    return TokenHolder(flow, tokens)


@pytest.fixture
def google_flow(gmail_url: str) -> Iterator[OAuthFlow]:
    config = google_oauth_config(
        authorization_url=f"{gmail_url}/o/oauth2/v2/auth",
        token_url=f"{gmail_url}/token",
        revocation_url=f"{gmail_url}/revoke",
    )
    with OAuthFlow(config, OAuthClientCredentials(CLIENT_ID, CLIENT_SECRET, REDIRECT_URI)) as flow:
        yield flow


@pytest.fixture
def microsoft_flow(graph_url: str) -> Iterator[OAuthFlow]:
    config = microsoft_oauth_config(login_base_url=graph_url)
    with OAuthFlow(config, OAuthClientCredentials(CLIENT_ID, CLIENT_SECRET, REDIRECT_URI)) as flow:
        yield flow


@pytest.fixture
def gmail_tokens(fake_gmail: FakeGmail, google_flow: OAuthFlow) -> TokenHolder:
    return _connected(google_flow, fake_gmail.oauth)


@pytest.fixture
def graph_tokens(fake_graph: FakeGraph, microsoft_flow: OAuthFlow) -> TokenHolder:
    return _connected(microsoft_flow, fake_graph.oauth)


@pytest.fixture
def pacing_clock(fake_gmail: FakeGmail) -> PacingClock:
    """The providers' clock, and the fake Gmail's quota minute: waiting on it takes no time."""
    clock = PacingClock()
    fake_gmail.state.clock = clock.monotonic
    return clock


@pytest.fixture
def gmail(gmail_tokens: TokenHolder, gmail_url: str, pacing_clock: PacingClock) -> Iterator[GmailProvider]:
    with GmailProvider(
        gmail_tokens, api_base_url=f"{gmail_url}/gmail/v1/users/me/", pacing=pacing_clock.pacing()
    ) as provider:
        yield provider


@pytest.fixture
def graph(graph_tokens: TokenHolder, graph_url: str, pacing_clock: PacingClock) -> Iterator[GraphProvider]:
    with GraphProvider(
        graph_tokens, api_base_url=f"{graph_url}/v1.0/", pacing=pacing_clock.pacing()
    ) as provider:
        yield provider
