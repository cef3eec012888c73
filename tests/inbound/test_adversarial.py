"""Hostile mail costs the readers time in proportion to its size only: no reader's regular
expression backtracks, and each message's work is bounded, so that one email cannot stall the
service. Each reader is timed on each hostile input against its own time on ordinary text as long
(see tests/inbound/hostile.py for the budget), in a forked process that is stopped at the budget."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.inbound import hostile
from tests.inbound.test_quotes import SEPARATOR_HEADER_AS_WRITTEN
from tests.receive.conftest import FakeDns
from touchline.inbound.parse import parse_headers, parse_message
from touchline.inbound.quotes import _is_separator_header, html_to_text, reply_text, snippet
from touchline.inbound.reading import read_message
from touchline.inbound.receive.forwarded import _ADDRESS, find_forwarded, inline_blocks
from touchline.inbound.receive.service import Envelope, prepare
from touchline.inbound.thread import base_subject
from touchline.kit.html import sanitise_html

MESSAGES = hostile.messages()
TEXTS = hostile.texts()
ORDINARY_TEXT = "Thanks for the call today, here is the quote we talked about.\n\n"


_NO_DNS = FakeDns().checks()  # every lookup finds nothing: the work measured is reading, not waiting


def _prepared(raw: bytes) -> object:
    return prepare(raw, Envelope("smtp", "member@team-a.example", remote="203.0.113.5"), _NO_DNS)


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
        base_subject,
    ],
    ids=[
        "reply_text",
        "snippet",
        "html_to_text",
        "html_to_text_quoted",
        "inline_blocks",
        "sanitise_html",
        "base_subject",
    ],
)
def test_each_text_reader_reads_hostile_text_in_linear_time(reader: hostile.Reader, name: str) -> None:
    text = TEXTS[name]
    hostile.assert_linear(reader, text, _ordinary(text))


# Patterns rewritten to read in linear time, as they were: the rewrites must match alike.
_REPLY_PREFIX_AS_WAS = re.compile(r"^\s*(?:(?:re|fwd?|aw|sv)\s*(?:\[\d+\]|\^\d+)?\s*:\s*)+", re.IGNORECASE)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="-_=* \tab\u00a0", max_size=80))
def test_separator_headers_are_found_as_the_pattern_found_them(line: str) -> None:
    assert _is_separator_header(line) == (SEPARATOR_HEADER_AS_WRITTEN.match(line) is not None)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="reREfwdFWDavs:[]^0123 \tx", max_size=30))
def test_reply_prefixes_are_found_as_the_pattern_found_them(subject: str) -> None:
    found = _REPLY_PREFIX_AS_WAS.match(subject)
    rest = subject[found.end() :] if found else subject
    assert base_subject(subject) == (" ".join(rest.split()).casefold(), found is not None)


_ADDRESS_AS_WAS = re.compile(r"[^\s<>()\[\],;:\"'*]+@[^\s<>()\[\],;:\"'*]+")


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="ab@ <>;.", max_size=40))
def test_forwarded_addresses_are_found_as_the_pattern_found_them(text: str) -> None:
    assert _ADDRESS.findall(text) == _ADDRESS_AS_WAS.findall(text)
