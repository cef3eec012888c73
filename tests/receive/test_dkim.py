"""DKIM on logged mail: every signature's result is recorded, and a workspace may require a pass."""

from __future__ import annotations

import base64
import smtplib
from dataclasses import dataclass

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.receive.conftest import FakeDns, LogWorld, message
from touchline.inbound.parse import header_block
from touchline.inbound.receive.signatures import verify_dkim
from touchline.inbound.receive.smtp import InboundServer

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


@pytest.fixture(scope="session")
def signer() -> Signer:
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


def verify(raw: bytes, dns: FakeDns, from_domain: str = "team-a.example") -> tuple[str, list[str]]:
    result = verify_dkim(raw, header_block(raw), from_domain, lookup=dns)
    return result.status, [s.result for s in result.signatures]


def test_signature_outcomes(signer: Signer) -> None:
    dns = FakeDns()
    signer.publish(dns, "team-a.example")
    signer.publish(dns, "mail.team-a.example")
    signer.publish(dns, "bulk-mailer.example")
    raw = message("Signed")
    assert verify(raw, dns) == ("none", [])
    assert verify(signer.sign(raw, "team-a.example"), dns) == ("pass", ["pass"])
    # A subdomain of the From domain is aligned (DMARC's relaxed mode).
    assert verify(signer.sign(raw, "mail.team-a.example"), dns) == ("pass", ["pass"])
    # A valid signature of another domain proves nothing about the sender.
    assert verify(signer.sign(raw, "bulk-mailer.example"), dns) == ("unaligned", ["pass"])
    tampered = signer.sign(raw, "team-a.example").replace(b"quote we talked", b"quote we never had")
    assert verify(tampered, dns) == ("fail", ["fail"])
    assert verify(signer.sign(raw, "unpublished.example"), dns)[0] == "fail"
    # Two signatures: the aligned pass wins over a broken third-party one.
    both = signer.sign(signer.sign(raw, "team-a.example"), "bulk-mailer.example").replace(
        b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/simple; d=bulk-mailer.example",
        b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/simple; d=bulk-mailer.example; x=garbage",
        1,
    )
    assert verify(both, dns)[0] == "pass"
    dns.failing = True
    assert verify(signer.sign(raw, "team-a.example"), dns) == ("temperror", ["temperror"])
    # A signature header that is not even parseable is a permanent error, not a crash.
    garbled = b"DKIM-Signature: v=1; this is not a tag list\r\n" + raw
    assert verify(garbled, FakeDns())[1] == ["permerror"]


def send(server: InboundServer, raw: bytes, recipient: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
        client.ehlo("client.test")
        client.mail("member@team-a.example")
        code, reply = client.rcpt(recipient)
        assert code == 250, reply
        return client.data(raw)


def test_results_are_recorded_on_logged_mail(
    world: LogWorld, smtp_server: InboundServer, dns: FakeDns, signer: Signer
) -> None:
    signer.publish(dns, "team-a.example")
    good = signer.sign(message("Signed"), "team-a.example")
    bad = signer.sign(message("Tampered"), "team-a.example").replace(b"the quote", b"a quote")
    for raw in (good, bad):
        code, reply = send(smtp_server, raw, world.log_address)
        assert code == 250, reply
    results = {
        str(r["subject"]): world.email(str(r["id"])).decision["log"][-1]["dkim"] for r in world.emails()
    }
    assert results["Signed"]["status"] == "pass"
    assert results["Signed"]["signatures"][0]["domain"] == "team-a.example"
    assert results["Tampered"]["status"] == "fail"


def test_a_workspace_can_require_dkim(
    world: LogWorld, smtp_server: InboundServer, dns: FakeDns, signer: Signer
) -> None:
    world.require_dkim()
    signer.publish(dns, "team-a.example")
    signer.publish(dns, "bulk-mailer.example")
    code, reply = send(smtp_server, message("Unsigned"), world.log_address)
    assert (code, reply[:6]) == (550, b"5.7.20")
    code, _ = send(
        smtp_server, signer.sign(message("Someone else's"), "bulk-mailer.example"), world.log_address
    )
    assert code == 550
    code, reply = send(smtp_server, signer.sign(message("Signed"), "team-a.example"), world.log_address)
    assert code == 250, reply
    dns.failing = True
    code, reply = send(smtp_server, signer.sign(message("Later"), "team-a.example"), world.log_address)
    assert (code, reply[:5]) == (451, b"4.7.5")  # the sender's server retries; nothing is refused yet
    assert [r["subject"] for r in world.emails()] == ["Signed"]
    refusals = world.refusals()
    assert [r.code for r in refusals] == ["dkim-required", "dkim-required"]
    assert refusals[1].dkim["status"] == "unaligned"
