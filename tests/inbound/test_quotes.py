"""Quote and signature stripping for snippets, and its agreement with the reply fixture sets."""

from __future__ import annotations

import importlib.util
import re
import sys
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mailparser_reply import EmailMessage

from tests.corpus import REPOSITORY, corpus_folder
from touchline.inbound import quotes
from touchline.inbound.quotes import _LANGUAGES, _Message, html_to_text, reply_text, snippet

GMAIL_REPLY = """Sounds good, see you Tuesday.

Best regards,
Jane

On Mon, Mar 3, 2025 at 9:15 AM Success Team <success@touchline.example> wrote:
> Shall we meet on Tuesday?
> We can go over the renewal.
"""


def test_the_quoted_message_and_signature_are_dropped() -> None:
    assert reply_text(GMAIL_REPLY) == "Sounds good, see you Tuesday."


def test_outlook_and_foreign_reply_headers() -> None:
    outlook = (
        "Agreed.\n\n-----Original Message-----\nFrom: Bob\nSent: Monday\nTo: Jane\nSubject: x\n\nOld text"
    )
    dutch = "Prima.\n\nOp 12 december 2016 19:05 schreef Bob <\nbob@acme.com>:\n\nOude tekst"
    separator = "Svar.\n\n-------- Oprindelig besked --------\nFra: Bob\nHej"
    assert reply_text(outlook) == "Agreed."
    assert reply_text(dutch) == "Prima."
    assert reply_text(separator) == "Svar."


def test_answers_below_quoted_lines_are_kept() -> None:
    body = "Hi,\n\nOn Tue, Bob wrote:\n> Can you list the keys?\n\nYes: call list first.\n"
    assert reply_text(body) == "Hi,\n\nYes: call list first."


def test_a_sign_off_with_the_senders_name_or_initials_is_dropped() -> None:
    body = "Please call me when you land.\n\nThanks. BT\n"
    assert reply_text(body, '"Tycholiz, Barry" <barry.tycholiz@acme.com>') == "Please call me when you land."
    assert reply_text("Call Kim about it.\n\nKim", "Kim Theriot <kim@acme.com>") == "Call Kim about it."
    assert reply_text("Call Kim about it.", "Kim Theriot <kim@acme.com>") == "Call Kim about it."


def test_hyphen_lists_are_text_and_dash_names_are_sign_offs() -> None:
    body = "Two things:\n- the price\n- the date\n\n-Abhishek Kona\n"
    assert reply_text(body) == "Two things:\n- the price\n- the date"


def test_a_bare_forward_keeps_the_forwarded_text() -> None:
    assert reply_text("> only quoted\n> text") == "only quoted\ntext"
    assert reply_text("") == ""
    assert reply_text("  \n ") == ""


def test_snippets_are_one_line_cut_at_a_word() -> None:
    assert snippet(GMAIL_REPLY) == "Sounds good, see you Tuesday."
    long = "word " * 100
    cut = snippet(long, max_chars=50)
    assert len(cut) <= 50
    assert cut.endswith("…")
    assert "\n" not in snippet("a\n\nb")


def test_html_to_text_leaves_out_quotes_scripts_and_styles() -> None:
    html = (
        "<html><head><style>p{}</style></head><body><p>Hi. I am fine.</p><script>x()</script>"
        '<div class="gmail_quote">On Monday Bob wrote:<blockquote>Old <b>text</b></blockquote></div>'
        "<blockquote>more old</blockquote><p>Bye &amp; thanks</p></body></html>"
    )
    assert html_to_text(html) == "Hi. I am fine.\n\nBye & thanks"
    assert html_to_text("<p>unclosed <b>tags") == "unclosed tags"


