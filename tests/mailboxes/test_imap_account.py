"""IMAP account rules that need no server: plain text only to this machine, one way to log in."""

from __future__ import annotations

import pytest

from tests.services import free_port
from tests.services.dovecot import LOOPBACK_ALLOWED
from touchline.mailboxes.providers.base import InsecureConnectionError, TransientError
from touchline.mailboxes.providers.imap import ConnectionSecurity, ImapAccount, ImapProvider, is_loopback_host


@pytest.mark.parametrize("host", ["mail.example.com", "192.0.2.10", "10.0.0.1", "::ffff:192.0.2.1"])
def test_plain_text_is_refused_for_hosts_other_than_this_machine(host: str) -> None:
    with pytest.raises(InsecureConnectionError, match="TLS or STARTTLS"):
        ImapAccount(host=host, username="u", password="p", security=ConnectionSecurity.PLAIN)


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST.", "imap.localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"]
)
def test_plain_text_is_allowed_to_this_machine(host: str) -> None:
    assert is_loopback_host(host)
    account = ImapAccount(host=host, username="u", password="p", security=ConnectionSecurity.PLAIN)
    assert account.resolved_port == 143


def test_tls_is_the_default_and_uses_the_imaps_port() -> None:
    account = ImapAccount(host="imap.example.com", username="u", password="hunter2-secret")
    assert account.security is ConnectionSecurity.TLS
    assert account.resolved_port == 993
    assert "hunter2-secret" not in repr(account)


def test_an_account_needs_exactly_one_way_to_log_in() -> None:
    with pytest.raises(ValueError, match="either a password or a token source"):
        ImapAccount(host="imap.example.com", username="u")


def test_an_unreachable_server_is_transient() -> None:
    account = ImapAccount(
        addresses=LOOPBACK_ALLOWED,
        host="127.0.0.1",
        port=free_port(),
        username="u",
        password="p",
        security=ConnectionSecurity.PLAIN,
    )
    with ImapProvider(account) as provider, pytest.raises(TransientError, match="cannot connect"):
        provider.list_folders()
