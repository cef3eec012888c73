"""The log address over real SMTP on loopback: smtplib, and Debian's swaks."""

from __future__ import annotations

import shutil
import smtplib
import ssl
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.receive.conftest import CUSTOMER, LOCAL_RELAY, LogWorld, logging_before_replies, message
from touchline.config import Settings
from touchline.db import session_scope
from touchline.inbound.receive.smtp import InboundServer
from touchline.inbound.store import service as store_service
from touchline.inbound.store.service import Incoming
from touchline.models import Contact, QuarantinedMessage
from touchline.workspace import service

SWAKS = shutil.which("swaks") or "/usr/bin/swaks"


def send(server: InboundServer, envelope_from: str, recipients: list[str], raw: bytes) -> tuple[int, bytes]:
    """MAIL, RCPT, DATA with smtplib; returns DATA's reply (code, text)."""
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
        client.ehlo("client.test")
        code, reply = client.mail(envelope_from)
        assert code == 250, reply
        for recipient in recipients:
            code, reply = client.rcpt(recipient)
            assert code == 250, (recipient, reply)
        return client.data(raw)


def swaks(server: InboundServer, *arguments: str) -> subprocess.CompletedProcess[str]:
    if not Path(SWAKS).exists():
        pytest.skip("swaks is not installed (Debian package swaks)")
    return subprocess.run(
        [SWAKS, "--server", "127.0.0.1", "--port", str(server.port), "--helo", "swaks.test", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def only_email(world: LogWorld) -> dict[str, object]:
    records = world.emails()
    assert len(records) == 1, records
    return records[0]


def test_a_bcc_to_a_customer_is_logged_on_the_company(world: LogWorld, smtp_server: InboundServer) -> None:
    raw = message("Quote for next year", cc=f"Pat <pat@{CUSTOMER}>")
    code, reply = send(smtp_server, "member@team-a.example", [world.log_address.upper()], raw)
    # A 250 means the message is committed (to the spool); the reply names it, and so does the
    # logged email's record.
    assert code == 250, reply
    record = only_email(world)
    accepted_as = reply.decode().split("accepted as ")[1].split(";")[0]
    assert record["source"] == "log"
    assert record["logged"] is True
    assert record["unassigned"] is False
    assert record["conversation_id"] is None  # logged mail is not threaded
    assert record["companies"] == [str(world.company_id)]
    assert record["contacts"] == [f"jane.doe@{CUSTOMER}", f"pat@{CUSTOMER}"]  # created per SPEC 2.5
    assert record["holders"] == ["member@team-a.example"]
    assert world.company().last_touch_at is not None
    with session_scope(world.sessions) as session:
        names = set(
            session.scalars(select(Contact.name).where(Contact.workspace_id == world.team.workspace_id))
        )
    assert names == {"Jane Doe", "Pat"}
    log = world.email(str(record["id"])).decision["log"]
    assert log[-1]["channel"] == "smtp"
    assert log[-1]["envelope_sender"] == "member@team-a.example"
    assert log[-1]["dkim"]["status"] == "none"
    assert log[-1]["accepted_as"] == accepted_as


def test_mail_to_nobody_known_lands_in_unassigned(world: LogWorld, smtp_server: InboundServer) -> None:
    result = swaks(
        smtp_server,
        "--from",
        "admin@team-a.example",
        "--to",
        world.log_address,
        "--header",
        "From: Ada Admin <admin@team-a.example>",
        "--header",
        "To: someone@unknown-vendor.example",
        "--header",
        "Subject: Intro to a prospect",
        "--body",
        "Nice to meet you.",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "250 2.0.0 accepted as" in result.stdout
    record = only_email(world)
    assert record["unassigned"] is True
    assert record["companies"] == []
    assert record["contacts"] == []
    assert record["rule"] == "unassigned"


@pytest.mark.parametrize(
    "fixture", ["gmail.eml", "outlook.eml", "apple_mail.eml", "thunderbird.eml", "attached.eml"]
)
def test_a_forward_lands_in_unassigned_with_its_company_suggested(
    world: LogWorld, smtp_server: InboundServer, fixture: str
) -> None:
    code, reply = send(smtp_server, "member@team-a.example", [world.log_address], world.forwarded(fixture))
    assert code == 250, reply
    record = only_email(world)
    assert record["unassigned"] is True
    email = world.email(str(record["id"]))
    assert email.suggested_company_ids == [str(world.company_id)]
    assert f"jane.doe@{CUSTOMER}" in email.decision["forwarded"]["participants"]
    # The forwarded participants are only a suggestion: no contact is created from them.
    with session_scope(world.sessions) as session:
        assert (
            session.scalar(select(Contact.id).where(Contact.workspace_id == world.team.workspace_id)) is None
        )


def test_a_forward_sent_with_swaks_is_suggested_too(
    world: LogWorld, smtp_server: InboundServer, tmp_path: Path
) -> None:
    data = tmp_path / "forward.eml"
    data.write_bytes(world.forwarded("outlook_original_message.eml"))
    result = swaks(
        smtp_server, "--from", "member@team-a.example", "--to", world.log_address, "--data", f"@{data}"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    email = world.email(str(only_email(world)["id"]))
    assert email.unassigned is True
    assert email.suggested_company_ids == [str(world.company_id)]


def test_a_strangers_message_is_refused_and_recorded(world: LogWorld, smtp_server: InboundServer) -> None:
    # A stranger's envelope is refused at RCPT, before any data is sent.
    with smtplib.SMTP("127.0.0.1", smtp_server.port, timeout=30) as client:
        client.ehlo("client.test")
        client.mail("mallory@stranger.example")
        code, reply = client.rcpt(world.log_address)
    assert code == 550
    assert b"not a user of this workspace" in reply
    # A user's envelope carrying a stranger's From is refused after DATA.
    raw = message("Buy now", sender="Mallory <mallory@stranger.example>", to=world.log_address)
    code, reply = send(smtp_server, "member@team-a.example", [world.log_address], raw)
    assert code == 550
    assert b"<mallory@stranger.example> is not a user" in reply
    # A user's address in the display name does not make a stranger a user.
    spoof = message(
        "Invoice", sender='"member@team-a.example" <mallory@stranger.example>', to=world.log_address
    )
    code, _ = send(smtp_server, "member@team-a.example", [world.log_address], spoof)
    assert code == 550
    # Nor does a second From header.
    twice = message("Hello", to=world.log_address).replace(
        b"From: Mia", b"From: mallory@stranger.example\r\nFrom: Mia", 1
    )
    code, _ = send(smtp_server, "member@team-a.example", [world.log_address], twice)
    assert code == 550
    assert world.emails() == []
    refusals = world.refusals()
    assert [(r.stage, r.code) for r in refusals] == [
        ("rcpt", "envelope-not-user"),
        ("data", "sender-not-user"),
        ("data", "sender-not-user"),
        ("data", "sender-not-user"),
    ]
    assert refusals[0].envelope_sender == "mallory@stranger.example"
    assert refusals[1].subject == "Buy now"
    assert refusals[1].remote == "127.0.0.1"


def test_deactivated_users_and_bounces_cannot_log(world: LogWorld, smtp_server: InboundServer) -> None:
    with session_scope(world.sessions) as session:
        service.update_user(session, world.operator, world.team.member_id, active=False)
    with smtplib.SMTP("127.0.0.1", smtp_server.port, timeout=30) as client:
        client.ehlo("client.test")
        client.mail("member@team-a.example")
        code, _ = client.rcpt(world.log_address)
        assert code == 550
        client.rset()
        client.mail("<>")
        code, reply = client.rcpt(world.log_address)
    assert code >= 500, reply
    assert world.emails() == []


def test_unknown_addresses_are_not_accepted(world: LogWorld, smtp_server: InboundServer) -> None:
    with smtplib.SMTP("127.0.0.1", smtp_server.port, timeout=30) as client:
        client.ehlo("client.test")
        client.mail("member@team-a.example")
        code, reply = client.rcpt("log-000000000000@log.test.example")
        assert (code, reply[:5]) == (550, b"5.1.1")
        code, _ = client.rcpt("jane.doe@acme.example")  # never relayed
        assert code == 550


def test_an_oversize_message_gets_552(
    settings: Settings, sessions: sessionmaker[Session], world: LogWorld
) -> None:
    small = settings.model_copy(update={"inbound_max_message_bytes": 20_000})
    with InboundServer(
        small,
        host="127.0.0.1",
        port=0,
        sessions=sessions,
        checks=LOCAL_RELAY,
        on_spooled=logging_before_replies(sessions, LOCAL_RELAY),
    ) as server:
        big = message("Big attachment", body="x" * 30_000)
        code, reply = send(server, "member@team-a.example", [world.log_address], big)
        assert code == 552, reply
        # A client that declares the size is refused before it sends anything.
        with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
            client.ehlo("client.test")
            assert client.esmtp_features["size"] == "20000"
            code, _ = client.mail("member@team-a.example", ["SIZE=30000"])
            assert code == 552
        long_body = ("y" * 70 + "\\n") * 500  # swaks reads a backslash-n as a line break
        result = swaks(
            server, "--from", "member@team-a.example", "--to", world.log_address, "--body", long_body
        )
        assert result.returncode != 0
        assert "552" in result.stdout
        # Nothing was stored, and the server goes on with the next message.
        assert world.emails() == []
        code, _ = send(server, "member@team-a.example", [world.log_address], message("Small one"))
        assert code == 250
    assert [r["subject"] for r in world.emails()] == ["Small one"]


def test_bad_input_is_logged_with_defects_or_quarantined_and_the_server_goes_on(
    world: LogWorld, smtp_server: InboundServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = (
        b"From: Mia Member <member@team-a.example>\r\nTo: jane.doe@acme.example\r\n"
        b"Subject: =?x-no-such-charset?q?caf=E9?=\r\nMessage-ID: <broken-1@team-a.example>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="never-closed"\r\n\r\n'
        b"--never-closed\r\nContent-Type: text/plain; charset=x-unknown-8bit\r\n\r\n\xff\xfe caf\xe9\r\n"
    )
    code, reply = send(smtp_server, "member@team-a.example", [world.log_address], broken)
    assert code == 250, reply
    stored = world.email(str(only_email(world)["id"]))
    assert stored.defects  # what could not be read is recorded, and the message is kept

    # A message that fails while being stored (after its 250: the worker's business) is set aside
    # with its reason; the next one is logged.
    original = store_service.store_emails

    def failing_store(session: Session, workspace_id: uuid.UUID, batch: list[Incoming], **told: Any) -> Any:
        if any(incoming.parsed.subject == "Poison" for incoming in batch):
            raise RuntimeError("the storage layer choked")
        return original(session, workspace_id, batch, **told)

    monkeypatch.setattr(store_service, "store_emails", failing_store)
    code, reply = send(smtp_server, "member@team-a.example", [world.log_address], message("Poison"))
    assert code == 250, reply
    code, _ = send(smtp_server, "member@team-a.example", [world.log_address], message("Fine"))
    assert code == 250
    with session_scope(world.sessions) as session:
        reasons = list(session.scalars(select(QuarantinedMessage.reason)))
    assert len(reasons) == 1
    assert "the storage layer choked" in reasons[0]
    assert sorted(str(r["subject"]) for r in world.emails()) == ["Fine", stored.subject]


def test_nul_bytes_and_header_injection_attempts_never_stop_the_server(
    world: LogWorld, smtp_server: InboundServer
) -> None:
    nul = message("Has a NUL", body="before\x00after\n")
    code, _ = send(smtp_server, "member@team-a.example", [world.log_address], nul)
    assert code == 250  # then stored, or quarantined with its reason where the database refuses NUL
    # An encoded line break in the Subject does not add a recipient.
    injected = message("placeholder").replace(
        b"Subject: placeholder", b"Subject: =?utf-8?q?Hello=0D=0ABcc=3A_mallory=40stranger.example?="
    )
    code, _ = send(smtp_server, "member@team-a.example", [world.log_address], injected)
    assert code == 250
    record = next(r for r in world.emails() if str(r["subject"]).startswith("Hello"))
    assert record["contacts"] == [f"jane.doe@{CUSTOMER}"]
    email = world.email(str(record["id"]))
    assert "mallory@stranger.example" not in [*email.to_addresses, *email.cc_addresses]
    code, _ = send(smtp_server, "member@team-a.example", [world.log_address], message("After"))
    assert code == 250


def test_parallel_clients_are_all_logged(world: LogWorld, smtp_server: InboundServer) -> None:
    replies: list[int] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        with smtplib.SMTP("127.0.0.1", smtp_server.port, timeout=60) as connection:
            for index in range(4):
                raw = message(f"Parallel {number}-{index}")
                connection.sendmail("member@team-a.example", [world.log_address], raw)
                with lock:
                    replies.append(number)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(replies) == 32
    assert len(world.emails()) == 32
    assert smtp_server.committer.messages == 32
    assert smtp_server.committer.batches <= 32


def test_starttls_is_offered_when_a_certificate_is_configured(
    settings: Settings, sessions: sessionmaker[Session], world: LogWorld, tmp_path: Path
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    secured = settings.model_copy(update={"inbound_tls_cert": cert, "inbound_tls_key": key})
    with InboundServer(
        secured,
        host="127.0.0.1",
        port=0,
        sessions=sessions,
        checks=LOCAL_RELAY,
        on_spooled=logging_before_replies(sessions, LOCAL_RELAY),
    ) as server:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
            client.ehlo("client.test")
            assert client.has_extn("starttls")
            context = ssl.create_default_context(cafile=str(cert))
            context.check_hostname = False
            client.starttls(context=context)
            client.ehlo("client.test")
            client.sendmail("member@team-a.example", [world.log_address], message("Over TLS"))
        result = swaks(
            server,
            "--tls",
            "--from",
            "member@team-a.example",
            "--to",
            world.log_address,
            "--header",
            "From: member@team-a.example",
            "--header",
            "Subject: swaks over TLS",
        )
        assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(str(r["subject"]) for r in world.emails()) == ["Over TLS", "swaks over TLS"]


def test_without_a_certificate_there_is_no_starttls(world: LogWorld, smtp_server: InboundServer) -> None:
    with smtplib.SMTP("127.0.0.1", smtp_server.port, timeout=30) as client:
        client.ehlo("client.test")
        assert not client.has_extn("starttls")
        assert client.has_extn("size")


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "log.test.example")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("log.test.example")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "inbound.pem", directory / "inbound.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path
