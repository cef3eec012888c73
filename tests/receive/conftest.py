"""The log address world: Team A with a customer company, its log address, and touchline's SMTP server."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team
from touchline.config import Settings
from touchline.db import session_scope
from touchline.inbound.receive.smtp import InboundServer
from touchline.inbound.receive.spool import log_spooled
from touchline.inbound.timeline import email_records
from touchline.models import Company, Email, WorkspaceSettings
from touchline.models.inbound import InboundRefusal
from touchline.workspace import service
from touchline.workspace.permissions import Actor

FORWARDED = Path(__file__).resolve().parents[1] / "fixtures" / "emails" / "forwarded"
CUSTOMER = "acme.example"


@dataclass
class FakeDns:
    """TXT records for DKIM keys: what a resolver would answer, with no network."""

    records: dict[bytes, bytes] = field(default_factory=dict)
    failing: bool = False

    def __call__(self, name: bytes, timeout: float = 5) -> bytes | None:
        if self.failing:
            raise TimeoutError(f"no answer for {name!r} within {timeout}s")
        return self.records.get(name.rstrip(b".") + b".") or self.records.get(name)


@dataclass
class LogWorld:
    sessions: sessionmaker[Session]
    team: Team
    company_id: uuid.UUID
    other_company_id: uuid.UUID
    log_address: str

    @property
    def operator(self) -> Actor:
        return Actor.operator(self.team.workspace_id)

    def emails(self) -> list[dict[str, object]]:
        with session_scope(self.sessions) as session:
            return email_records(session, self.team.workspace_id)

    def email(self, email_id: uuid.UUID | str) -> Email:
        with session_scope(self.sessions) as session:
            row = session.get(Email, uuid.UUID(str(email_id)))
            assert row is not None
            return row

    def refusals(self) -> list[InboundRefusal]:
        with session_scope(self.sessions) as session:
            return list(
                session.scalars(
                    select(InboundRefusal)
                    .where(InboundRefusal.workspace_id == self.team.workspace_id)
                    .order_by(InboundRefusal.created_at)
                )
            )

    def company(self, company_id: uuid.UUID | None = None) -> Company:
        with session_scope(self.sessions) as session:
            row = session.get(Company, company_id or self.company_id)
            assert row is not None
            return row

    def require_dkim(self, required: bool = True) -> None:
        with session_scope(self.sessions) as session:
            settings = session.get(WorkspaceSettings, self.team.workspace_id)
            assert settings is not None
            settings.require_dkim_for_logged_mail = required

    def forwarded(self, name: str) -> bytes:
        """A fixture as a mail client would send it: CRLF line ends, addressed to this log address."""
        raw = (FORWARDED / name).read_bytes().replace(b"LOG_ADDRESS", self.log_address.encode())
        return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def message(
    subject: str,
    *,
    sender: str = "Mia Member <member@team-a.example>",
    to: str = f"Jane Doe <jane.doe@{CUSTOMER}>",
    cc: str | None = None,
    body: str = "Hello, here is the quote we talked about.\n",
    message_id: str | None = None,
    sent_at: dt.datetime | None = None,
) -> bytes:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = to
    if cc:
        email["Cc"] = cc
    email["Subject"] = subject
    email["Date"] = format_datetime(sent_at or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    email["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@team-a.example>"
    email.set_content(body)
    return email.as_bytes(policy=SMTP)  # CRLF line ends, as on the wire


@pytest.fixture
def world(sessions: sessionmaker[Session], team: Team) -> LogWorld:
    with session_scope(sessions) as session:
        operator = Actor.operator(team.workspace_id)
        acme = service.create_company(session, operator, "Acme", domains=[CUSTOMER])
        other = service.create_company(session, operator, "Globex", domains=["globex.example"])
        log_address = service.get_settings(session, operator).log_address
        ids = acme.id, other.id
    return LogWorld(sessions, team, ids[0], ids[1], log_address)


@pytest.fixture
def dns() -> FakeDns:
    return FakeDns()


def logging_before_replies(sessions: sessionmaker[Session], dns: FakeDns | None = None) -> Callable[[], None]:
    """An `on_spooled` that logs what was spooled before the replies go out, so that a test reads
    the outcome right after its 250. (Served for real, a worker logs it a moment later:
    tests/receive/test_spool.py.)"""

    def log_now() -> None:
        log_spooled(sessions, dkim_lookup=dns)

    return log_now


@pytest.fixture
def smtp_server(settings: Settings, sessions: sessionmaker[Session], dns: FakeDns) -> Iterator[InboundServer]:
    with InboundServer(
        settings,
        host="127.0.0.1",
        port=0,
        sessions=sessions,
        dkim_lookup=dns,
        on_spooled=logging_before_replies(sessions, dns),
    ) as server:
        yield server
