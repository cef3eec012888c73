"""A sent email of the team's member, a webhook receiver on loopback, and settings that let webhooks
go to it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import FakeClock, Team
from tests.services.smtp_sink import SmtpSink, open_relay
from touchline.config import Settings
from touchline.db import session_scope
from touchline.models import OutboundEmail

__all__ = ["open_relay"]


@dataclass(frozen=True)
class Posted:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """A real HTTP server on loopback that records each POST and answers with the queued statuses
    (200 once they run out); `hold` keeps the next answers back until `release` is set."""

    port: int
    posted: list[Posted] = field(default_factory=list)
    statuses: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    hold: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/touchline?team=a"

    def answer(self, status: int, headers: dict[str, str] | None = None, times: int = 1) -> None:
        self.statuses.extend([(status, headers or {})] * times)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    state = WebhookReceiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.posted.append(Posted(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            state.arrived.set()
            if state.hold:
                state.release.wait(30)
                return
            status, headers = state.statuses.pop(0) if state.statuses else (200, {})
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def notify_settings(settings: Settings) -> Settings:
    """Webhooks may go to the receiver on loopback (an operator's choice, off by default)."""
    return settings.model_copy(update={"allow_private_webhook_hosts": True})


@pytest.fixture
def relay_settings(notify_settings: Settings, open_relay: SmtpSink) -> Settings:
    return notify_settings.model_copy(
        update={
            "relay_smtp_host": "127.0.0.1",
            "relay_smtp_port": open_relay.port,
            "relay_smtp_security": "plain",
        }
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_sent_email(sessions: sessionmaker[Session], team: Team, subject: str = "Renewal plans") -> uuid.UUID:
    with session_scope(sessions) as session:
        outbound = OutboundEmail(
            workspace_id=team.workspace_id,
            created_by=team.member_id,
            sender_choice="member@team-a.example",
            sender_user_id=team.member_id,
            from_address="member@team-a.example",
            via="relay",
            idempotency_key=f"notify-{uuid.uuid4()}",
            message_id=f"<{uuid.uuid4()}@team-a.example>",
            status="sent",
            subject=subject,
        )
        session.add(outbound)
        session.flush()
        return outbound.id


@pytest.fixture
def sent_email(sessions: sessionmaker[Session], team: Team) -> uuid.UUID:
    return make_sent_email(sessions, team)
