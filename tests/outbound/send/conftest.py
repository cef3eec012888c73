"""The fake Gmail and Graph servers of the provider tests, and messages to send through them."""

from __future__ import annotations

import datetime as dt

from tests.mailboxes.conftest import (
    _gmail_server,
    _graph_server,
    fake_gmail,
    fake_graph,
    gmail,
    gmail_tokens,
    gmail_url,
    google_flow,
    graph,
    graph_tokens,
    graph_url,
    microsoft_flow,
)
from touchline.outbound.compose.mime import Mailbox, OutgoingEmail, build_message
from touchline.outbound.send.contract import Outgoing

__all__ = [
    "_gmail_server",
    "_graph_server",
    "fake_gmail",
    "fake_graph",
    "gmail",
    "gmail_tokens",
    "gmail_url",
    "google_flow",
    "graph",
    "graph_tokens",
    "graph_url",
    "microsoft_flow",
]


def outgoing(
    subject: str = "Renewal next month",
    *,
    to: tuple[str, ...] = ("jane@customer.example",),
    cc: tuple[str, ...] = (),
    in_reply_to: str | None = None,
    provider_thread_id: str = "",
) -> Outgoing:
    built = build_message(
        OutgoingEmail(
            sender=Mailbox("sam@touchline.example", "Sam Seller"),
            to=tuple(Mailbox(address) for address in to),
            cc=tuple(Mailbox(address) for address in cc),
            subject=subject,
            text="Hello Jane,\n\nyour renewal is due next month.\n",
            html="<p>Hello Jane,</p><p>your renewal is due next month.</p>",
            date=dt.datetime(2026, 12, 6, 9, 30, tzinfo=dt.UTC),
            in_reply_to=in_reply_to,
        ),
        "touchline.example",
    )
    return Outgoing(
        raw=built.raw,
        envelope_from="sam@touchline.example",
        recipients=built.recipients,
        message_id=built.message_id,
        provider_thread_id=provider_thread_id,
    )
