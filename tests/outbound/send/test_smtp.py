"""The SMTP sender on its own: implicit TLS, STARTTLS, certificate checks, and XOAUTH2 logins."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.services.dovecot import LOOPBACK_ALLOWED, _write_certificates
from tests.services.smtp_sink import SmtpSink, start_sink
from touchline.mailboxes.providers.base import AuthError, InsecureConnectionError
from touchline.mailboxes.providers.imap import ConnectionSecurity
from touchline.mailboxes.providers.smtp import SmtpAccount, check_login
from touchline.outbound.compose.mime import Mailbox, OutgoingEmail, build_message
from touchline.outbound.send.contract import DeliveryError, Outgoing
from touchline.outbound.send.smtp import SmtpSender

USER, PASSWORD = "sender@team-a.example", "smtp-password"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """The server's context, and a client context that trusts the server's throwaway CA."""
    certificate, key, ca = _write_certificates(Path(tmp_path_factory.mktemp("smtp-tls")))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(certificate, key)
    return server, ssl.create_default_context(cafile=str(ca))


def _outgoing() -> Outgoing:
    built = build_message(
        OutgoingEmail(
            sender=Mailbox(USER),
            to=(Mailbox("jane@acme.example"),),
            subject="Hello",
            text=".a line that starts with a dot\n",
            html="<p>Hello</p>",
            date=datetime.now(UTC),
        ),
        "team-a.example",
    )
    return Outgoing(built.raw, USER, built.recipients, built.message_id)


@pytest.fixture
def tls_sink(certificates: tuple[ssl.SSLContext, ssl.SSLContext]) -> Iterator[SmtpSink]:
    sink, controller = start_sink(USER, PASSWORD, implicit_tls=certificates[0])
    yield sink
    controller.stop()


@pytest.fixture
def starttls_sink(certificates: tuple[ssl.SSLContext, ssl.SSLContext]) -> Iterator[SmtpSink]:
    sink, controller = start_sink(USER, PASSWORD, starttls=certificates[0])
    yield sink
    controller.stop()


def _account(sink: SmtpSink, security: ConnectionSecurity, context: ssl.SSLContext | None) -> SmtpAccount:
    return SmtpAccount(
        host="localhost",
        port=sink.port,
        security=security,
        username=USER,
        password=PASSWORD,
        ssl_context=context,
        addresses=LOOPBACK_ALLOWED,
    )


def test_implicit_tls_delivers_and_keeps_the_message_intact(
    tls_sink: SmtpSink, certificates: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    outgoing = _outgoing()
    sender = SmtpSender(_account(tls_sink, ConnectionSecurity.TLS, certificates[1]))
    try:
        delivered = sender.deliver(outgoing)
        assert sender.find_sent(outgoing.message_id) is None  # no Sent folder to look in
    finally:
        sender.close()
    assert delivered.provider_message_id == "SINK1"
    [received] = tls_sink.received
    assert received.login == USER
    assert received.data.replace(b"\r\n", b"\n") == outgoing.raw.replace(b"\r\n", b"\n")


def test_starttls_delivers_after_upgrading(
    starttls_sink: SmtpSink, certificates: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    sender = SmtpSender(_account(starttls_sink, ConnectionSecurity.STARTTLS, certificates[1]))
    try:
        sender.deliver(_outgoing())
        sender.deliver(_outgoing())  # the same connection carries the next message
    finally:
        sender.close()
    assert len(starttls_sink.received) == 2


def test_an_untrusted_certificate_is_refused_for_good(tls_sink: SmtpSink) -> None:
    sender = SmtpSender(_account(tls_sink, ConnectionSecurity.TLS, None))
    with pytest.raises(DeliveryError, match="cannot be verified") as refused:
        sender.deliver(_outgoing())
    assert not refused.value.temporary
    assert tls_sink.received == []


def test_a_server_without_starttls_is_not_used_in_plain_text(smtp_sink: SmtpSink) -> None:
    account = SmtpAccount(
        host="127.0.0.1",
        port=smtp_sink.port,
        security=ConnectionSecurity.STARTTLS,
        username=USER,
        password=PASSWORD,
        addresses=LOOPBACK_ALLOWED,
    )
    with pytest.raises(InsecureConnectionError, match="STARTTLS"):
        check_login(account)


def test_plain_text_is_allowed_only_to_this_machine() -> None:
    with pytest.raises(InsecureConnectionError, match="only to this machine"):
        SmtpAccount(host="smtp.example.com", security=ConnectionSecurity.PLAIN)


def test_a_wrong_password_is_an_authentication_error(smtp_sink: SmtpSink) -> None:
    account = SmtpAccount(
        host="127.0.0.1",
        port=smtp_sink.port,
        security=ConnectionSecurity.PLAIN,
        username=USER,
        password="wrong",
        addresses=LOOPBACK_ALLOWED,
    )
    with pytest.raises(AuthError, match="refused the SMTP login"):
        check_login(account)


class _Tokens:
    def __init__(self, current: str, fresh: str) -> None:
        self.current, self.fresh, self.refreshed = current, fresh, 0

    def access_token(self) -> str:
        return self.current

    def refresh_rejected(self, rejected_token: str) -> str:
        self.refreshed += 1
        self.current = self.fresh
        return self.fresh


def test_xoauth2_logs_in_and_refreshes_a_rejected_token_once(smtp_sink: SmtpSink) -> None:
    smtp_sink.tokens = {"fresh-token"}
    tokens = _Tokens("expired-token", "fresh-token")
    account = SmtpAccount(
        host="127.0.0.1",
        port=smtp_sink.port,
        security=ConnectionSecurity.PLAIN,
        username=USER,
        token_source=tokens,
        addresses=LOOPBACK_ALLOWED,
    )
    sender = SmtpSender(account)
    try:
        sender.deliver(_outgoing())
    finally:
        sender.close()
    assert tokens.refreshed == 1
    assert smtp_sink.received[0].login == USER


def test_a_connection_the_server_closed_is_opened_again_without_sending_twice(smtp_sink: SmtpSink) -> None:
    smtp_sink.hang_up_after_message = True
    account = SmtpAccount(
        host="127.0.0.1",
        port=smtp_sink.port,
        security=ConnectionSecurity.PLAIN,
        username=USER,
        password=PASSWORD,
        addresses=LOOPBACK_ALLOWED,
    )
    sender = SmtpSender(account)
    try:
        first, second = _outgoing(), _outgoing()
        sender.deliver(first)
        sender.deliver(second)
    finally:
        sender.close()
    assert [r.message["Message-ID"] for r in smtp_sink.received] == [first.message_id, second.message_id]
