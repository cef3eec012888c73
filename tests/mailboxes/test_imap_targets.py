"""Where an IMAP connection goes: the checked address, at every connection, with TLS checking the name
entered; and what a failed connection tells: never what the server sent."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Sequence
from contextlib import suppress

import pytest

from tests.mailboxes.scripted_server import SECRET, imap_answers, scripted_server
from tests.services.dovecot import LOOPBACK_ALLOWED, DovecotServer, ImapUser
from touchline.kit.net import AddressPolicy
from touchline.mailboxes.providers.base import (
    AuthError,
    InsecureConnectionError,
    ProviderError,
    TransientError,
)
from touchline.mailboxes.providers.imap import ConnectionSecurity, ImapAccount, ImapProvider

pytestmark = pytest.mark.dovecot


class Resolver:
    """Answers from a script, one answer list per lookup of a name, and counts the lookups."""

    def __init__(self, answers: dict[str, list[Sequence[str]]]) -> None:
        self._answers = answers
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.lookups.append(host)
        answers = self._answers[host]
        return answers.pop(0) if len(answers) > 1 else answers[0]


def account(host: str, port: int, policy: AddressPolicy) -> ImapAccount:
    return ImapAccount(
        host=host,
        port=port,
        username="user",
        password="password",
        security=ConnectionSecurity.PLAIN,
        timeout_seconds=5,
        addresses=policy,
    )


def listing_fails(port: int, policy: AddressPolicy = LOOPBACK_ALLOWED) -> ProviderError:
    """The error that listing the folders of the server on 127.0.0.1:``port`` ends with."""
    with ImapProvider(account("127.0.0.1", port, policy)) as provider:
        try:
            provider.list_folders()
        except ProviderError as error:
            return error
    raise AssertionError("listing the folders succeeded")


def test_by_default_a_loopback_server_is_refused_without_connecting() -> None:
    with scripted_server(b"* OK IMAP4rev1 ready\r\n", imap_answers()) as server:
        refused = listing_fails(server.port, AddressPolicy())
        assert server.accepted == 0
    assert isinstance(refused, InsecureConnectionError)
    assert str(refused) == "127.0.0.1 is a loopback address"


def test_every_connection_checks_where_the_name_leads_now(
    dovecot: DovecotServer, imap_user: ImapUser
) -> None:
    # The name first leads to the mail server, then (rebound) to 0.0.0.0, which reaches this machine.
    resolver = Resolver({"rebind.localhost": [["127.0.0.1"], ["0.0.0.0"]]})  # noqa: S104
    policy = AddressPolicy(allow_private=True, resolver=resolver)
    rebinding = ImapAccount(
        host="rebind.localhost",
        port=dovecot.imap_port,
        username=imap_user.username,
        password=imap_user.password,
        security=ConnectionSecurity.PLAIN,
        timeout_seconds=5,
        addresses=policy,
    )
    with ImapProvider(rebinding) as provider:
        assert "INBOX" in {folder.id for folder in provider.list_folders()}
        provider.close()  # the next call connects again
        with pytest.raises(InsecureConnectionError, match=r"resolves to 0\.0\.0\.0, which is an unspecified"):
            provider.list_folders()
    assert resolver.lookups == ["rebind.localhost", "rebind.localhost"]


@pytest.mark.parametrize("security", [ConnectionSecurity.TLS, ConnectionSecurity.STARTTLS])
def test_tls_goes_to_the_checked_address_and_verifies_the_name_entered(
    dovecot: DovecotServer, imap_user: ImapUser, security: ConnectionSecurity
) -> None:
    assert dovecot.imaps_port is not None
    port = dovecot.imaps_port if security is ConnectionSecurity.TLS else dovecot.imap_port
    # Neither name is looked up anywhere but in this resolver; the certificate is valid for
    # localhost and 127.0.0.1, not for imap.touchline.test.
    resolver = Resolver({"localhost": [["127.0.0.1"]], "imap.touchline.test": [["127.0.0.1"]]})
    policy = AddressPolicy(allow_private=True, resolver=resolver)

    def tls_account(host: str) -> ImapAccount:
        return ImapAccount(
            host=host,
            port=port,
            username=imap_user.username,
            password=imap_user.password,
            security=security,
            ssl_context=dovecot.tls_context(),
            timeout_seconds=5,
            addresses=policy,
        )

    with ImapProvider(tls_account("localhost")) as provider:
        assert "INBOX" in {folder.id for folder in provider.list_folders()}
    # Reached through the checked address, and refused: the certificate is checked against the name
    # entered, not against the address connected to (which the certificate does name).
    mismatch = r"certificate of imap\.touchline\.test .*mismatch"
    with (
        ImapProvider(tls_account("imap.touchline.test")) as provider,
        pytest.raises(InsecureConnectionError, match=mismatch),
    ):
        provider.list_folders()
    assert resolver.lookups == ["localhost", "imap.touchline.test"]


def test_tls_names_the_host_entered_to_the_server(dovecot: DovecotServer) -> None:
    """SNI carries the name, so that a server with several certificates offers the right one."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(dovecot.root / "server.pem", dovecot.root / "server.key")
    named: list[str | None] = []
    handshake_done = threading.Event()

    def remember(_socket: ssl.SSLObject | ssl.SSLSocket, name: str | None, _context: ssl.SSLContext) -> None:
        named.append(name)

    server_context.sni_callback = remember  # type: ignore[assignment]
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        with suppress(OSError), server_context.wrap_socket(connection, server_side=True) as tls:
            handshake_done.set()
            tls.sendall(b"* OK IMAP4rev1 ready\r\n")
        handshake_done.set()

    threading.Thread(target=serve, daemon=True).start()
    resolver = Resolver({"localhost": [["127.0.0.1"]]})
    tls = ImapAccount(
        host="localhost",
        port=listener.getsockname()[1],
        username="user",
        password="password",
        ssl_context=dovecot.tls_context(),
        timeout_seconds=5,
        addresses=AddressPolicy(allow_private=True, resolver=resolver),
    )
    with listener, ImapProvider(tls) as provider, suppress(ProviderError):
        provider.list_folders()
    assert handshake_done.wait(10)
    assert named == ["localhost"]


