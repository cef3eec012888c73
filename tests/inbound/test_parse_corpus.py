"""Every Enron message of the dataset parses, both ways, without an exception and with the expected fields."""

from __future__ import annotations

import hashlib
from collections import Counter
from email import policy
from email.parser import BytesHeaderParser
from email.utils import getaddresses

import pytest

from tests.corpus import corpus_folder, enron_files, enron_manifest
from touchline.inbound.parse import parse_headers, parse_message

pytestmark = pytest.mark.corpus


def test_the_enron_files_are_the_ones_their_manifest_lists_byte_for_byte() -> None:
    enron, manifest = corpus_folder("enron"), enron_manifest()
    for path in enron_files():
        raw = path.read_bytes()
        entry = manifest[path.relative_to(enron).as_posix()]
        assert (len(raw), hashlib.sha256(raw).hexdigest()) == (entry.size, entry.sha256), path


def _plain_sender(raw: bytes) -> str | None:
    """The first From address as the stdlib's own address reader sees it, when it has a domain."""
    header = BytesHeaderParser(policy=policy.compat32).parsebytes(raw)
    found = [address for _, address in getaddresses(header.get_all("From", [])) if address]
    return found[0].lower() if found and "@" in found[0] else None


def test_every_enron_message_parses_both_ways() -> None:
    files = enron_files()
    outcomes: Counter[str] = Counter()
    for path in files:
        raw = path.read_bytes()
        headers, full = parse_headers(raw), parse_message(raw)
        assert headers == parse_headers(raw, stdlib_only=True), path
        assert headers.dedup_key == full.dedup_key, path
        assert headers.from_ == full.from_, path
        assert headers.to == full.to, path
        assert full.text_body is not None, path
        # Our address reader, whichever way the block was read, finds the sender the stdlib finds.
        assert headers.sender == _plain_sender(raw), path
        outcomes["with sender"] += bool(headers.sender)
        outcomes["dated"] += headers.date is not None
    # Every file has a Date. Of all 21,641 messages one From has no domain (`pep <performance.>`),
    # so a margin of 5 holds for the full corpus and for any part of it.
    assert outcomes["dated"] == len(files)
    assert outcomes["with sender"] >= len(files) - 5
