"""SMTP connections go only where the host check allows, to the checked address, and never repeat
what the server said: the same defences as IMAP, for the hosts users type for sending."""

from __future__ import annotations

import pytest

from tests.mailboxes.scripted_server import SECRET, scripted_server
from tests.services.dovecot import LOOPBACK_ALLOWED
from touchline.kit.net import AddressPolicy
from touchline.mailboxes.providers.base import AuthError, InsecureConnectionError, TransientError
from touchline.mailboxes.providers.imap import ConnectionSecurity
from touchline.mailboxes.providers.smtp import SmtpAccount, check_login, open_smtp


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.1", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("::1", "a loopback address"),
    ],
)
def test_private_smtp_hosts_are_refused_before_any_connection(host: str, kind: str) -> None:
    with scripted_server(b"220 ready\r\n") as server, pytest.raises(InsecureConnectionError, match=kind):
        open_smtp(host, server.port, ConnectionSecurity.STARTTLS, timeout=5, addresses=AddressPolicy())
    assert server.accepted == 0


def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    policy = AddressPolicy(resolver=lambda host, port: ["192.168.1.20"])
    with pytest.raises(InsecureConnectionError, match=r"smtp\.attacker\.example resolves to 192\.168\.1\.20"):
        open_smtp("smtp.attacker.example", 587, ConnectionSecurity.STARTTLS, timeout=5, addresses=policy)


def test_the_connection_goes_to_the_checked_address_not_a_new_lookup() -> None:
    with scripted_server(b"220 " + SECRET + b" ESMTP\r\n") as server:
        answers = iter([["127.0.0.1"], ["10.9.9.9"]])  # a second lookup would lead elsewhere
        policy = AddressPolicy(allow_private=True, resolver=lambda host, port: next(answers))
        with pytest.raises(TransientError):  # the scripted server answers no EHLO: it is not SMTP
            open_smtp(
                "smtp.rebinding.example", server.port, ConnectionSecurity.PLAIN, timeout=5, addresses=policy
            )
        assert server.wait_for_connections(1, timeout=5)


@pytest.mark.parametrize(
    "greeting",
    [
        b"SSH-2.0-OpenSSH_9.6 " + SECRET + b"\r\n",
        b"-ERR " + SECRET + b" redis_version:7.2.4\r\n",
        b"554 " + SECRET + b" go away\r\n",
    ],
    ids=["ssh", "redis", "smtp-refusal"],
)
def test_a_servers_greeting_never_reaches_the_error(greeting: bytes) -> None:
    with scripted_server(greeting) as server:
        with pytest.raises(TransientError) as raised:
            open_smtp(
                "127.0.0.1", server.port, ConnectionSecurity.PLAIN, timeout=5, addresses=LOOPBACK_ALLOWED
            )
        assert SECRET.decode() not in str(raised.value)
        assert "did not answer as an SMTP server" in str(raised.value)


def test_a_refused_login_names_the_code_but_not_the_servers_words() -> None:
    def answer(verb: bytes, argument: bytes) -> bytes:  # SMTP has no tags: the "tag" is the verb
        if verb.upper() in (b"EHLO", b"HELO"):
            return b"250-smtp.example\r\n250 AUTH PLAIN LOGIN\r\n"
        if verb.upper() == b"AUTH":
            return b"535 5.7.8 " + SECRET + b" bad credentials\r\n"
        return b"250 ok\r\n"

    with scripted_server(b"220 smtp.example ESMTP\r\n", answer) as server:
        account = SmtpAccount(
            host="127.0.0.1",
            port=server.port,
            security=ConnectionSecurity.PLAIN,
            username="u",
            password="p",
            addresses=LOOPBACK_ALLOWED,
            timeout_seconds=5,
        )
        with pytest.raises(AuthError) as raised:
            check_login(account)
    assert SECRET.decode() not in str(raised.value)
    assert "refused the SMTP login for u (535)" in str(raised.value)
