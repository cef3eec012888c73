"""Opening a provider for a stored mailbox: decrypts its credentials; persists refreshed OAuth tokens.

Opening does no network I/O, so a caller may open a provider while it holds a session. OAuth access
tokens are refreshed lazily, on first use or when a server refuses one, and each refresh is written
back at once in a short transaction of its own: Microsoft rotates refresh tokens, so a refresh that is
not stored would leave the next run holding a token Microsoft may have retired.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, lazyload, sessionmaker

from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.kit.errors import InvalidInputError
from touchline.kit.net import AddressPolicy
from touchline.mailboxes.providers.base import (
    AccessTokenSource,
    Folder,
    InsecureConnectionError,
    OAuthConfigurationError,
    ProviderError,
)
from touchline.mailboxes.providers.imap import ConnectionSecurity, ImapAccount, ImapProvider
from touchline.mailboxes.providers.smtp import (
    DEFAULT_SMTP_PORT,
    DEFAULT_SMTP_SECURITY,
    SmtpAccount,
    check_login,
    smtp_settings,
)
from touchline.mailboxes.service import credentials_of, store_credentials
from touchline.models import Mailbox

if TYPE_CHECKING:
    # Loaded when a Gmail or Graph mailbox is opened (with httpx): opening an IMAP mailbox, as a
    # sync of IMAP mailboxes only does, never needs them.
    from touchline.mailboxes.oauth import OAuthFlow, OAuthTokens
    from touchline.mailboxes.providers.gmail import GmailProvider
    from touchline.mailboxes.providers.graph import GraphProvider
    from touchline.mailboxes.providers.rest import Pacing

    OpenedProvider = ImapProvider | GmailProvider | GraphProvider

log = logging.getLogger(__name__)

ProviderFactory = Callable[[Mailbox, SecretBox], Any]

GMAIL = "gmail"
GRAPH = "graph"
OAUTH_PROVIDERS = (GMAIL, GRAPH)

# Checking a login while its user waits runs on threads of its own, never on the threads that serve
# requests: a server that accepts the connection and stays silent would otherwise hold a request
# thread until its timeout, and a few dozen such checks would stop every page and API call. A check
# still running at its deadline is aborted, so that a slow server cannot keep one of these threads.
LOGIN_CHECK_TIMEOUT_SECONDS = 15.0
LOGIN_CHECK_THREADS = 8
_login_checks = ThreadPoolExecutor(LOGIN_CHECK_THREADS, thread_name_prefix="mailbox-login-check")


def mail_host_policy(settings: Settings) -> AddressPolicy:
    """Where connections to mail servers users name (IMAP, SMTP) may go."""
    return AddressPolicy(
        allow_private=settings.allow_private_mail_hosts,
        private_hint="an operator can allow private mail hosts with TOUCHLINE_ALLOW_PRIVATE_MAIL_HOSTS",
    )


def imap_account(connection: dict[str, Any], password: str, addresses: AddressPolicy) -> ImapAccount:
    try:
        security = ConnectionSecurity(connection.get("security", "tls"))
    except ValueError:
        raise InsecureConnectionError(
            f"unknown connection security {connection.get('security')!r}; use tls, starttls or plain"
        ) from None
    return ImapAccount(
        host=str(connection["host"]),
        port=int(connection["port"]) if connection.get("port") else None,
        security=security,
        username=str(connection["username"]),
        password=password,
        addresses=addresses,
    )


def list_imap_folders(connection: dict[str, Any], password: str, settings: Settings) -> list[Folder]:
    """Log in to IMAP and list folders, then log in to SMTP with the same credentials: proves both
    before anything is stored."""
    return _check_logins(_login_check(connection, password, settings), connection, password, settings)


async def check_imap_login(connection: dict[str, Any], password: str, settings: Settings) -> list[Folder]:
    """``list_imap_folders`` on the login-check threads, answered within LOGIN_CHECK_TIMEOUT_SECONDS."""
    host = str(connection["host"])
    provider = _login_check(connection, password, settings)
    check = _login_checks.submit(_check_logins, provider, connection, password, settings)
    answer = asyncio.wrap_future(check)
    done, _ = await asyncio.wait({answer}, timeout=LOGIN_CHECK_TIMEOUT_SECONDS)
    if not done:
        if check.cancel():
            raise InvalidInputError("too many mailboxes are being connected right now; try again in a minute")
        provider.abort()  # the check ends now, rather than hold its thread until the server answers
        raise InvalidInputError(
            f"could not sign in to {host}: no answer within {LOGIN_CHECK_TIMEOUT_SECONDS:g} seconds"
        )
    return answer.result()


def _login_check(connection: dict[str, Any], password: str, settings: Settings) -> ImapProvider:
    try:
        return ImapProvider(imap_account(connection, password, mail_host_policy(settings)))
    except ProviderError as error:
        raise InvalidInputError(f"could not sign in to {connection['host']}: {error}") from None


def _check_logins(
    provider: ImapProvider, connection: dict[str, Any], password: str, settings: Settings
) -> list[Folder]:
    with provider:
        try:
            folders = provider.list_folders()
        except ProviderError as error:
            raise InvalidInputError(f"could not sign in to {connection['host']}: {error}") from None
    try:
        account = smtp_account(connection, password, mail_host_policy(settings))
        # Within the login check's deadline, like the IMAP half.
        check_login(replace(account, timeout_seconds=LOGIN_CHECK_TIMEOUT_SECONDS))
    except ProviderError as error:
        raise InvalidInputError(f"could not sign in to SMTP for sending: {error}") from None
    return folders


def smtp_connection(imap_host: str, host: str | None, port: int | None, security: str) -> dict[str, Any]:
    """The SMTP settings kept with an IMAP mailbox's connection: by default its IMAP host, 587, STARTTLS."""
    return {
        "host": (host or "").strip() or imap_host,
        "port": port or DEFAULT_SMTP_PORT,
        "security": security or DEFAULT_SMTP_SECURITY.value,
    }


