"""Pages that connect (or reconnect) a Gmail or Microsoft 365 mailbox by signing in with the provider.

``/profile/email/oauth/{provider}/start`` sends the browser to the provider's consent page; the state
and PKCE verifier wait in the signed session cookie until ``.../callback`` comes back with a code.
``?sending=1`` (the Email tab's "Allow sending") asks for the send permission as well; a reconnect
asks for it again when the grant it replaces held it.
Every outcome ends on the Email tab, with a message saying what happened. Thin: the work is in
``touchline.mailboxes.oauth_connect``.
"""

from __future__ import annotations

import hmac
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.kit.errors import ConflictError, InvalidInputError, TooManyAttemptsError
from touchline.mailboxes import oauth_connect
from touchline.mailboxes import service as mailbox_service
from touchline.mailboxes.providers.base import ProviderError
from touchline.ui import flash, redirect
from touchline.workspace.auth import Now, PageActor, Sessions
from touchline.workspace.permissions import Permission

router = APIRouter(include_in_schema=False)

EMAIL_TAB = "/profile/email"
# One sign-in at a time per browser: starting another replaces it, and a callback uses it up.
PENDING_KEY = "oauth_pending"
# OAuth error codes are short ASCII words (RFC 6749 section 4.1.2.1); anything else is not shown.
_ERROR_CODE = re.compile(r"[a-z_]{1,60}")


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _back_with_error(request: Request, message: str) -> Response:
    flash(request, message, "error")
    return redirect(EMAIL_TAB)


@router.get("/profile/email/oauth/{provider}/start")
def start_oauth(
    provider: str, request: Request, actor: PageActor, sessions: Sessions, now: Now, sending: bool = False
) -> Response:
    actor.require(Permission.EMAIL_SYNC)
    assert actor.user_id is not None
    settings = _settings(request)
    kind = oauth_connect.account_kind(settings, provider)
    try:
        with session_scope(sessions) as session:
            mailbox_service.count_connect_attempt(session, actor, settings, now)
    except TooManyAttemptsError as error:
        return _back_with_error(request, str(error))
    box: SecretBox = request.app.state.secret_box
    try:
        with session_scope(sessions) as session:
            login_hint = oauth_connect.connection_target(session, actor, actor.user_id, kind)
            mailbox = mailbox_service.mailbox_of_user(session, actor, actor.user_id)
            # A reconnect keeps sending allowed when the grant it replaces allowed it.
            sending = sending or (mailbox is not None and oauth_connect.sending_allowed(mailbox, box) is True)
    except ConflictError as error:
        return _back_with_error(request, str(error))
    authorization = oauth_connect.start_authorization(settings, kind, login_hint=login_hint, sending=sending)
    request.session[PENDING_KEY] = {
        "provider": kind.slug,
        "user_id": str(actor.user_id),
        "state": authorization.state,
        "code_verifier": authorization.code_verifier,
        "sending": sending,
    }
    return RedirectResponse(authorization.url, status_code=303)


@router.get("/profile/email/oauth/{provider}/callback")
def finish_oauth(
    provider: str,
    request: Request,
    actor: PageActor,
    sessions: Sessions,
    code: str = "",
    state: str = "",
    error: str = "",
) -> Response:
    actor.require(Permission.EMAIL_SYNC)
    assert actor.user_id is not None
    settings = _settings(request)
    kind = oauth_connect.account_kind(settings, provider)
    pending: Any = request.session.pop(PENDING_KEY, None)
    if error:
        return _back_with_error(request, _refusal_message(kind, error))
    if not _is_expected(pending, kind, str(actor.user_id), state) or not code:
        # A forged or replayed callback must not attach someone else's account to this user.
        return _back_with_error(
            request,
            f"The {kind.label} sign-in could not be verified: it expired, was already used, or was "
            "started in another window. Nothing was connected; please try again.",
        )
    try:
        account = oauth_connect.finish_authorization(
            settings, kind, code, str(pending["code_verifier"]), sending=pending.get("sending") is True
        )
    except oauth_connect.ScopesNotGranted as refusal:
        return _back_with_error(request, f"{refusal}.")
    except ProviderError as failure:
        return _back_with_error(
            request, f"{kind.label} sign-in did not complete: {failure}. Nothing was connected."
        )
    box = request.app.state.secret_box
    try:
        with session_scope(sessions) as session:
            _, reconnected = oauth_connect.connect_account(
                session, actor, box, user_id=actor.user_id, account=account
            )
    except (ConflictError, InvalidInputError) as refusal:
        # The grant just given will not be used; withdrawing it leaves no stray access behind.
        oauth_connect.revoke_grant(settings, kind.mailbox_provider, account.tokens.to_dict())
        return _back_with_error(request, str(refusal))
    if account.sending_refused:
        flash(
            request,
            f"{account.address} is connected for reading, but sending was not allowed: the permission "
            f"to send was left unticked on {kind.label}'s consent screen. Use Allow sending to try again.",
            "error",
        )
    elif reconnected:
        flash(request, f"{account.address} is reconnected; sync continues where it stopped.")
    else:
        flash(
            request,
            f"{account.address} is connected. Inbox and Sent are selected; choose other folders, "
            "then Update sync settings.",
        )
    return redirect(EMAIL_TAB)


def _is_expected(pending: Any, kind: oauth_connect.OAuthAccountKind, user_id: str, state: str) -> bool:
    if not isinstance(pending, dict) or not state:
        return False
    if pending.get("provider") != kind.slug or pending.get("user_id") != user_id:
        return False
    expected = pending.get("state")
    return isinstance(expected, str) and hmac.compare_digest(expected.encode(), state.encode())


def _refusal_message(kind: oauth_connect.OAuthAccountKind, error: str) -> str:
    if error == "access_denied":
        return f"Access to your {kind.label} account was not granted, so nothing was connected."
    # Only a well-formed error code is echoed: the query string is anyone's to write.
    detail = f" ({error})" if _ERROR_CODE.fullmatch(error) else ""
    return f"{kind.label} sign-in failed{detail}; nothing was connected. Please try again."
