"""Original participants found inside forwarded mail, in each mail client's style."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.receive.conftest import FORWARDED
from touchline.inbound.directory import Directory
from touchline.inbound.receive.forwarded import find_forwarded, html_to_text, inline_blocks
from touchline.inbound.receive.service import suggest_companies

JANE, PAT, LEE, MIA = (
    "jane.doe@acme.example",
    "pat@acme.example",
    "lee.ops@acme.example",
    "member@team-a.example",
)


@pytest.mark.parametrize(
    ("fixture", "style", "participants"),
    [
        ("gmail.eml", "gmail", (JANE, MIA, PAT)),
        ("gmail_html_only.eml", "gmail", (JANE, MIA, PAT)),
        ("outlook.eml", "outlook", (JANE, MIA, PAT, LEE)),
        ("outlook_original_message.eml", "outlook", (JANE, MIA, PAT, LEE)),
        ("apple_mail.eml", "apple-mail", (JANE, MIA, PAT)),
        ("thunderbird.eml", "thunderbird", (JANE, MIA, PAT)),
        ("attached.eml", "attached", (JANE, MIA, PAT)),
    ],
)
def test_each_client_style(fixture: str, style: str, participants: tuple[str, ...]) -> None:
    found = find_forwarded((FORWARDED / fixture).read_bytes())
    assert found.styles == (style,)
    assert found.participants == participants
    block = found.blocks[0]
    assert block.from_ == (JANE,)
    assert block.subject == "Renewal quote"
    assert block.date


def test_a_message_that_only_looks_like_headers_is_no_forward() -> None:
    assert find_forwarded((FORWARDED / "not_forwarded.eml").read_bytes()).blocks == ()
    assert inline_blocks("Meeting notes\n\nFrom: the board\nTo: all staff\nSubject: budget\n") == []


def test_nested_and_translated_forwards_are_all_read() -> None:
    text = (
        "See below.\n\n"
        "---------- Forwarded message ---------\n"
        "From: Kim <kim@team-a.example>\nDate: Tue, 4 Nov 2025\nSubject: Fwd: Renewal\n"
        "To: Mia <member@team-a.example>\n\n"
        "> -----Ursprüngliche Nachricht-----\n"
        "> Von: Jane Doe <jane.doe@acme.example>\n"
        "> Gesendet: Montag, 3. November 2025 10:02\n"
        "> An: Kim <kim@team-a.example>\n"
        "> Betreff: Renewal\n"
    )
    blocks = inline_blocks(text)
    assert [b.from_ for b in blocks] == [("kim@team-a.example",), (JANE,)]
    assert [b.style for b in blocks] == ["gmail", "outlook"]
    assert blocks[1].subject == "Renewal"
    # Outlook often writes no separator at all: a From/Sent/To run after a blank line is a block.
    bare = inline_blocks(
        "Logging this.\n\nFrom: Jane <jane.doe@acme.example>\nSent: Monday\nTo: kim@team-a.example\n"
    )
    assert [(b.style, b.from_) for b in bare] == [("outlook", (JANE,))]


def test_html_is_reduced_to_lines() -> None:
    markup = (
        "<div>Hi<br>From: <b>Jane</b> &lt;<a href='mailto:jane@acme.example'>jane@acme.example</a>&gt;</div>"
    )
    assert html_to_text(markup).splitlines() == ["Hi", "From: Jane <jane@acme.example>"]
    assert html_to_text("<style>From: x@y.example</style><p>ok</p>").strip() == "ok"


def test_suggestions_come_from_external_participants_only() -> None:
    directory = Directory()
    directory.set_internal_domains(["team-a.example"])
    directory.add_company_domain("acme", "acme.example")
    directory.add_company_domain("globex", "globex.example")
    directory.add_contact("pat@gmail.com", "globex")
    participants = ("member@team-a.example", JANE, "pat@gmail.com", "nobody@unknown.example", PAT)
    assert suggest_companies(participants, directory) == ["acme", "globex"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_never_raises_on_any_bytes(raw: bytes) -> None:
    found = find_forwarded(raw)
    assert isinstance(found.participants, tuple)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=2000))
def test_never_raises_on_any_text(text: str) -> None:
    for block in inline_blocks("---------- Forwarded message ---------\n" + text):
        assert all("@" in address for address in block.participants)
