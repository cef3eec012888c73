"""The whole Enron corpus parses, both ways, without an exception and with the expected fields."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.corpus import corpus_folder
from touchline.inbound.parse import parse_headers, parse_message

pytestmark = pytest.mark.corpus

ENRON_MESSAGES = 21_641


def test_every_enron_message_parses_both_ways() -> None:
    files = sorted(path for path in corpus_folder("enron").rglob("*") if path.is_file())
    assert len(files) == ENRON_MESSAGES
    outcomes: Counter[str] = Counter()
    for path in files:
        raw = path.read_bytes()
        headers, full = parse_headers(raw), parse_message(raw)
        assert headers == parse_headers(raw, stdlib_only=True), path
        assert headers.dedup_key == full.dedup_key, path
        assert headers.from_ == full.from_, path
        assert headers.to == full.to, path
        assert full.text_body is not None, path
        outcomes["with sender"] += bool(headers.sender)
        outcomes["dated"] += headers.date is not None
        outcomes["from enron.com"] += bool(headers.sender and headers.sender.endswith("@enron.com"))
    # Every file starts with a CMU Message-ID, and the corpus notes say how many come from Enron.
    assert outcomes["dated"] == ENRON_MESSAGES
    assert outcomes["with sender"] >= ENRON_MESSAGES - 5
    assert outcomes["from enron.com"] == pytest.approx(14_767, abs=50)
