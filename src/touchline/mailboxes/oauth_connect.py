"""Connecting Gmail and Microsoft 365 mailboxes through OAuth; reconnecting and disconnecting them.

The pages (``touchline.mailboxes.oauth_pages``) go through these steps:

1. ``connection_target`` checks, in a session, that the user may connect this kind of account, and
   gives the login hint for a reconnect.
2. ``start_authorization`` builds the provider's consent URL with state and PKCE (no network). It
   asks for reading only; ``sending=True`` (the Email tab's "Allow sending") asks for the send
   permission too, keeping what was granted before (incremental authorisation).
3. After consent, ``finish_authorization`` exchanges the code, checks the scopes the user actually
   granted (Google's consent screen lets them untick any), and reads the account's address and
   folders: network only, so call it with no session open.
4. ``connect_account`` stores the result in a session: a new mailbox with Inbox and Sent selected,
   or, for the user's existing mailbox of the same account, the new grant (``reconnect_mailbox``).

``disconnect_and_revoke`` disconnects in a transaction and then, outside it, asks the provider to
withdraw the grant; a failure there never stops a disconnect.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.kit.errors import ConflictError, NotFoundError
from touchline.mailboxes import service
from touchline.mailboxes.connect import GMAIL, GRAPH, OAUTH_PROVIDERS, api_provider, oauth_flow
from touchline.mailboxes.oauth import (
    GOOGLE_SEND_SCOPES,
    MICROSOFT_SEND_SCOPES,
    SCOPE_PURPOSES,
    AuthorizationRequest,
    OAuthFlow,
    OAuthTokens,
    TokenHolder,
)
from touchline.mailboxes.providers.base import Folder, ProviderError
from touchline.models import Mailbox
from touchline.worker import enqueue
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OAuthAccountKind:
    """A kind of account users sign in to: ``slug`` names it in URLs, ``mailbox_provider`` in storage."""

    slug: str
    mailbox_provider: str
    label: str


SEND_SCOPES = {GMAIL: GOOGLE_SEND_SCOPES, GRAPH: MICROSOFT_SEND_SCOPES}
GOOGLE = OAuthAccountKind("google", GMAIL, "Google")
MICROSOFT = OAuthAccountKind("microsoft", GRAPH, "Outlook")
ACCOUNT_KINDS = (GOOGLE, MICROSOFT)


def _client_id(settings: Settings, kind: OAuthAccountKind) -> str:
    return settings.google_client_id if kind is GOOGLE else settings.microsoft_client_id


def configured_kinds(settings: Settings) -> list[OAuthAccountKind]:
    """The kinds of account this installation can connect: those whose OAuth app is configured."""
    return [kind for kind in ACCOUNT_KINDS if _client_id(settings, kind)]


def account_kind(settings: Settings, slug: str) -> OAuthAccountKind:
    for kind in configured_kinds(settings):
        if kind.slug == slug:
            return kind
    raise NotFoundError(f"signing in with {slug!r} accounts is not set up on this installation")


def kind_of_mailbox(mailbox: Mailbox) -> OAuthAccountKind | None:
    return next((kind for kind in ACCOUNT_KINDS if kind.mailbox_provider == mailbox.provider), None)


def redirect_uri(settings: Settings, kind: OAuthAccountKind) -> str:
    """Where the provider sends the browser back; registered with the provider as it is."""
    return f"{settings.base_url.rstrip('/')}/profile/email/oauth/{kind.slug}/callback"


@dataclass(frozen=True)
class ConnectedAccount:
    """An account the user just granted access to, read but not stored yet."""

    kind: OAuthAccountKind
    address: str
    folders: list[Folder]
    tokens: OAuthTokens = field(repr=False)
    # The user asked to allow sending but left the send permission unticked: connected for reading.
    sending_refused: bool = False


class ScopesNotGranted(ProviderError):
    """The user signed in but left a permission unticked that connecting cannot do without."""


def connection_target(
    session: Session, actor: Actor, user_id: uuid.UUID, kind: OAuthAccountKind
) -> str | None:
    """Checks the user may connect an account of this kind now; for a reconnect, the address to
    suggest to the provider's sign-in page (None for a new connection)."""
    mailbox = service.mailbox_of_user(session, actor, user_id)
    if mailbox is None:
        return None
    _require_same_kind(mailbox, kind)
    return mailbox.address


def _require_same_kind(mailbox: Mailbox, kind: OAuthAccountKind) -> None:
    if mailbox.provider != kind.mailbox_provider:
        raise ConflictError(
            f"{mailbox.address} is already connected; disconnect it before connecting a {kind.label} account"
        )


def start_authorization(
    settings: Settings, kind: OAuthAccountKind, *, login_hint: str | None = None, sending: bool = False
) -> AuthorizationRequest:
    with oauth_flow(settings, kind.mailbox_provider, redirect_uri=redirect_uri(settings, kind)) as flow:
        return flow.start_authorization(login_hint=login_hint, sending=sending)


def finish_authorization(
    settings: Settings, kind: OAuthAccountKind, code: str, code_verifier: str, *, sending: bool = False
) -> ConnectedAccount:
    """Exchange the code, check the granted scopes and read the account's address and folders.

    Raises ``ScopesNotGranted`` (after withdrawing the grant) when a reading permission was left
    unticked; a send permission left unticked connects for reading and says so. Network only: hold
    no session.
    """
    with oauth_flow(settings, kind.mailbox_provider, redirect_uri=redirect_uri(settings, kind)) as flow:
        tokens = flow.exchange_code(code, code_verifier)
        _require_reading(flow, kind, tokens)
        holder = TokenHolder(flow, tokens)
        with api_provider(settings, kind.mailbox_provider, holder) as provider:
            address = provider.account_address()
            folders = provider.list_folders()
        sending_refused = sending and bool(holder.tokens.lacks(flow.provider.send_scopes))
        # The holder's tokens, not the exchanged ones: a refresh on the way would have replaced them.
        return ConnectedAccount(kind, address.strip().lower(), folders, holder.tokens, sending_refused)


