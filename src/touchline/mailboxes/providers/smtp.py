"""SMTP submission for IMAP mailboxes and the workspace relay: opening, securing and logging in.

One function, `open_smtp`, opens every SMTP connection touchline makes to a host someone typed: it
checks where the host leads (`kit.net.AddressPolicy`) and connects to the checked addresses only, while
TLS still verifies the certificate for the name as typed. Errors name what went wrong in fixed words;
what a server said while greeting or refusing a login goes to the log, never back to the user, so
the connect form cannot be used to read other services' banners. Logging in uses the mailbox's IMAP
credentials (most providers use the same name and password for both) or XOAUTH2 with an access
token. Plain text is allowed only to this machine, as for IMAP.
"""

from __future__ import annotations

import base64
import logging
import smtplib
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from touchline.kit.errors import InvalidInputError
from touchline.kit.net import AddressPolicy, CheckedTarget, UnresolvableHostError
from touchline.mailboxes.providers.base import (
    AccessTokenSource,
    AuthError,
    InsecureConnectionError,
    TransientError,
)
from touchline.mailboxes.providers.imap import ConnectionSecurity, is_loopback_host

DEFAULT_SMTP_PORT: Final = 587
DEFAULT_SMTP_SECURITY: Final = ConnectionSecurity.STARTTLS
IMPLICIT_TLS_PORT: Final = 465

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmtpAccount:
    """How to reach and log in to an SMTP submission server. No credentials: no login (a relay that
    trusts this machine)."""

    host: str
    port: int = DEFAULT_SMTP_PORT
    security: ConnectionSecurity = DEFAULT_SMTP_SECURITY
    username: str = ""
    password: str | None = field(default=None, repr=False)
    token_source: AccessTokenSource | None = field(default=None, repr=False)
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    timeout_seconds: float = 60.0
    # Public addresses only unless the caller's policy says otherwise (the operator's relay, private hosts).
    addresses: AddressPolicy = field(default=AddressPolicy(), repr=False)

    def __post_init__(self) -> None:
        if self.password is not None and self.token_source is not None:
            raise ValueError("an SMTP account logs in with either a password or a token source")
        if self.security is ConnectionSecurity.PLAIN and not is_loopback_host(self.host):
            raise InsecureConnectionError(
                f"refusing an unencrypted SMTP connection to {self.host}: plain text is allowed only to "
                "this machine (localhost); choose TLS or STARTTLS"
            )


def smtp_settings(connection: dict[str, Any]) -> tuple[str, int, ConnectionSecurity]:
    """The SMTP host, port and security stored with an IMAP mailbox's connection settings; mailboxes
    connected before sending existed get the defaults (the IMAP host, 587, STARTTLS)."""
    stored = connection.get("smtp") or {}
    try:
        security = ConnectionSecurity(stored.get("security", DEFAULT_SMTP_SECURITY))
    except ValueError:
        raise InsecureConnectionError(
            f"unknown SMTP security {stored.get('security')!r}; use tls, starttls or plain"
        ) from None
    host = str(stored.get("host") or connection["host"])
    port = int(stored.get("port") or DEFAULT_SMTP_PORT)
    return host, port, security


class _PinnedSmtp(smtplib.SMTP):
    """smtplib's client, connected to the checked addresses rather than to what the name resolves to now."""

    def __init__(self, target: CheckedTarget, timeout: float) -> None:
        self._target = target
        super().__init__(timeout=timeout)
        # STARTTLS checks the certificate for `_host`, which only a constructor given a host would set.
        self._host = target.host

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return self._target.connect(timeout)


class _PinnedSmtpTls(smtplib.SMTP_SSL):
    def __init__(self, target: CheckedTarget, timeout: float, context: ssl.SSLContext) -> None:
        self._target = target
        super().__init__(timeout=timeout, context=context)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # The certificate is checked for the typed name, the connection made to the checked address.
        return self.context.wrap_socket(self._target.connect(timeout), server_hostname=self._target.host)


