"""OAuth 2.0 authorization-code grants for Gmail and Microsoft 365 mailboxes.

Connecting a mailbox:

1. ``OAuthFlow.start_authorization()`` gives the URL to send the user to, with a random ``state`` and
   a PKCE code verifier (RFC 7636, S256). Keep both in the user's session.
2. The provider redirects back with ``code`` and ``state``; check ``request.state_matches(state)`` and
   call ``exchange_code(code, request.code_verifier)`` for ``OAuthTokens``.
3. Store ``tokens.to_json()`` encrypted (``touchline.kit.crypto.SecretBox``); this module never
   writes anything anywhere.

While syncing, a ``TokenHolder`` hands access tokens to the providers, refreshing them shortly before
they expire and once more when a server refuses one. Microsoft issues a new refresh token with every
refresh, so ``on_refreshed`` must store the new tokens. A refresh answered with ``invalid_grant``
(revoked consent, changed password, expired refresh token) raises ``AuthError``: the caller marks the
mailbox "needs reconnect".

The token endpoint is spoken to with httpx directly: the grant types used here are a handful of form
posts, and typed code is easier to keep right than an untyped client library's wrappers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from touchline.mailboxes.providers.base import (
    AuthError,
    OAuthConfigurationError,
    ProviderError,
    RateLimited,
    TransientError,
)
from touchline.mailboxes.providers.rest import retry_after_seconds, ssl_context

# Used when a token response has no expires_in (RFC 6749 makes it recommended, not required).
DEFAULT_TOKEN_LIFETIME = timedelta(hours=1)
DEFAULT_REFRESH_MARGIN = timedelta(minutes=5)

# What connecting asks for: reading mail and the account's address. Sending is asked for only when
# the user first allows it (incremental authorisation), so a user who never sends never grants it.
GOOGLE_SCOPES = (
    "openid",
    "email",
    "https://www.googleapis.com/auth/gmail.readonly",
)
GOOGLE_SEND_SCOPES = ("https://www.googleapis.com/auth/gmail.send",)
MICROSOFT_SCOPES = (
    "openid",
    "email",
    "offline_access",
    "https://graph.microsoft.com/User.Read",
    "https://graph.microsoft.com/Mail.Read",
)
MICROSOFT_SEND_SCOPES = ("https://graph.microsoft.com/Mail.Send",)
# Sign-in scopes (OpenID Connect, and offline_access for a refresh token): asked for, but Microsoft
# never lists them as granted, and no permission hangs on them.
_SIGN_IN_SCOPES = frozenset({"openid", "email", "profile", "offline_access"})
# Microsoft lists granted Graph permissions by their short names ("Mail.Read"), in any case.
_GRAPH_RESOURCE = "https://graph.microsoft.com/"

# What each scope lets touchline do, in the words a user sees on the provider's consent screen.
SCOPE_PURPOSES = {
    "https://www.googleapis.com/auth/gmail.readonly": "read your email",
    "https://www.googleapis.com/auth/gmail.send": "send email on your behalf",
    "https://graph.microsoft.com/User.Read": "sign you in and read your profile",
    "https://graph.microsoft.com/Mail.Read": "read your mail",
    "https://graph.microsoft.com/Mail.Send": "send mail as you",
}


def scope_key(scope: str) -> str:
    """One spelling per permission, so that what was asked for and what was granted compare."""
    lowered = scope.strip().lower()
    return lowered.removeprefix(_GRAPH_RESOURCE)


Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class OAuthProviderConfig:
    """Where a provider's authorization server lives and what to ask it for."""

    name: str
    authorization_url: str
    token_url: str
    revocation_url: str | None
    scopes: tuple[str, ...]
    extra_authorization_params: tuple[tuple[str, str], ...] = ()
    # Microsoft's v2 endpoint wants the scopes again on refresh; Google does not need them.
    scope_on_refresh: bool = False
    # Asked for on top of `scopes` when the user allows sending.
    send_scopes: tuple[str, ...] = ()
    # What asking for more adds so that the new grant keeps the scopes granted before.
    incremental_params: tuple[tuple[str, str], ...] = ()


