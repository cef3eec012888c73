"""OAuth grants against the fake Google and Microsoft authorization servers."""

from __future__ import annotations

import datetime as dt
import threading
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.fakes.gmail import FakeGmail
from tests.fakes.graph import FakeGraph
from tests.fakes.oauth import CLIENT_ID, REDIRECT_URI
from touchline.kit.crypto import SecretBox
from touchline.mailboxes.oauth import (
    GOOGLE_SCOPES,
    OAuthClientCredentials,
    OAuthFlow,
    OAuthTokens,
    TokenHolder,
    pkce_challenge,
)
from touchline.mailboxes.providers.base import AuthError, OAuthConfigurationError

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


def consent(flow: OAuthFlow) -> tuple[str, str, str]:
    """Follow the authorization URL as the user's browser would; returns (code, state, verifier)."""
    request = flow.start_authorization(login_hint="sam@touchline.example")
    response = httpx.get(request.url, follow_redirects=False)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    returned = parse_qs(location.query)
    assert request.state_matches(returned["state"][0])
    return returned["code"][0], returned["state"][0], request.code_verifier


def test_the_authorization_url_carries_state_pkce_and_offline_access(google_flow: OAuthFlow) -> None:
    request = google_flow.start_authorization(login_hint="sam@touchline.example")
    params = {key: values[0] for key, values in parse_qs(urlsplit(request.url).query).items()}

    assert params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == REDIRECT_URI
    assert params["response_type"] == "code"
    assert params["scope"].split() == list(GOOGLE_SCOPES)
    assert params["state"] == request.state
    assert params["code_challenge"] == pkce_challenge(request.code_verifier)
    assert params["code_challenge_method"] == "S256"
    assert params["access_type"] == "offline"
    assert params["login_hint"] == "sam@touchline.example"
    assert 43 <= len(request.code_verifier) <= 128
    assert not request.state_matches(request.state + "x")
    assert google_flow.start_authorization().state != request.state


def test_pkce_challenge_matches_rfc_7636_appendix_b() -> None:
    assert (
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_a_code_is_exchanged_for_tokens(fake_gmail: FakeGmail, google_flow: OAuthFlow) -> None:
    code, _, verifier = consent(google_flow)
    tokens = google_flow.exchange_code(code, verifier)

    assert fake_gmail.oauth.accepts(tokens.access_token)
    assert tokens.refresh_token in fake_gmail.oauth.refresh_tokens
    assert tokens.expires_at > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=55)
    assert tokens.access_token not in repr(tokens)


def test_a_code_with_the_wrong_verifier_is_refused(google_flow: OAuthFlow) -> None:
    code, _, verifier = consent(google_flow)
    with pytest.raises(AuthError):
        google_flow.exchange_code(code, verifier[::-1])


def test_a_wrong_client_secret_is_a_configuration_error(google_flow: OAuthFlow) -> None:
    code, _, verifier = consent(google_flow)
    wrong = OAuthFlow(google_flow.provider, OAuthClientCredentials(CLIENT_ID, "wrong", REDIRECT_URI))
    with wrong, pytest.raises(OAuthConfigurationError, match="invalid_client"):
        wrong.exchange_code(code, verifier)


def test_tokens_are_refreshed_shortly_before_they_expire(
    fake_gmail: FakeGmail, google_flow: OAuthFlow
) -> None:
    access_token, refresh_token = fake_gmail.oauth.issue_grant()
    clock = [NOW]
    stored: list[OAuthTokens] = []
    holder = TokenHolder(
        google_flow,
        OAuthTokens(access_token, refresh_token, expires_at=NOW + dt.timedelta(minutes=10)),
        on_refreshed=stored.append,
        refresh_margin=dt.timedelta(minutes=5),
        clock=lambda: clock[0],
    )

    assert holder.access_token() == access_token
    clock[0] = NOW + dt.timedelta(minutes=6)
    fresh = holder.access_token()

    assert fresh != access_token
    assert fake_gmail.oauth.accepts(fresh)
    assert stored == [holder.tokens]
    assert holder.tokens.refresh_token == refresh_token


def test_a_rejected_token_is_refreshed_once_however_many_requests_saw_it(
    fake_gmail: FakeGmail, gmail_tokens: TokenHolder
) -> None:
    rejected = gmail_tokens.access_token()
    start = threading.Barrier(4)
    fresh: list[str] = []

    def refresh() -> None:
        start.wait()
        fresh.append(gmail_tokens.refresh_rejected(rejected))

    workers = [threading.Thread(target=refresh) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert len(fake_gmail.oauth.token_requests) == 1
    assert len(set(fresh)) == 1
    assert fresh[0] != rejected


def test_a_revoked_grant_cannot_be_refreshed(fake_gmail: FakeGmail, gmail_tokens: TokenHolder) -> None:
    fake_gmail.oauth.revoke_all_grants()
    with pytest.raises(AuthError, match="no longer accepts this mailbox"):
        gmail_tokens.refresh_rejected(gmail_tokens.access_token())


def test_google_grants_are_revoked_at_the_provider(
    fake_gmail: FakeGmail, google_flow: OAuthFlow, gmail_tokens: TokenHolder
) -> None:
    assert google_flow.revoke(gmail_tokens.tokens) is True
    assert not fake_gmail.oauth.accepts(gmail_tokens.tokens.access_token)
    with pytest.raises(AuthError):
        google_flow.refresh(gmail_tokens.tokens)
    # Revoking again is not an error: the grant is gone either way.
    assert google_flow.revoke(gmail_tokens.tokens) is True


def test_microsoft_has_no_revocation_endpoint(fake_graph: FakeGraph, microsoft_flow: OAuthFlow) -> None:
    access_token, refresh_token = fake_graph.oauth.issue_grant()
    tokens = OAuthTokens(access_token, refresh_token, expires_at=NOW)
    assert microsoft_flow.revoke(tokens) is False


def test_microsoft_code_flow_and_refresh_rotate_the_refresh_token(
    fake_graph: FakeGraph, microsoft_flow: OAuthFlow
) -> None:
    code, _, verifier = consent(microsoft_flow)
    tokens = microsoft_flow.exchange_code(code, verifier)
    refreshed = microsoft_flow.refresh(tokens)

    assert refreshed.refresh_token not in (None, tokens.refresh_token)
    assert fake_graph.oauth.accepts(refreshed.access_token)
    assert "offline_access" in fake_graph.oauth.token_requests[-1]["scope"].split()


def test_a_grant_without_refresh_token_must_be_reconnected(google_flow: OAuthFlow) -> None:
    with pytest.raises(AuthError, match="no refresh token"):
        google_flow.refresh(OAuthTokens("access", None, expires_at=NOW))


def test_tokens_round_trip_through_the_secret_box() -> None:
    box = SecretBox([Fernet.generate_key().decode()])
    tokens = OAuthTokens("ya29.access", "1//refresh", expires_at=NOW, scope="mail openid")

    sealed = box.encrypt(tokens.to_json())

    assert "ya29.access" not in sealed
    assert "1//refresh" not in sealed
    assert OAuthTokens.from_json(box.decrypt(sealed)) == tokens