@pytest.mark.parametrize(
    "greeting",
    [
        b"SSH-2.0-OpenSSH_9.6 " + SECRET + b"\r\n",
        b"-ERR " + SECRET + b" redis_version:7.2.4\r\n",
        b"* BYE " + SECRET + b"\r\n",
        b"HTTP/1.1 400 Bad Request\r\nServer: " + SECRET + b"\r\n\r\n",
    ],
)
def test_what_a_server_that_is_not_imap_announces_stays_out_of_the_error(greeting: bytes) -> None:
    with scripted_server(greeting, imap_answers()) as server:
        failed = listing_fails(server.port)
    assert isinstance(failed, TransientError)
    assert str(failed) == f"cannot connect to 127.0.0.1:{server.port}: it did not answer as an IMAP server"


def test_an_imap_servers_refusals_stay_out_of_the_errors() -> None:
    refusing_login = imap_answers(login=b"NO [AUTHENTICATIONFAILED] " + SECRET)
    with scripted_server(b"* OK IMAP4rev1 " + SECRET + b"\r\n", refusing_login) as server:
        refused = listing_fails(server.port)
    assert isinstance(refused, AuthError)
    assert str(refused) == "127.0.0.1 refused the login for user"

    unavailable = imap_answers(login=b"NO [UNAVAILABLE] " + SECRET)
    with scripted_server(b"* OK IMAP4rev1 ready\r\n", unavailable) as server:
        later = listing_fails(server.port)
    assert isinstance(later, TransientError)
    assert str(later) == "127.0.0.1 cannot check logins now; try again later"

    refusing_list = imap_answers(listing=b"NO " + SECRET)
    with scripted_server(b"* OK IMAP4rev1 ready\r\n", refusing_list) as server:
        failed = listing_fails(server.port)
    assert str(failed) == "127.0.0.1 refused a command"