def google_oauth_config(
    *,
    authorization_url: str = "https://accounts.google.com/o/oauth2/v2/auth",
    token_url: str = "https://oauth2.googleapis.com/token",  # noqa: S107 (an endpoint, not a secret)
    revocation_url: str = "https://oauth2.googleapis.com/revoke",
    scopes: tuple[str, ...] = GOOGLE_SCOPES,
) -> OAuthProviderConfig:
    return OAuthProviderConfig(
        name="Google",
        authorization_url=authorization_url,
        token_url=token_url,
        revocation_url=revocation_url,
        scopes=scopes,
        # offline access is what yields a refresh token; prompt=consent makes Google issue one again
        # when a user reconnects a mailbox they had connected before.
        extra_authorization_params=(("access_type", "offline"), ("prompt", "consent")),
        send_scopes=GOOGLE_SEND_SCOPES,
        # Google's incremental authorization: the new grant holds the earlier scopes too.
        incremental_params=(("include_granted_scopes", "true"),),
    )


def microsoft_oauth_config(
    *,
    tenant: str = "common",
    login_base_url: str = "https://login.microsoftonline.com",
    scopes: tuple[str, ...] = MICROSOFT_SCOPES,
) -> OAuthProviderConfig:
    """Microsoft has no token revocation endpoint: disconnecting forgets the tokens, and the user
    can withdraw the consent in their account's app permissions."""
    base = f"{login_base_url.rstrip('/')}/{tenant}/oauth2/v2.0"
    return OAuthProviderConfig(
        name="Microsoft",
        authorization_url=f"{base}/authorize",
        token_url=f"{base}/token",
        revocation_url=None,
        scopes=scopes,
        extra_authorization_params=(("response_mode", "query"),),
        scope_on_refresh=True,
        # Microsoft adds newly consented permissions to the ones the user gave the app before.
        send_scopes=MICROSOFT_SEND_SCOPES,
    )


@dataclass(frozen=True)
class OAuthClientCredentials:
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    redirect_uri: str = ""


@dataclass(frozen=True)
class AuthorizationRequest:
    url: str
    state: str
    code_verifier: str = field(repr=False)

    def state_matches(self, returned_state: str) -> bool:
        return hmac.compare_digest(self.state.encode(), returned_state.encode())


@dataclass(frozen=True)
class OAuthTokens:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime
    scope: str = ""
    token_type: str = "Bearer"  # noqa: S105 (the scheme's name, not a secret)

    def to_dict(self) -> dict[str, str | None]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at.isoformat(),
            "scope": self.scope,
            "token_type": self.token_type,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def granted(self) -> frozenset[str] | None:
        """The permissions the provider says this grant holds (`scope_key` spellings), or None when
        the token response did not say (RFC 6749 lets it leave `scope` out when it is as asked)."""
        keys = frozenset(scope_key(scope) for scope in self.scope.split())
        return keys or None

    def lacks(self, wanted: tuple[str, ...]) -> list[str]:
        """Which of `wanted` the grant is known not to hold; sign-in scopes never count."""
        granted = self.granted()
        if granted is None:
            return []
        return [scope for scope in wanted if scope not in _SIGN_IN_SCOPES and scope_key(scope) not in granted]

    @classmethod
    def from_json(cls, text: str) -> OAuthTokens:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("stored OAuth tokens are not a JSON object")
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OAuthTokens:
        """Raises KeyError or ValueError for data that is not a stored token set."""
        return cls(
            access_token=str(data["access_token"]),
            refresh_token=data.get("refresh_token"),
            expires_at=datetime.fromisoformat(str(data["expires_at"])),
            scope=str(data.get("scope", "")),
            token_type=str(data.get("token_type", "Bearer")),
        )


