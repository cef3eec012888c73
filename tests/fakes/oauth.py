"""A fake OAuth 2.0 authorization server, as Google's and Microsoft's behave for a web application.

It consents at once (the authorize endpoint redirects straight back with a code), checks PKCE (S256)
and the client secret, and issues access tokens that the fake APIs accept until they expire or the
grant is revoked; each grant remembers the scopes it was given, for the fake APIs to check, and the
token answers list them as each provider spells them. Refreshing a revoked grant answers
``invalid_grant``, as both providers do.

Consent, as documented:
- Google's granular consent lets the user untick any scope but sign-in on the consent screen
  (``unticked_scopes``); the token answer's ``scope`` lists what was granted
  (developers.google.com/identity/protocols/oauth2/resources/granular-permissions). With
  ``include_granted_scopes=true`` the new grant also holds what the user granted the app before
  (incremental authorization, developers.google.com/identity/protocols/oauth2/web-server).
- Microsoft adds newly consented permissions to the earlier ones, lists granted Graph permissions by
  their short names and never lists offline_access; a refresh that asks for a permission the user
  never consented to is refused with ``invalid_grant`` (AADSTS65001)
  (learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow, "Refresh the access token";
  learn.microsoft.com/entra/identity-platform/permissions-consent-overview, incremental consent). An
introspection endpoint lets the test Dovecot check XOAUTH2 logins against the same tokens.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "touchline-test-client"
CLIENT_SECRET = "touchline-test-secret"
REDIRECT_URI = "http://127.0.0.1/oauth/callback"
INTROSPECTION_PATH = "/introspect"
GRAPH_RESOURCE = "https://graph.microsoft.com/"
GOOGLE_USERINFO_EMAIL = "https://www.googleapis.com/auth/userinfo.email"
_SIGN_IN = frozenset({"openid", "email", "profile", "offline_access"})


@dataclass
class _PendingCode:
    grant: str
    redirect_uri: str
    code_challenge: str


@dataclass
class FakeAuthorizationServer:
    provider_name: str
    # Microsoft hands out a new refresh token with each refresh; Google keeps the first one.
    rotates_refresh_tokens: bool
    access_token_lifetime_seconds: int = 3600
    # Who signs in on the consent page, and whether they decline (the redirect then carries
    # error=access_denied, as both providers send it).
    consenting_subject: str = "someone@example.com"
    declines_consent: bool = False
    # Scopes the user unticks on Google's granular consent screen.
    unticked_scopes: set[str] = field(default_factory=set)
    # What each subject consented to so far, for incremental consent.
    consented: dict[str, frozenset[str]] = field(default_factory=dict)
    access_tokens: dict[str, str] = field(default_factory=dict)
    # Who each grant belongs to, for the token introspection a mail server does.
    subjects: dict[str, str] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    # The scopes each grant was given; a grant missing here was given every scope asked for.
    granted_scopes: dict[str, frozenset[str]] = field(default_factory=dict)
    revoked_grants: set[str] = field(default_factory=set)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    # Errors the next refreshes answer with (interaction_required, consent_required,
    # temporarily_unavailable: the Microsoft identity platform's token endpoint errors).
    refresh_errors: list[str] = field(default_factory=list)
    _codes: dict[str, _PendingCode] = field(default_factory=dict)

    def reset(self) -> None:
        self.consenting_subject = "someone@example.com"
        self.declines_consent = False
        self.unticked_scopes.clear()
        self.consented.clear()
        self.access_tokens.clear()
        self.subjects.clear()
        self.refresh_tokens.clear()
        self.granted_scopes.clear()
        self.revoked_grants.clear()
        self.token_requests.clear()
        self.refresh_errors.clear()
        self._codes.clear()

    def issue_grant(
        self, subject: str = "someone@example.com", *, scopes: tuple[str, ...] | None = None
    ) -> tuple[str, str]:
        """A connected mailbox's (access token, refresh token), as if the user had just consented:
        to everything the application asks for, or only to ``scopes`` (a mailbox connected before
        the application asked for more)."""
        grant = secrets.token_hex(8)
        self.subjects[grant] = subject
        if scopes is not None:
            self.granted_scopes[grant] = frozenset(scopes)
        return self._new_access_token(grant), self._new_refresh_token(grant)

    def accepts(self, access_token: str) -> bool:
        grant = self.access_tokens.get(access_token)
        return grant is not None and grant not in self.revoked_grants

    def has_scope(self, access_token: str, *accepted: str) -> bool:
        """Whether the token's grant holds one of the ``accepted`` scopes."""
        grant = self.access_tokens.get(access_token, "")
        scopes = self.granted_scopes.get(grant)
        return scopes is None or any(scope in scopes for scope in accepted)

    def subject_of(self, access_token: str) -> str:
        return self.subjects.get(self.access_tokens.get(access_token, ""), "")

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops working, as if its hour had passed."""
        self.access_tokens.clear()

    def revoke_all_grants(self) -> None:
        """The user withdrew consent (or changed their password): nothing issued works any more."""
        self.revoked_grants.update(self.access_tokens.values(), self.refresh_tokens.values())

    def routes(self, *, authorize_path: str, token_path: str, revoke_path: str | None) -> list[Route]:
        routes = [
            Route(authorize_path, self._authorize, methods=["GET"]),
            Route(token_path, self._token, methods=["POST"]),
            Route(INTROSPECTION_PATH, self._introspect, methods=["GET"]),
        ]
        if revoke_path is not None:
            routes.append(Route(revoke_path, self._revoke, methods=["POST"]))
        return routes

    def _new_access_token(self, grant: str) -> str:
        token = f"access-{secrets.token_urlsafe(12)}"
        self.access_tokens[token] = grant
        return token

    def _new_refresh_token(self, grant: str) -> str:
        token = f"refresh-{secrets.token_urlsafe(12)}"
        self.refresh_tokens[token] = grant
        return token

    async def _authorize(self, request: Request) -> Response:
        params = request.query_params
        if params.get("client_id") != CLIENT_ID or params.get("response_type") != "code":
            return JSONResponse({"error": "unauthorized_client"}, status_code=400)
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return JSONResponse({"error": "invalid_request", "error_description": "PKCE required"}, 400)
        if self.declines_consent:
            query = urlencode({"error": "access_denied", "state": params.get("state", "")})
            return RedirectResponse(f"{params.get('redirect_uri')}?{query}", status_code=302)
        code = secrets.token_urlsafe(16)
        grant = secrets.token_hex(8)
        subject = self.consenting_subject
        self.subjects[grant] = subject
        granted = frozenset(params.get("scope", "").split()) - self.unticked_scopes
        if self.provider_name == "Microsoft" or params.get("include_granted_scopes") == "true":
            granted |= self.consented.get(subject, frozenset())
        self.consented[subject] = granted
        self.granted_scopes[grant] = granted
        self._codes[code] = _PendingCode(
            grant=grant,
            redirect_uri=params.get("redirect_uri", ""),
            code_challenge=params["code_challenge"],
        )
        query = urlencode({"code": code, "state": params.get("state", "")})
        return RedirectResponse(f"{params.get('redirect_uri')}?{query}", status_code=302)

    async def _token(self, request: Request) -> Response:
        form = {key: str(value) for key, value in (await request.form()).items()}
        self.token_requests.append(form)
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._exchange_code(form)
        if grant_type == "refresh_token":
            return self._refresh(form)
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)

    def _exchange_code(self, form: dict[str, str]) -> Response:
        pending = self._codes.pop(form.get("code", ""), None)
        if pending is None or pending.redirect_uri != form.get("redirect_uri"):
            return _invalid_grant("the code is unknown, used, or for another redirect URI")
        verifier = form.get("code_verifier", "").encode("ascii")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode()
        if not secrets.compare_digest(challenge, pending.code_challenge):
            return _invalid_grant("PKCE verification failed")
        return self._token_response(pending.grant, include_refresh_token=True)

    def _refresh(self, form: dict[str, str]) -> Response:
        if self.refresh_errors:
            error = self.refresh_errors.pop(0)
            # Microsoft answers every one of them with 400, temporarily_unavailable included.
            description = f"AADSTS0000: {error} (the fake's answer)\r\nTrace ID: 0000"
            return JSONResponse({"error": error, "error_description": description}, status_code=400)
        grant = self.refresh_tokens.get(form.get("refresh_token", ""))
        if grant is None or grant in self.revoked_grants:
            return _invalid_grant("Token has been expired or revoked.")
        if self.provider_name == "Microsoft" and grant in self.granted_scopes:
            asked = {scope for scope in form.get("scope", "").split() if scope not in _SIGN_IN}
            if asked - self.granted_scopes[grant]:
                return _invalid_grant(
                    "AADSTS65001: The user or administrator has not consented to use the application."
                )
        return self._token_response(grant, include_refresh_token=self.rotates_refresh_tokens)

    def _token_response(self, grant: str, *, include_refresh_token: bool) -> Response:
        body: dict[str, str | int] = {
            "access_token": self._new_access_token(grant),
            "token_type": "Bearer",
            "expires_in": self.access_token_lifetime_seconds,
            "scope": self._scope_answer(grant),
        }
        if include_refresh_token:
            body["refresh_token"] = self._new_refresh_token(grant)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    def _scope_answer(self, grant: str) -> str:
        """The granted scopes as the provider lists them in a token answer."""
        scopes = self.granted_scopes.get(grant)
        if scopes is None:  # a grant a test issued directly holds everything; say nothing, as RFC 6749 allows
            return ""
        if self.provider_name == "Microsoft":
            return " ".join(
                sorted(scope.removeprefix(GRAPH_RESOURCE) for scope in scopes if scope != "offline_access")
            )
        return " ".join(sorted(GOOGLE_USERINFO_EMAIL if scope == "email" else scope for scope in scopes))

    async def _introspect(self, request: Request) -> Response:
        """What a mail server asks before accepting an XOAUTH2 login (Dovecot's "auth" mode)."""
        authorization = request.headers.get("Authorization", "")
        token = authorization.removeprefix("Bearer ")
        if not self.accepts(token):
            return JSONResponse({"active": False})
        return JSONResponse({"active": True, "username": self.subjects[self.access_tokens[token]]})

    async def _revoke(self, request: Request) -> Response:
        form = await request.form()
        token = str(form.get("token") or request.query_params.get("token") or "")
        grant = self.refresh_tokens.get(token) or self.access_tokens.get(token)
        if grant is None:
            return JSONResponse({"error": "invalid_token"}, status_code=400)
        self.revoked_grants.add(grant)
        return Response(status_code=200)


def _invalid_grant(description: str) -> Response:
    return JSONResponse({"error": "invalid_grant", "error_description": description}, status_code=400)