def _require_reading(flow: OAuthFlow, kind: OAuthAccountKind, tokens: OAuthTokens) -> None:
    missing = tokens.lacks(flow.provider.scopes)
    if not missing:
        return
    try:
        flow.revoke(tokens)  # a grant that cannot be used leaves no stray access behind
    except ProviderError as error:
        log.warning("could not revoke a %s grant with missing scopes: %s", kind.label, error)
    needed = "; ".join(f"{SCOPE_PURPOSES.get(scope, scope)} ({scope})" for scope in missing)
    raise ScopesNotGranted(
        f"touchline needs permission to {needed}, which was left unticked on {kind.label}'s consent "
        "screen. Nothing was connected: sign in again and leave it ticked"
    )


def sending_allowed(mailbox: Mailbox, box: SecretBox) -> bool | None:
    """Whether this Gmail or Microsoft 365 mailbox's grant holds the send permission (None for
    other mailboxes). A grant whose token answer did not list its scopes counts as allowed: the
    provider then refuses a send with a reason the outbox shows."""
    kind = kind_of_mailbox(mailbox)
    if kind is None:
        return None
    try:
        tokens = OAuthTokens.from_dict(service.credentials_of(mailbox, box))
    except (KeyError, ValueError):
        return None
    return not tokens.lacks(SEND_SCOPES[kind.mailbox_provider])


def connect_account(
    session: Session, actor: Actor, box: SecretBox, *, user_id: uuid.UUID, account: ConnectedAccount
) -> tuple[Mailbox, bool]:
    """Store the account as the user's mailbox; returns it and whether it was a reconnect."""
    existing = service.mailbox_of_user(session, actor, user_id)
    if existing is not None:
        return reconnect_mailbox(session, actor, box, existing.id, account), True
    mailbox = service.connect_mailbox(
        session,
        actor,
        box,
        user_id=user_id,
        provider=account.kind.mailbox_provider,
        address=account.address,
        connection={},
        credentials=account.tokens.to_dict(),
        folders=account.folders,
    )
    return mailbox, False


def reconnect_mailbox(
    session: Session, actor: Actor, box: SecretBox, mailbox_id: uuid.UUID, account: ConnectedAccount
) -> Mailbox:
    """Give an existing mailbox the grant just obtained: sync resumes from its stored cursors.

    Only the same account may take over: another account's mail would not match the stored cursors
    and folder choices, so switching accounts means disconnecting first.
    """
    mailbox = service.get_mailbox(session, actor, mailbox_id)
    service.mailbox_of_user(session, actor, mailbox.user_id)  # the owner still has email_sync
    _require_same_kind(mailbox, account.kind)
    if mailbox.address != account.address:
        raise ConflictError(
            f"you signed in as {account.address}, but this mailbox is {mailbox.address}; sign in as "
            f"{mailbox.address}, or disconnect the mailbox to connect another account"
        )
    service.store_credentials(mailbox, box, account.tokens.to_dict())
    mailbox.status = service.STATUS_CONNECTED
    mailbox.last_error = None
    # Folders may have been added or renamed while the grant was not working; selections stay.
    service.save_folders(session, mailbox, account.folders)
    workspace_service.record_audit(
        session,
        actor,
        "mailbox.reconnect",
        "mailbox",
        mailbox.id,
        {"address": mailbox.address, "provider": mailbox.provider},
    )
    enqueue(session, service.SYNC_JOB, mailbox_id=str(mailbox.id))
    return mailbox


def revoke_grant(settings: Settings, mailbox_provider: str, credentials: dict[str, Any]) -> bool:
    """Ask the provider to withdraw a grant touchline no longer needs. Best effort, never raises:
    False when the provider offers no revocation (Microsoft) or the attempt failed."""
    try:
        tokens = OAuthTokens.from_dict(credentials)
        with oauth_flow(settings, mailbox_provider) as flow:
            return flow.revoke(tokens)
    except (ProviderError, KeyError, ValueError) as error:
        log.warning("could not revoke the grant of a %s mailbox: %s", mailbox_provider, error)
        return False


def disconnect_and_revoke(
    sessions: sessionmaker[Session],
    settings: Settings,
    box: SecretBox,
    actor: Actor,
    mailbox_id: uuid.UUID,
) -> bool:
    """Disconnect (sync stops, stored mail stays), then revoke an OAuth grant outside the transaction.

    Returns whether the provider confirmed the revocation.
    """
    with session_scope(sessions) as session:
        mailbox = service.get_mailbox(session, actor, mailbox_id)
        provider = mailbox.provider
        credentials: dict[str, Any] | None = None
        if provider in OAUTH_PROVIDERS:
            try:
                credentials = service.credentials_of(mailbox, box)
            except ValueError:
                # Encrypted with a key no longer configured: nothing usable to revoke, and no reason
                # to keep the user from disconnecting.
                credentials = None
        service.disconnect(session, actor, mailbox_id)
    if credentials is None:
        return False
    return revoke_grant(settings, provider, credentials)
