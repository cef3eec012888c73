"""Sample messages for the inbound tests: the fixture files and small messages built on demand."""

from __future__ import annotations

from collections.abc import Iterable
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "emails"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def message_bytes(
    *,
    sender: str = "jane@acme.com",
    to: Iterable[str] = ("success@touchline.example",),
    cc: Iterable[str] = (),
    subject: str = "Hello",
    extra_headers: Iterable[tuple[str, str]] = (),
    message_id: str | None = "<m-1@acme.com>",
    body: str = "Hello.\n",
) -> bytes:
    """A small, valid message built with the stdlib, so tests state only what they are about."""
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    if tuple(to):
        message["To"] = ", ".join(to)
    if tuple(cc):
        message["Cc"] = ", ".join(cc)
    message["Subject"] = subject
    message["Date"] = "Mon, 03 Mar 2025 09:15:00 +0000"
    if message_id:
        message["Message-ID"] = message_id
    for name, value in extra_headers:
        message[name] = value
    message.set_content(body)
    return message.as_bytes()