def smtp_account(connection: dict[str, Any], password: str, addresses: AddressPolicy) -> SmtpAccount:
    """SMTP submission for an IMAP mailbox: its stored SMTP settings and the IMAP login."""
    host, port, security = smtp_settings(connection)
    return SmtpAccount(
        host=host,
        port=port,
        security=security,
        username=str(connection["username"]),
        password=password,
        addresses=addresses,
    )


def oauth_flow(settings: Settings, mailbox_provider: str, *, redirect_uri: str = "") -> OAuthFlow:
    """The token endpoint calls for Gmail or Graph mailboxes with the operator's registered app.

    ``redirect_uri`` matters only for the authorization-code grant; refreshing and revoking ignore it.
    The caller closes the flow.
    """
    from touchline.mailboxes.oauth import (
        OAuthClientCredentials,
        OAuthFlow,
        google_oauth_config,
        microsoft_oauth_config,
    )

    if mailbox_provider == GMAIL:
        if not settings.google_client_id:
            raise OAuthConfigurationError(
                "Gmail mailboxes need Google sign-in: an administrator sets TOUCHLINE_GOOGLE_CLIENT_ID "
                "and TOUCHLINE_GOOGLE_CLIENT_SECRET"
            )
        return OAuthFlow(
            google_oauth_config(
                authorization_url=settings.google_authorization_url,
                token_url=settings.google_token_url,
                revocation_url=settings.google_revocation_url,
            ),
            OAuthClientCredentials(
                settings.google_client_id, settings.google_client_secret or None, redirect_uri
            ),
        )
    if mailbox_provider == GRAPH:
        if not settings.microsoft_client_id:
            raise OAuthConfigurationError(
                "Microsoft 365 mailboxes need Microsoft sign-in: an administrator sets "
                "TOUCHLINE_MICROSOFT_CLIENT_ID and TOUCHLINE_MICROSOFT_CLIENT_SECRET"
            )
        return OAuthFlow(
            microsoft_oauth_config(
                tenant=settings.microsoft_tenant, login_base_url=settings.microsoft_login_base_url
            ),
            OAuthClientCredentials(
                settings.microsoft_client_id, settings.microsoft_client_secret or None, redirect_uri
            ),
        )
    raise ValueError(f"{mailbox_provider!r} mailboxes do not sign in with OAuth")


