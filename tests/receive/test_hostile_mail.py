"""One hostile email does not stall the service: while the log address reads it, the app answers.

`touchline serve` runs the web app and the log address's SMTP server in one process, so any one
long call that holds the interpreter's lock (a regular expression backtracking over a message)
would stop both. Here the SMTP server logs what it spooled before it replies (as in the other
SMTP tests), on its own thread beside the web app's, while /health is asked again and again.
"""

from __future__ import annotations

import threading
import time

import dkim
import httpx
import pytest

from tests.inbound import hostile
from tests.receive.conftest import FakeDns, LogWorld, Signer
from tests.receive.test_smtp import send
from touchline.inbound.parse import header_block
from touchline.inbound.receive.signatures import verify_dkim
from touchline.inbound.receive.smtp import InboundServer

SENDER = "member@team-a.example"
HEALTH_SECONDS = 1.5
"""How long /health may take to answer at any time (it answers in milliseconds when idle)."""


def _hostile_mail(body: str) -> bytes:
    head = (
        f"From: Mia Member <{SENDER}>\r\nTo: Someone <someone@stranger.example>\r\n"
        "Subject: hostile\r\nDate: Mon, 1 Dec 2026 09:00:00 +0000\r\n"
        "Message-ID: <hostile@team-a.example>\r\n"
    ).encode()
    return hostile.message(body, content_type="text/html", head=head)


def _lines(unit: str, count: int) -> str:
    """`unit` `count` times, in lines short enough for SMTP (1000 characters at most)."""
    per_line = 900 // len(unit)
    return "".join((unit * per_line + "\r\n") for _ in range(count // per_line))


@pytest.mark.parametrize(
    "body",
    [_lines("<script", 100_000), _lines("<style ", 100_000), _lines("<div>", 100_000)],
    ids=["unclosed-script", "unclosed-style", "nested-elements"],
)
def test_health_answers_while_a_hostile_mail_is_logged(
    world: LogWorld, smtp_server: InboundServer, live_server: str, body: str
) -> None:
    replies: list[tuple[int, bytes]] = []
    sender = threading.Thread(
        target=lambda: replies.append(send(smtp_server, SENDER, [world.log_address], _hostile_mail(body)))
    )
    slowest = 0.0
    answers = 0
    with httpx.Client(base_url=live_server, timeout=120) as client:
        assert client.get("/health").status_code == 200
        sender.start()
        while sender.is_alive() or answers == 0:
            started = time.perf_counter()
            response = client.get("/health")
            slowest = max(slowest, time.perf_counter() - started)
            answers += 1
            assert response.status_code == 200, response.text
        sender.join()
    assert slowest < HEALTH_SECONDS, f"/health took {slowest:.1f}s while the message was read"
    ((code, reply),) = replies
    assert code == 250, reply
    (logged,) = world.emails()
    assert logged["subject"] == "hostile"
    assert logged["unassigned"]


def _signed_then_replaced(signer: Signer, dns: FakeDns, head_extra: bytes, body: bytes) -> bytes:
    """A message signed by a published key, its body then replaced: the key is found, so the body is
    canonicalised and hashed before the signature fails."""
    signer.publish(dns, "team-a.example")
    message = hostile.HEAD + b"\r\nhello\r\n"
    signature = dkim.sign(
        message, b"s1", b"team-a.example", signer.private_pem, canonicalize=(b"relaxed", b"relaxed")
    )
    head, _, _ = (bytes(signature) + message).partition(b"\r\n\r\n")
    return head + b"\r\n" + head_extra + b"\r\n" + body


@pytest.mark.parametrize(
    ("head_extra", "body"),
    [
        (b"", b" " * 400_000 + b"x\r\n"),
        (b"", (b"\t " * 20 + b"x") * 20_000 + b"\r\n"),
        (b"", b"a\r\n" * 1_000_000),
        (b"X-Filler: y\r\n" + b" y\r\n" * 100_000, b"hello\r\n"),
    ],
    ids=["blank-run", "many-blank-runs", "short-lines", "folded-header"],
)
def test_dkim_verification_of_hostile_mail_is_bounded(signer: Signer, head_extra: bytes, body: bytes) -> None:
    dns = FakeDns()
    raw = _signed_then_replaced(signer, dns, head_extra, body)
    benign = _signed_then_replaced(signer, dns, b"", b"Thanks for the call.\r\n" * (len(body) // 22))

    def verify(message: bytes) -> object:
        return verify_dkim(message, header_block(message), "team-a.example", lookup=dns)

    hostile.assert_linear(verify, raw, benign)
    assert verify(raw).status == "fail"  # type: ignore[attr-defined]


def test_an_overlong_signature_field_is_not_verified(signer: Signer) -> None:
    dns = FakeDns()
    signer.publish(dns, "team-a.example")
    field = b"DKIM-Signature: v=1; a=rsa-sha256; d=team-a.example; s=s1; h=from; bh=; b=" + b" \r\n " * 10_000
    raw = field + b"!\r\n" + hostile.HEAD + b"\r\nhello\r\n"
    result = verify_dkim(raw, header_block(raw), "team-a.example", lookup=dns)
    assert result.status == "fail"
    assert result.signatures[0].detail.startswith("not verified: a DKIM-Signature field longer than")
