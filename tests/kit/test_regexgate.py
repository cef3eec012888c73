"""A `Gate` must let through every position where its pattern matches, for any pattern and text;
`LineStartPattern`, searching through one, must find exactly what the pattern finds."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mailparser_reply import EmailMessage
from mailparser_reply.constants import OUTLOOK_MAIL_SEPARATOR

from tests.kit.mail_pieces import MAIL_PIECES
from touchline.inbound.quotes import _LANGUAGES
from touchline.kit import regexgate
from touchline.kit.linescan import LineStartPattern
from touchline.kit.regexgate import Gate, fold

LIBRARY = EmailMessage(text="x", languages=list(_LANGUAGES), keep_hyphen_lists=True)
LIBRARY_PATTERNS = {
    "reply headers": LIBRARY.HEADER_REGEX,
    "signatures": LIBRARY.SIGNATURE_REGEX,
    "disclaimers": LIBRARY.DISCLAIMERS_REGEX,
    "glued separators": re.compile(f"([^\n]){OUTLOOK_MAIL_SEPARATOR}"),
}

# Constructs the derivation rewrites or leaves out, in small patterns, and characters whose case
# folds outside ASCII (the Kelvin sign matches k, ſ matches s, ı and İ match i under IGNORECASE).
PATTERNS = [
    (r"^abc$", re.MULTILINE),
    (r"^(a)(b)?$", re.MULTILINE),
    (r"(?:^|\n)(x+)", 0),
    (r"(?:^|\n)?-+(x)", 0),
    (r"-{2,}k", 0),
    (r"(?!a)^b", re.MULTILINE),
    (r"(?<!\A)^k", re.MULTILINE),
    (r"(?<=a)b", 0),
    (r"\bword\b", re.IGNORECASE),
    (r"\w+b", 0),
    (r".b", 0),
    (r"[^\n]x", 0),
    (r".b", re.DOTALL),
    (r"^(?:ab)*c", re.MULTILINE),
    (r"^(?i:k)elvin", re.MULTILINE),
    (r"(?i)s(?-i:K)", 0),
    (r"[Kk]", re.IGNORECASE),
    (r"ks", re.IGNORECASE),
    (r"\s*^(?:> ?)*(?:ab|sk)", re.MULTILINE | re.IGNORECASE),
    (r"(?<!\A)^(?:> ?)*(?:k|s,)(.|\s)*", re.MULTILINE | re.IGNORECASE),
    (r"(?:[\n.!?]|^)[ \t]{0,3}(?:ba|ks)(?:[ a-z]*?k[ a-z]*){1,2}", re.MULTILINE | re.IGNORECASE),
    (r"a.+?\s?.+?\s?bk:$", re.MULTILINE | re.IGNORECASE),
    (
        r"((?:(?:^|\n|\n(?:> ?)*)[* ]*(?:a|bk):[ *]*(?:\s{,2}).*){2,}(?:\n.*){,1})",
        re.MULTILINE | re.IGNORECASE,
    ),
    (r"(?>a|ab)c", 0),
    (r"a*+b", 0),
    (r"^", re.MULTILINE),
    (r"(?:a?)*b", 0),
    (r"(a)\1", 0),
    (r"x*", 0),
    (r"[é]k|ö", re.IGNORECASE),
    (r"\d{2}\D", 0),
    (r"\d{2}\D", re.ASCII),
]
ALPHABET = "abksx-\n >*:,.!?\tK\u212a\u017f\u0131\u0130é\u00c9\xa0\u2028ö1"


def match_starts(pattern: re.Pattern[str], text: str) -> list[int]:
    return [start for start in range(len(text) + 1) if pattern.match(text, start)]


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(PATTERNS), st.text(alphabet=ALPHABET, max_size=30))
def test_every_match_lies_in_a_range_the_gate_yields(pattern: tuple[str, int], text: str) -> None:
    compiled = re.compile(*pattern)
    gate = Gate.of(compiled)
    if gate is None:
        return
    with pytest.MonkeyPatch.context() as patch:
        # Text mostly beyond ASCII is left to the pattern; here the gate must cover it too.
        patch.setattr(regexgate, "_MOSTLY_BEYOND_ASCII", 0)
        found = gate.ranges(text)
        assert gate.may_match(text) or not match_starts(compiled, text)
    assert found is not None
    ranges = list(found)
    assert ranges == sorted(ranges)
    assert all(0 <= low <= high <= len(text) for low, high in ranges)
    for start in match_starts(compiled, text):
        assert any(low <= start <= high for low, high in ranges), (start, ranges)


@pytest.mark.parametrize("gate_all", [False, True])
@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PATTERNS), st.text(alphabet=ALPHABET, max_size=30))
def test_searching_through_the_gate_finds_what_the_pattern_finds(
    gate_all: bool, pattern: tuple[str, int], text: str
) -> None:
    compiled = re.compile(*pattern)
    fast = LineStartPattern(compiled)
    with pytest.MonkeyPatch.context() as patch:
        if gate_all:
            patch.setattr(regexgate, "_MOSTLY_BEYOND_ASCII", 0)
        assert fast.findall(text) == compiled.findall(text)
        found, expected = fast.search(text), compiled.search(text)
    assert (found and (found.span(), found.groups())) == (expected and (expected.span(), expected.groups()))


def test_what_cannot_be_bounded_has_no_gate() -> None:
    assert Gate.of(re.compile(r"(a)\1")) is None  # back-references
    assert Gate.of(re.compile(r"x*")) is None  # may match nothing, anywhere
    assert Gate.of(re.compile(r"(?:a?)*b")) is None  # an endless repeat of what may be empty


def test_the_gate_starts_at_characters_a_match_can_begin_with() -> None:
    gate = Gate.of(re.compile(r"^(?:> ?)*(?:Thanks|Regards),", re.MULTILINE | re.IGNORECASE))
    assert gate is not None
    # A line start is a newline in the folded copy (which begins with one): one search, for it.
    assert len(gate.sources) == 1
    assert gate.sources[0].startswith(re.escape("\n"))
    assert list(gate.ranges("> THANKS, Kim")) == [(0, 0)]
    assert list(gate.ranges("Hi,\n> > Regards, Kim")) == [(3, 4)]
    assert list(gate.ranges("Hi,\nthanks a lot")) == []


def test_a_word_every_match_needs_is_looked_for_first() -> None:
    gate = Gate.of(LIBRARY_PATTERNS["disclaimers"])
    assert gate is not None
    assert list(gate.ranges("Note.\nWarning: no mal here")) == []
    assert list(gate.ranges("Note.\nWarning: this e-mail is private")) == [(5, 6)]


def test_folding_keeps_positions() -> None:
    assert fold("ÄbC\u212a\n") == "?bc?\n"
    assert fold("AbC") == "abc"


@pytest.mark.parametrize("name", sorted(LIBRARY_PATTERNS))
def test_the_reply_parsers_patterns_have_gates(name: str) -> None:
    # Fails if a new release of the reply parser brings a pattern the derivation gives up on:
    # matching is still right then, but as slow as the library's.
    assert Gate.of(LIBRARY_PATTERNS[name]) is not None


PIECES = MAIL_PIECES


GATED = {name: LineStartPattern(pattern) for name, pattern in LIBRARY_PATTERNS.items()}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=6)), max_size=30))
def test_the_reply_parsers_patterns_find_what_they_find_without_gates(pieces: list[str]) -> None:
    text = "".join(pieces)
    for name, pattern in LIBRARY_PATTERNS.items():
        fast = GATED[name]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(regexgate, "_MOSTLY_BEYOND_ASCII", 0)  # the gate for any text, always
            assert fast.findall(text) == pattern.findall(text)
            found, expected = fast.search(text), pattern.search(text)
        assert (found and found.span()) == (expected and expected.span())