def open_smtp(
    host: str,
    port: int,
    security: ConnectionSecurity,
    *,
    timeout: float,
    ssl_context: ssl.SSLContext | None = None,
    addresses: AddressPolicy,
) -> smtplib.SMTP:
    """A connected, greeted and (unless plain) encrypted SMTP client; the caller logs in and closes.

    Every SMTP connection to a configured or typed host is opened here."""
    try:
        target = addresses.check(host, port)
    except UnresolvableHostError as error:
        raise TransientError(str(error)) from error
    except InvalidInputError as error:  # a forbidden address: no retry will change it
        raise InsecureConnectionError(str(error)) from error
    context = ssl_context or ssl.create_default_context()
    client: smtplib.SMTP = (
        _PinnedSmtpTls(target, timeout, context)
        if security is ConnectionSecurity.TLS
        else _PinnedSmtp(target, timeout)
    )
    try:
        with _certificate_errors(host):
            code, greeting = client.connect(host, port)
        if code != 220:
            raise smtplib.SMTPConnectError(code, greeting)
        client.ehlo()
        if security is ConnectionSecurity.STARTTLS:
            if not client.has_extn("starttls"):
                raise InsecureConnectionError(f"{host} does not offer STARTTLS; refusing plain text")
            with _certificate_errors(host):
                client.starttls(context=context)
            client.ehlo()
    except (OSError, smtplib.SMTPException) as error:
        close_quietly(client)
        log.info("SMTP connection to %s:%s failed: %r", host, port, error)
        raise TransientError(f"{host}:{port} {_failure_in_words(error)}") from error
    except BaseException:
        close_quietly(client)
        raise
    return client


def _failure_in_words(error: Exception) -> str:
    """What went wrong, in fixed words: never the bytes the server sent."""
    if isinstance(error, TimeoutError | socket.timeout):
        return "did not answer in time"
    if isinstance(error, ConnectionRefusedError):
        return "refused the connection"
    if isinstance(error, ssl.SSLError):
        return "failed the TLS handshake"
    if isinstance(error, smtplib.SMTPException):
        return "did not answer as an SMTP server"
    return "could not be reached"


def open_and_login(account: SmtpAccount) -> smtplib.SMTP:
    client = open_smtp(
        account.host,
        account.port,
        account.security,
        timeout=account.timeout_seconds,
        ssl_context=account.ssl_context,
        addresses=account.addresses,
    )
    try:
        _login(client, account)
    except BaseException:
        close_quietly(client)
        raise
    return client


def check_login(account: SmtpAccount) -> None:
    """Connect and log in, then leave: proves the settings before they are stored."""
    client = open_and_login(account)
    close_quietly(client)


def _login(client: smtplib.SMTP, account: SmtpAccount) -> None:
    if account.password is None and account.token_source is None:
        return
    try:
        if account.password is not None:
            client.login(account.username, account.password)
            return
        assert account.token_source is not None
        token = account.token_source.access_token()
        try:
            _xoauth2(client, account.username, token)
        except smtplib.SMTPAuthenticationError:
            # The token may have been revoked early or expired on the server's clock: refresh once.
            _xoauth2(client, account.username, account.token_source.refresh_rejected(token))
    except smtplib.SMTPAuthenticationError as error:
        log.info("SMTP login at %s for %s refused: %s", account.host, account.username, _reply(error))
        if 400 <= error.smtp_code < 500:
            raise TransientError(
                f"{account.host} cannot check SMTP logins now ({error.smtp_code})"
            ) from error
        raise AuthError(
            f"{account.host} refused the SMTP login for {account.username} ({error.smtp_code})"
        ) from error
    except smtplib.SMTPNotSupportedError as error:
        raise AuthError(f"{account.host} offers no SMTP login (AUTH) on this connection") from error
    except (OSError, smtplib.SMTPException) as error:
        log.info("SMTP login at %s broke off: %r", account.host, error)
        raise TransientError(f"the SMTP login at {account.host} broke off") from error


def _xoauth2(client: smtplib.SMTP, username: str, token: str) -> None:
    """RFC 7628-style XOAUTH2 as Google and Microsoft document it for SMTP."""
    initial = f"user={username}\x01auth=Bearer {token}\x01\x01"
    code, reply = client.docmd("AUTH", "XOAUTH2 " + base64.b64encode(initial.encode()).decode())
    if code == 334:  # the server's error details; an empty line ends the exchange
        code, reply = client.docmd("")
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, reply)


def _reply(error: smtplib.SMTPResponseException) -> str:
    text = error.smtp_error.decode("utf-8", "replace") if isinstance(error.smtp_error, bytes) else str(error)
    return f"{error.smtp_code} {' '.join(text.split())}"


@contextmanager
def _certificate_errors(host: str) -> Iterator[None]:
    try:
        yield
    except ssl.SSLCertVerificationError as error:
        raise InsecureConnectionError(
            f"the certificate of {host} cannot be verified: {error.verify_message}"
        ) from error


def close_quietly(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()
