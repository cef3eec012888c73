"""A real SMTP server on loopback that records what it receives, for the senders' tests.

aiosmtpd runs in a thread on a free port. It can require a login (PLAIN/LOGIN over plain text, allowed
on loopback only), and be told to answer the next commands with a given reply (a 4xx or 5xx after
MAIL, RCPT or DATA) or to drop the connection after the message's data arrived and before answering:
the "handed over, outcome unknown" case.

Use from a conftest: ``from tests.services.smtp_sink import smtp_sink``.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from tests.services import free_port

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    mail_from: str
    recipients: tuple[str, ...]
    data: bytes
    login: str | None

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def part(self, content_type: str) -> str:
        found = self.message.get_body(preferencelist=(content_type.split("/")[1],))
        assert found is not None, f"no {content_type} part"
        assert found.get_content_type() == content_type, f"no {content_type} part"
        return str(found.get_content())


@dataclass
class _Handler:
    sink: SmtpSink

    async def handle_MAIL(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.sink.reply_for("MAIL")
        if reply:
            return reply
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.sink.refused:
            return self.sink.refused[address]
        reply = self.sink.reply_for("RCPT")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        """XOAUTH2 as Google and Microsoft take it: the initial response names the user and token."""
        initial = base64.b64decode(args[1]).decode() if len(args) > 1 else ""
        fields = dict(part.split("=", 1) for part in initial.split("\x01") if "=" in part)
        token = fields.get("auth", "").removeprefix("Bearer ")
        if fields.get("user") == self.sink.username and token in self.sink.tokens:
            return AuthResult(success=True, auth_data=fields["user"].encode())
        return AuthResult(success=False, handled=False)

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.sink.drop_after_data:
            self.sink.drop_after_data = False
            if self.sink.keep_dropped:
                self.sink.record(session, envelope)
            server.transport.close()
            return "250 never heard"
        reply = self.sink.reply_for("DATA")
        if reply:
            return reply
        number = self.sink.record(session, envelope)
        if self.sink.after_message is not None:  # off the event loop: it may hold the answer back
            await asyncio.get_running_loop().run_in_executor(None, self.sink.after_message, number)
        if self.sink.hang_up_after_message:
            asyncio.get_running_loop().call_soon(server.transport.close)
        return f"250 2.0.0 Ok: queued as SINK{number}"


@dataclass
class SmtpSink:
    port: int
    username: str | None = None
    password: str | None = None
    received: list[Received] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    """OAuth access tokens XOAUTH2 accepts for `username`."""
    replies: dict[str, list[str]] = field(default_factory=dict)
    drop_after_data: bool = False
    keep_dropped: bool = False
    hang_up_after_message: bool = False
    """Close each connection once a message is taken, as servers do with idle connections."""
    arrived: threading.Event = field(default_factory=threading.Event)
    after_message: Callable[[int], None] | None = None
    """Called with a taken message's number (from 1) before the server answers it."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reply_next(self, command: str, reply: str, times: int = 1) -> None:
        """Answer the next `times` MAIL, RCPT or DATA commands with `reply`."""
        self.replies.setdefault(command, []).extend([reply] * times)

    def reply_for(self, command: str) -> str | None:
        with self._lock:
            queued = self.replies.get(command)
            return queued.pop(0) if queued else None

    def record(self, session: Session, envelope: Envelope) -> int:
        login = session.auth_data.decode() if isinstance(session.auth_data, bytes) else None
        with self._lock:
            self.received.append(
                Received(
                    str(envelope.mail_from),
                    tuple(envelope.rcpt_tos),
                    bytes(envelope.original_content or b""),
                    login,
                )
            )
            self.arrived.set()
            return len(self.received)

    def authenticate(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        ):
            return AuthResult(success=True, auth_data=auth_data.login)
        return AuthResult(success=False, handled=False)


def start_sink(
    username: str | None = None,
    password: str | None = None,
    *,
    implicit_tls: ssl.SSLContext | None = None,
    starttls: ssl.SSLContext | None = None,
) -> tuple[SmtpSink, Controller]:
    """A sink on a free port; with `implicit_tls` it speaks TLS from the start (port 465 style), with
    `starttls` it offers STARTTLS and takes no login before it."""
    sink = SmtpSink(free_port(), username, password)
    options: dict[str, Any] = {}
    if username is not None:
        options = {
            "authenticator": sink.authenticate,
            "auth_require_tls": starttls is not None,
            "auth_required": True,
        }
    if starttls is not None:
        options["tls_context"] = starttls
    controller = Controller(
        _Handler(sink), hostname=HOST, port=sink.port, ssl_context=implicit_tls, **options
    )
    controller.start()
    return sink, controller


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A sink that takes mail only after a login as `sender@team-a.example` / `smtp-password`."""
    sink, controller = start_sink("sender@team-a.example", "smtp-password")
    try:
        yield sink
    finally:
        controller.stop()


@pytest.fixture
def open_relay() -> Iterator[SmtpSink]:
    """A sink that takes mail without a login, as a relay that trusts this machine does."""
    sink, controller = start_sink()
    try:
        yield sink
    finally:
        controller.stop()
