"""`LineStartPattern.findall` must equal `Pattern.findall`, on any text, for any pattern."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from mailparser_reply import EmailMessage

from tests.kit.mail_pieces import MAIL_PIECES
from touchline.inbound.quotes import _LANGUAGES
from touchline.kit.linescan import LineStartPattern, Start, match_starts

REPLY_HEADERS = EmailMessage(text="x", languages=list(_LANGUAGES), keep_hyphen_lists=True).HEADER_REGEX
FAST_REPLY_HEADERS = LineStartPattern(REPLY_HEADERS)
# Without a gate the starts worked out from the pattern are where it is asked.
UNGATED_REPLY_HEADERS = LineStartPattern(REPLY_HEADERS, gated=False)

PIECES = MAIL_PIECES


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), max_size=40))
def test_reply_header_search_finds_what_findall_finds(pieces: list[str]) -> None:
    text = "".join(pieces)
    expected = REPLY_HEADERS.findall(text)
    assert FAST_REPLY_HEADERS.findall(text) == expected
    assert UNGATED_REPLY_HEADERS.findall(text) == expected


def test_the_reply_header_patterns_are_bounded_so_the_fast_search_is_used() -> None:
    # Fails if a new release of the reply parser adds a pattern that can start anywhere: the search
    # is still right then, but as slow as before.
    assert FAST_REPLY_HEADERS.gate is not None
    assert UNGATED_REPLY_HEADERS.bounded


PATTERNS = [
    (r"^abc$", re.MULTILINE),
    (r"^(a)(b)?$", re.MULTILINE),
    (r"(?:^|\n)(x+)", 0),
    (r"(?:^|\n)?-+(x)", 0),
    (r"-{2,}", 0),
    (r"(?!a)^b", re.MULTILINE),
    (r"\bword", 0),  # bounded to "w"
    (r"\w+b", 0),  # a repeat: the second character may be the first's kind again
    (r".b", 0),  # starts anywhere: falls back
    (r"^(?:ab)*c", re.MULTILINE),
    (r"^(?i:k)elvin", re.MULTILINE),
    (r"[Kk]", re.IGNORECASE),  # the Kelvin sign matches too
    (r"x*", 0),  # may match nothing: falls back
    (r"^", re.MULTILINE),  # empty matches: left to findall
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PATTERNS), st.text(alphabet="abxk-\n K\u212a", max_size=30))
def test_any_pattern_finds_what_findall_finds(pattern: tuple[str, int], text: str) -> None:
    compiled = re.compile(*pattern)
    assert LineStartPattern(compiled).findall(text) == compiled.findall(text)
    assert LineStartPattern(compiled, gated=False).findall(text) == compiled.findall(text)


def test_where_matches_can_start() -> None:
    assert match_starts(re.compile(r".b")) is None
    assert match_starts(re.compile(r"\w+b")) == frozenset({Start(r"[\w]", r"[\w]|[b]")})
    assert match_starts(re.compile(r"\bword")) == frozenset({Start("[w]", "[o]")})
    # Letters under IGNORECASE are looked for under it too, so the Kelvin sign still counts as a K.
    assert match_starts(re.compile(r"[Kk]elvin", re.IGNORECASE)) == frozenset(
        {Start("(?i:[Kk])", "(?i:[e])")}
    )
    assert match_starts(re.compile(r"x*")) is None
    assert match_starts(re.compile(r"(?:^|\n)?-+x", re.MULTILINE)) == frozenset(
        {Start("", r"[\-]"), Start("[" + re.escape("\n") + "]", r"[\-]"), Start(r"[\-]", r"[\-]|[x]")}
    )