def pkce_challenge(code_verifier: str) -> str:
    """The S256 challenge of RFC 7636 section 4.2: unpadded base64url of the verifier's SHA-256."""
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OAuthFlow:
    """The token endpoint calls for one provider and one registered application."""

    def __init__(
        self,
        provider: OAuthProviderConfig,
        client: OAuthClientCredentials,
        *,
        timeout_seconds: float = 30.0,
        clock: Clock = _utc_now,
    ) -> None:
        self.provider = provider
        self._client = client
        self._clock = clock
        self._http = httpx.Client(timeout=timeout_seconds, verify=ssl_context())

    def __enter__(self) -> OAuthFlow:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def start_authorization(
        self, *, login_hint: str | None = None, sending: bool = False
    ) -> AuthorizationRequest:
        """`sending`: ask for the send permission too, keeping what was granted before."""
        state = secrets.token_urlsafe(24)
        # 64 random bytes give an 86-character verifier, inside RFC 7636's 43..128 range.
        code_verifier = secrets.token_urlsafe(64)
        params = {
            "response_type": "code",
            "client_id": self._client.client_id,
            "redirect_uri": self._client.redirect_uri,
            "scope": " ".join(self.wanted_scopes(sending=sending)),
            "state": state,
            "code_challenge": pkce_challenge(code_verifier),
            "code_challenge_method": "S256",
            **dict(self.provider.extra_authorization_params),
            **(dict(self.provider.incremental_params) if sending else {}),
        }
        if login_hint:
            params["login_hint"] = login_hint
        separator = "&" if "?" in self.provider.authorization_url else "?"
        url = f"{self.provider.authorization_url}{separator}{urlencode(params)}"
        return AuthorizationRequest(url=url, state=state, code_verifier=code_verifier)

    def wanted_scopes(self, *, sending: bool) -> tuple[str, ...]:
        return self.provider.scopes + (self.provider.send_scopes if sending else ())

    def exchange_code(self, code: str, code_verifier: str) -> OAuthTokens:
        return self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": code_verifier,
                "redirect_uri": self._client.redirect_uri,
            },
            previous_refresh_token=None,
        )

    def refresh(self, tokens: OAuthTokens) -> OAuthTokens:
        if not tokens.refresh_token:
            raise AuthError(f"{self.provider.name} gave no refresh token; the mailbox must be reconnected")
        form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
        if self.provider.scope_on_refresh:
            form["scope"] = " ".join(self._refresh_scopes(tokens))
        refreshed = self._token_request(form, previous_refresh_token=tokens.refresh_token)
        if not refreshed.scope and tokens.scope:
            # A refresh answer that leaves `scope` out grants what the grant held before.
            refreshed = replace(refreshed, scope=tokens.scope)
        return refreshed

    def _refresh_scopes(self, tokens: OAuthTokens) -> tuple[str, ...]:
        """The scopes that were granted: asking a refresh for one the user never granted (sending,
        before they allowed it) would be refused, and asking for fewer would drop one."""
        granted = tokens.granted()
        if granted is None:
            return self.provider.scopes
        known = self.provider.scopes + self.provider.send_scopes
        return tuple(scope for scope in known if scope in _SIGN_IN_SCOPES or scope_key(scope) in granted)

    def revoke(self, tokens: OAuthTokens) -> bool:
        """Withdraw the grant at the provider; False when the provider offers no way to do so.

        Revoking the refresh token also ends its access tokens. A token the server no longer knows
        counts as revoked.
        """
        if self.provider.revocation_url is None:
            return False
        token = tokens.refresh_token or tokens.access_token
        response = self._post(self.provider.revocation_url, {"token": token})
        if response.status_code == 200 or _oauth_error(response) in {"invalid_token", "invalid_grant"}:
            return True
        raise _token_endpoint_error(self.provider.name, response)

    def _token_request(self, form: Mapping[str, str], previous_refresh_token: str | None) -> OAuthTokens:
        client_form = {"client_id": self._client.client_id}
        if self._client.client_secret:
            client_form["client_secret"] = self._client.client_secret
        requested_at = self._clock()
        response = self._post(self.provider.token_url, {**form, **client_form})
        if response.status_code != 200:
            raise _token_endpoint_error(self.provider.name, response)
        try:
            body: dict[str, Any] = response.json()
            access_token = str(body["access_token"])
        except (ValueError, KeyError, TypeError) as error:
            raise TransientError(f"{self.provider.name} sent an unreadable token response") from error
        expires_in = body.get("expires_in")
        lifetime = timedelta(seconds=int(expires_in)) if expires_in is not None else DEFAULT_TOKEN_LIFETIME
        return OAuthTokens(
            access_token=access_token,
            # Google keeps the refresh token the same and omits it from refresh answers.
            refresh_token=body.get("refresh_token") or previous_refresh_token,
            # Measured from before the request, so network time never makes a token look fresher.
            expires_at=requested_at + lifetime,
            scope=str(body.get("scope", "")),
            token_type=str(body.get("token_type", "Bearer")),
        )

    def _post(self, url: str, form: Mapping[str, str]) -> httpx.Response:
        try:
            return self._http.post(url, data=dict(form), headers={"Accept": "application/json"})
        except httpx.TransportError as error:
            raise TransientError(f"{self.provider.name} sign-in could not be reached: {error}") from error


