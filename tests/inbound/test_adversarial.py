"""Hostile mail costs the readers time in proportion to its size only: no reader's regular
expression backtracks, and each message's work is bounded, so that one email cannot stall the
service. Each reader is timed on each hostile input against its own time on ordinary text as long
(see tests/inbound/hostile.py for the budget), in a forked process that is stopped at the budget."""

from __future__ import annotations

import pytest

from tests.inbound import hostile
from touchline.inbound.parse import parse_headers, parse_message
from touchline.inbound.quotes import html_to_text, reply_text, snippet
from touchline.inbound.reading import read_message
from touchline.inbound.receive.forwarded import find_forwarded, inline_blocks
from touchline.inbound.receive.service import prepare
from touchline.kit.html import sanitise_html

MESSAGES = hostile.messages()
TEXTS = hostile.texts()
ORDINARY_TEXT = "Thanks for the call today, here is the quote we talked about.\n\n"


def _no_dns(name: bytes, timeout: float = 5) -> bytes | None:
    return None


def _prepared(raw: bytes) -> object:
    return prepare(raw, dkim_lookup=_no_dns)


def _ordinary(text: str) -> str:
    return (ORDINARY_TEXT * (len(text) // len(ORDINARY_TEXT) + 1))[: len(text)]


@pytest.mark.parametrize("name", sorted(MESSAGES))
@pytest.mark.parametrize(
    "reader",
    [read_message, parse_message, parse_headers, find_forwarded, _prepared],
    ids=["read_message", "parse_message", "parse_headers", "find_forwarded", "prepare"],
)
def test_each_message_reader_reads_hostile_mail_in_linear_time(reader: hostile.Reader, name: str) -> None:
    raw = MESSAGES[name]
    hostile.assert_linear(reader, raw, hostile.benign_like(raw))


@pytest.mark.parametrize("name", sorted(TEXTS))
@pytest.mark.parametrize(
    "reader",
    [
        reply_text,
        snippet,
        html_to_text,
        lambda text: html_to_text(text, keep_quoted=True),
        inline_blocks,
        sanitise_html,
    ],
    ids=["reply_text", "snippet", "html_to_text", "html_to_text_quoted", "inline_blocks", "sanitise_html"],
)
def test_each_text_reader_reads_hostile_text_in_linear_time(reader: hostile.Reader, name: str) -> None:
    text = TEXTS[name]
    hostile.assert_linear(reader, text, _ordinary(text))