def _measure_module() -> ModuleType:
    path = REPOSITORY / "bench" / "quotes" / "measure.py"
    spec = importlib.util.spec_from_file_location("bench_quotes_measure", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# Measured agreement, minus a little, so that regressions fail (see docs/benchmarks.md).
FLOORS = {
    "crisp-email-reply-parser": (0.80, 72),
    "github-email_reply_parser": (0.90, 22),
    "mail-parser-reply": (0.93, 47),
    "mailgun-forge": (0.77, 192),
    "talon": (0.92, 27),
    "willdurand-EmailReplyParser": (0.78, 45),
    "zapier-email-reply-parser": (0.95, 24),
}


@pytest.fixture(scope="module")
def measured() -> dict[str, list[object]]:
    results: dict[str, list[object]] = _measure_module().measure(corpus_folder("replies"))
    return results


@pytest.mark.corpus
@pytest.mark.parametrize("set_name", sorted(FLOORS))
def test_agreement_with_each_reply_fixture_set_stays_above_its_floor(
    measured: dict[str, list[object]], set_name: str
) -> None:
    floor, size = FLOORS[set_name]
    cases = measured[set_name]
    assert len(cases) == size
    misses = [case.name for case in cases if not case.agrees]  # type: ignore[attr-defined]
    assert 1 - len(misses) / len(cases) >= floor, misses


# The reader's fast paths (patterns searched through gates, the normalisation's last step skipped
# where it changes nothing) must read every text exactly as the library's own reader does.

MAIL_PIECES = [
    "\n",
    "\n\n",
    "\r\n",
    "  ",
    "> ",
    ">",
    "-",
    "--\n",
    "_" * 32,
    "\n\n" + "-" * 40,
    "x" + "_" * 33,
    "-----Original Message-----",
    "On Mon, 3 Jun 2024 at 10:00, Kim <kim@acme.example> wrote:",
    "Am 3. Juni 2024 um 10:00 schrieb Kim <kim@acme.example>:",
    "From: Kim",
    "Sent: Monday",
    "To: Sam",
    "Subject: Renewal",
    "Fra: Kim",
    "Best regards,",
    "Thanks,",
    "Grüße",
    "Sent from my iPhone",
    "CAUTION: this e-mail is private",
    "Disclaimer",
    "Thanks. BT",
    "Kim",
    "-Kim Theriot",
    "- an item",
    "12:30",
    "@",
    "é",
    "\xa0",
    "\u212a",
]
mail_texts = st.lists(st.one_of(st.sampled_from(MAIL_PIECES), st.text(max_size=5)), max_size=30).map("".join)


def _replies(message: EmailMessage) -> list[tuple[object, ...]]:
    return [(r.content, r.headers, r.signatures, r.disclaimers) for r in message.read().replies]


@settings(max_examples=200, deadline=None)
@given(mail_texts)
def test_the_fast_reader_reads_as_the_library_does(text: str) -> None:
    options = {"languages": list(_LANGUAGES), "keep_hyphen_lists": True}
    fast, library = _Message(text=text, **options), EmailMessage(text=text, **options)
    assert fast.text == library.text
    assert _replies(fast) == _replies(library)


@settings(max_examples=300, deadline=None)
@given(mail_texts, st.sampled_from([None, "kim.theriot@acme.example", '"Tycholiz, Barry" <bt@acme.example>']))
def test_the_cuts_equal_their_plain_forms(text: str, sender: str | None) -> None:
    assert quotes._cut_at_reply_header(text) == plain_cut_at_reply_header(text)
    assert quotes._cut_at_marker_line(text) == plain_cut_at_marker_line(text)
    assert quotes._without_quoted_lines(text) == plain_without_quoted_lines(text)
    if sender:
        assert quotes._cut_sign_off(text, sender) == plain_cut_sign_off(text, sender)


def test_whitespace_is_what_str_split_splits_on() -> None:
    # snippet() collapses whitespace with str.split(), standing for re's \s+.
    everything = "".join(map(chr, range(sys.maxunicode + 1)))
    assert re.findall(r"\s", everything) == [c for c in everything if c.isspace()]


# The cuts as first written, line by line: the fast forms must agree with them.

SEPARATOR_HEADER_AS_WRITTEN = re.compile(r"^[-_=*]{2,}\s*\S.{0,60}?\s*[-_=*]{2,}$")


def plain_cut_at_reply_header(text: str) -> str:
    lines = text.splitlines()
    for index in range(1, len(lines)):
        line = lines[index].strip()
        if SEPARATOR_HEADER_AS_WRITTEN.match(line):
            return "\n".join(lines[:index]).strip()
        following = lines[index + 1].strip() if index + 1 < len(lines) else ""
        for candidate in (line, f"{line} {following}" if following.endswith(":") else ""):
            if (
                candidate.endswith(":")
                and len(candidate) < 240
                and quotes._ATTRIBUTION_HINT.search(candidate)
            ):
                return "\n".join(lines[:index]).strip()
    return text


def plain_cut_at_marker_line(text: str) -> str:
    lines = text.splitlines()
    for index in range(1, len(lines)):
        line = lines[index].strip()
        if quotes._LONG_RULE.match(line) or (quotes._DASH_SIGN_OFF.match(line) and index >= len(lines) - 6):
            return "\n".join(lines[:index]).strip()
    return text


def plain_without_quoted_lines(body: str) -> str:
    kept = [line for line in body.splitlines() if not quotes._QUOTED_LINE.match(line)]
    return "\n".join(kept).strip()


def plain_cut_sign_off(text: str, sender: str) -> str:
    names, initials = quotes._sender_marks(sender)
    if not names and not initials:
        return text
    lines = text.splitlines()
    filled = [index for index, line in enumerate(lines) if line.strip()]
    for index in filled[-4:]:
        if index == filled[0] or any(len(line.strip()) > 60 for line in lines[index:]):
            continue
        words = [word for word in re.split(r"[^\w]+", lines[index]) if word]
        if not words:
            continue
        opens_with_name = words[0].casefold() in names
        short_with_mark = len(words) <= 3 and any(w.casefold() in names or w in initials for w in words)
        if opens_with_name or short_with_mark:
            return "\n".join(lines[:index]).strip()
    return text