class TokenHolder:
    """Keeps one mailbox's tokens fresh; safe to share between a provider's worker threads."""

    def __init__(
        self,
        flow: OAuthFlow,
        tokens: OAuthTokens,
        *,
        on_refreshed: Callable[[OAuthTokens], None] | None = None,
        refresh_margin: timedelta = DEFAULT_REFRESH_MARGIN,
        clock: Clock = _utc_now,
    ) -> None:
        self._flow = flow
        self._tokens = tokens
        self._on_refreshed = on_refreshed
        self._refresh_margin = refresh_margin
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def tokens(self) -> OAuthTokens:
        return self._tokens

    def access_token(self) -> str:
        with self._lock:
            if self._tokens.expires_at - self._refresh_margin <= self._clock():
                self._refresh()
            return self._tokens.access_token

    def refresh_rejected(self, rejected_token: str) -> str:
        with self._lock:
            if self._tokens.access_token == rejected_token:
                self._refresh()
            return self._tokens.access_token

    def _refresh(self) -> None:
        self._tokens = self._flow.refresh(self._tokens)
        if self._on_refreshed is not None:
            self._on_refreshed(self._tokens)


_SIGN_IN_AGAIN_ERRORS = frozenset({"interaction_required", "consent_required"})


def _error_description(response: httpx.Response) -> str:
    try:
        description = str(response.json().get("error_description", ""))
    except (ValueError, AttributeError):
        return ""
    # The first line only: Microsoft appends trace and correlation ids on further lines.
    return " ".join(description.splitlines()[:1])[:200]


def _oauth_error(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", ""))
    except (ValueError, AttributeError):
        return ""


def _token_endpoint_error(provider_name: str, response: httpx.Response) -> ProviderError:
    status = response.status_code
    error = _oauth_error(response)
    if error == "invalid_grant":
        return AuthError(
            f"{provider_name} no longer accepts this mailbox's grant "
            "(access was withdrawn, it expired, or the password changed)"
        )
    # The Microsoft identity platform's token endpoint errors (its "OAuth 2.0 authorization code
    # flow" page): the user must sign in again (multi-factor, a changed policy, new consent), or the
    # service is briefly too busy and the same request will work later.
    if error in _SIGN_IN_AGAIN_ERRORS:
        return AuthError(
            f"{provider_name} wants the user to sign in again ({error}): {_error_description(response)}"
        )
    if error == "temporarily_unavailable":
        return TransientError(f"{provider_name} sign-in is temporarily unavailable; retrying later")
    if status == 429:
        return RateLimited(f"{provider_name} sign-in is throttling requests", retry_after_seconds(response))
    if status >= 500:
        return TransientError(f"{provider_name} sign-in answered HTTP {status}")
    return OAuthConfigurationError(
        f"{provider_name} sign-in refused the request: {error or f'HTTP {status}'}"
    )