def api_provider(
    settings: Settings,
    mailbox_provider: str,
    token_source: AccessTokenSource,
    *,
    on_close: Callable[[], None] | None = None,
    mailbox_id: uuid.UUID | None = None,
    pacing: Pacing | None = None,
) -> GmailProvider | GraphProvider:
    """``mailbox_id`` makes every provider of that mailbox in this process share its quota budget
    and concurrency limit; ``pacing`` replaces the real clock (tests)."""
    key = str(mailbox_id) if mailbox_id is not None else None
    if mailbox_provider == GMAIL:
        from touchline.mailboxes.providers.gmail import GmailProvider

        return GmailProvider(
            token_source,
            api_base_url=settings.gmail_api_base_url,
            on_close=on_close,
            mailbox_key=key,
            pacing=pacing,
            units_per_minute=settings.gmail_quota_units_per_minute,
        )
    if mailbox_provider == GRAPH:
        from touchline.mailboxes.providers.graph import GraphProvider

        return GraphProvider(
            token_source,
            api_base_url=settings.graph_api_base_url,
            on_close=on_close,
            mailbox_key=key,
            pacing=pacing,
        )
    raise ValueError(f"{mailbox_provider!r} mailboxes are not read through a REST API")


class StoredTokens:
    """Writes a mailbox's refreshed OAuth tokens back, encrypted, in a transaction of its own.

    A write happens only while the stored grant is still the one this sync started from: when the
    user reconnected meanwhile, the new grant they just gave must not be overwritten by the old one.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        box: SecretBox,
        mailbox_id: uuid.UUID,
        refresh_token: str | None,
    ) -> None:
        self._sessions = sessions
        self._box = box
        self._mailbox_id = mailbox_id
        self._refresh_token = refresh_token

    def __call__(self, tokens: OAuthTokens) -> None:
        with session_scope(self._sessions) as session:
            # Locked (on PostgreSQL) so a reconnect cannot slip in between the check and the write;
            # without the user joined in, which PostgreSQL cannot lock through an outer join.
            mailbox = session.scalar(
                select(Mailbox)
                .options(lazyload(Mailbox.user))
                .where(Mailbox.id == self._mailbox_id)
                .with_for_update()
            )
            if mailbox is None:
                return  # disconnected during the sync; nothing to keep
            stored = credentials_of(mailbox, self._box)
            if stored.get("refresh_token") != self._refresh_token:
                log.info("mailbox %s was reconnected during a sync; its new grant is kept", self._mailbox_id)
                return
            store_credentials(mailbox, self._box, tokens.to_dict())
        self._refresh_token = tokens.refresh_token


def open_provider(
    mailbox: Mailbox,
    box: SecretBox,
    *,
    settings: Settings | None = None,
    sessions: sessionmaker[Session] | None = None,
    pacing: Pacing | None = None,
) -> OpenedProvider:
    """A provider for ``mailbox``; the caller closes it.

    ``settings`` (read from the environment when not given) say where IMAP servers may be, and hold
    the OAuth app of Gmail and Graph mailboxes. With ``sessions``, refreshed tokens are stored as
    ``StoredTokens`` describes; without, they last as long as the provider, which suits a one-off
    call but not a sync.
    """
    credentials = credentials_of(mailbox, box)
    settings = settings if settings is not None else Settings()
    if mailbox.provider == "imap":
        password = str(credentials["password"])
        return ImapProvider(imap_account(mailbox.connection, password, mail_host_policy(settings)))
    if mailbox.provider in OAUTH_PROVIDERS:
        from touchline.mailboxes.oauth import OAuthTokens, TokenHolder

        tokens = OAuthTokens.from_dict(credentials)
        persist = (
            StoredTokens(sessions, box, mailbox.id, tokens.refresh_token) if sessions is not None else None
        )
        flow = oauth_flow(settings, mailbox.provider)
        try:
            holder = TokenHolder(flow, tokens, on_refreshed=persist)
            return api_provider(
                settings, mailbox.provider, holder, on_close=flow.close, mailbox_id=mailbox.id, pacing=pacing
            )
        except BaseException:
            flow.close()
            raise
    raise InsecureConnectionError(f"mailboxes of kind {mailbox.provider!r} cannot be opened by this version")
