"""DKIM on logged mail: every signature's result is recorded, and a workspace may require a pass."""

from __future__ import annotations

import smtplib

from tests.receive.conftest import FakeDns, LogWorld, Signer, message
from touchline.inbound.parse import header_block
from touchline.inbound.receive.signatures import verify_dkim
from touchline.inbound.receive.smtp import InboundServer


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


def test_results_are_recorded_on_logged_and_refused_mail(
    world: LogWorld, strict_server: InboundServer, dns: FakeDns, signer: Signer
) -> None:
    signer.publish(dns, "team-a.example")
    good = signer.sign(message("Signed"), "team-a.example")
    bad = signer.sign(message("Tampered"), "team-a.example").replace(b"the quote", b"a quote")
    code, reply = send(strict_server, good, world.log_address)
    assert code == 250, reply
    code, reply = send(strict_server, bad, world.log_address)
    assert code == 550, reply
    [logged] = world.emails()
    record = world.email(str(logged["id"])).decision["log"][-1]
    assert record["dkim"]["status"] == "pass"
    assert record["dkim"]["signatures"][0]["domain"] == "team-a.example"
    [refused] = world.refusals()
    assert refused.subject == "Tampered"
    assert refused.dkim["status"] == "fail"
