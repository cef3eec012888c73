"""One hostile email does not stall the service: while the log address reads it, the app answers.

`touchline serve` runs the web app and the log address's SMTP server in one process, so any one
long call that holds the interpreter's lock (a regular expression backtracking over a message)
would stop both. Here the SMTP server logs what it spooled before it replies (as in the other
SMTP tests), on its own thread beside the web app's, while /health is asked again and again.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.inbound import hostile
from tests.receive.conftest import LogWorld
from tests.receive.test_smtp import send
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
