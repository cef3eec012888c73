"""The log address world: Team A with a customer company, its log address, and touchline's SMTP server."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from functools import cache
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team
from touchline.config import Settings
from touchline.db import session_scope
from touchline.inbound.receive.authentication import SenderChecks
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
    """What a resolver would answer, with no network: TXT records for DKIM and ARC keys (`records`,
    dkimpy's lookup) and for SPF (`spf_records`, pyspf's lookup through `spf`)."""

    records: dict[bytes, bytes] = field(default_factory=dict)
    spf_records: dict[str, str] = field(default_factory=dict)
    failing: bool = False

    def __call__(self, name: bytes, timeout: float = 5) -> bytes | None:
        if self.failing:
            raise TimeoutError(f"no answer for {name!r} within {timeout}s")
        return self.records.get(name.rstrip(b".") + b".") or self.records.get(name)

    def spf(self, name: str, qtype: str, strict: bool = True, timeout: float = 5) -> list[tuple[Any, Any]]:
        if self.failing:
            import spf

            raise spf.TempError(f"DNS no answer for {name} within {timeout}s")
        record = self.spf_records.get(name.rstrip(".").lower())
        if qtype != "TXT" or record is None:
            return []
        return [((name, "TXT"), [record.encode()])]

    def checks(self, *trusted: str, sealers: frozenset[str] = frozenset()) -> SenderChecks:
        """Checks that look up here, trusting the networks `trusted` and the ARC sealers `sealers`."""
        return SenderChecks(tuple(ip_network(one) for one in trusted), sealers, self, self.spf)


SIGNED_HEADERS = [b"from", b"to", b"subject", b"date", b"message-id"]


@dataclass(frozen=True)
class Signer:
    private_pem: bytes
    txt_record: bytes

    def sign(self, raw: bytes, domain: str, selector: str = "s1") -> bytes:
        signature = dkim.sign(
            raw, selector.encode(), domain.encode(), self.private_pem, include_headers=SIGNED_HEADERS
        )
        return bytes(signature) + raw

    def publish(self, dns: FakeDns, domain: str, selector: str = "s1") -> None:
        dns.records[f"{selector}._domainkey.{domain}.".encode()] = self.txt_record

    def seal(self, raw: bytes, forwarder: str, found: str, selector: str = "s1") -> bytes:
        """`raw` as the forwarder `forwarder` passes it on: it records what it `found` (the results
        of an Authentication-Results header) and seals that with ARC."""
        received = f"Authentication-Results: {forwarder}; {found}\r\n".encode() + raw
        arc_set = dkim.arc_sign(
            received,
            selector.encode(),
            forwarder.encode(),
            self.private_pem,
            forwarder.encode(),
            include_headers=SIGNED_HEADERS,
        )
        return b"".join(arc_set) + received


@cache
def team_signer() -> Signer:
    """A DKIM (and ARC) key pair: `sign` with it, `publish` its public half in a `FakeDns`."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Signer(private_pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public_der))


@pytest.fixture(scope="session")
def signer() -> Signer:
    return team_signer()


LOOPBACK = ("127.0.0.0/8", "::1/128")
LOCAL_RELAY = SenderChecks(tuple(ip_network(one) for one in LOOPBACK))
"""For tests about what happens to mail once its sender is authenticated: the SMTP client on this
machine is one of the operator's relays."""


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

    def relax(self, *domains: str) -> None:
        """Let mail from `domains` in without authentication, as an admin may."""
        with session_scope(self.sessions) as session:
            settings = session.get(WorkspaceSettings, self.team.workspace_id)
            assert settings is not None
            settings.unauthenticated_sender_domains = list(domains)

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


def logging_before_replies(sessions: sessionmaker[Session], checks: SenderChecks) -> Callable[[], None]:
    """An `on_spooled` that logs what was spooled before the replies go out, so that a test reads
    the outcome right after its 250. (Served for real, a worker logs it a moment later:
    tests/receive/test_spool.py.)"""

    def log_now() -> None:
        log_spooled(sessions, checks=checks)

    return log_now


def serve(settings: Settings, sessions: sessionmaker[Session], checks: SenderChecks) -> InboundServer:
    return InboundServer(
        settings,
        host="127.0.0.1",
        port=0,
        sessions=sessions,
        checks=checks,
        on_spooled=logging_before_replies(sessions, checks),
    )


@pytest.fixture
def smtp_server(settings: Settings, sessions: sessionmaker[Session], dns: FakeDns) -> Iterator[InboundServer]:
    """The log address's server, for tests of what happens once a sender is authenticated: mail
    from this machine counts as relayed by the operator (tests/receive/test_authentication.py
    serves without that)."""
    with serve(settings, sessions, dns.checks(*LOOPBACK)) as server:
        yield server


@pytest.fixture
def strict_server(
    settings: Settings, sessions: sessionmaker[Session], dns: FakeDns
) -> Iterator[InboundServer]:
    """The log address's server trusting no network: every sender must authenticate."""
    with serve(settings, sessions, dns.checks()) as server:
        yield server
