"""Quote and signature stripping for snippets, and its agreement with the reply fixture sets."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest

from tests.corpus import REPOSITORY, corpus_folder
from touchline.inbound.quotes import html_to_text, reply_text, snippet

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
