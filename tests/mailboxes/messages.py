"""Small RFC 5322 messages for the provider tests."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid


def email_bytes(
    subject: str,
    *,
    sender: str = "Jane Doe <jane@customer.example>",
    to: str = "Sam Seller <sam@touchline.example>",
    sent_at: dt.datetime | None = None,
    body: str = "Hello from a customer.\n",
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(sent_at or dt.datetime.now(dt.UTC))
    message["Message-ID"] = make_msgid(domain="customer.example")
    message.set_content(body)
    return message.as_bytes()
