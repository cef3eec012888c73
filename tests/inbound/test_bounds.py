"""Each message's work is bounded: what lies beyond a bound is left unread or not shown, and the
reading says so; mail as written stays far from every bound."""

from __future__ import annotations

from tests.inbound import hostile
from touchline.inbound.parse import parse_message
from touchline.inbound.parse.mime import MAX_PARTS, CostlyStructureDefect
from touchline.inbound.quotes import html_to_text
from touchline.inbound.reading import ReadMessage, read_message
from touchline.inbound.receive.forwarded import find_forwarded
from touchline.kit.html import sanitise_html, too_costly


def test_a_nested_mime_bomb_is_read_within_the_bounds_and_says_so() -> None:
    raw = hostile.nested_mime(levels=300, lines=1_000_000)
    hostile.assert_linear(read_message, raw, hostile.benign_like(raw))
    read = read_message(raw)
    assert isinstance(read, ReadMessage)
    assert any(defect.startswith(CostlyStructureDefect.__name__) for defect in read.parsed.defects)
    assert read.parsed.subject == "hostile"


def test_parts_beyond_the_limit_are_left_unread() -> None:
    raw = hostile.messages()["10^5 parts"]
    parsed = parse_message(raw)
    assert any(defect.startswith(CostlyStructureDefect.__name__) for defect in parsed.defects)
    assert parsed.text_body is not None
    assert parsed.text_body.count("x") <= MAX_PARTS


def test_html_too_costly_to_parse_is_not_shown_but_its_text_is() -> None:
    deep = "<div>" * 50_000 + "Hello there"
    assert too_costly(deep) == "HTML nested too deeply"
    assert sanitise_html(deep) is None
    assert html_to_text(deep) == "Hello there"
    read = read_message(hostile.message(deep, content_type="text/html"))
    assert isinstance(read, ReadMessage)
    assert read.shown.html_body is None
    entities = "a&amp;b " * 200_000
    assert too_costly(entities) is not None
    # Mail as written is far from either bound.
    newsletter = (
        "<table>" + "<tr><td><div><p>Price&nbsp;&amp;&nbsp;terms</p></div></td></tr>" * 5000 + "</table>"
    )
    assert too_costly(newsletter) is None


def test_forwarded_headers_are_still_found_in_html_and_hostile_markup_costs_nothing() -> None:
    forward = (
        "<div>FYI<br><div class='gmail_quote'>---------- Forwarded message ---------<br>"
        "From: Jane &lt;jane@acme.example&gt;<br>Date: Mon<br>Subject: Renewal<br>"
        "To: kim@team-a.example<br></div></div><script>" + "<script" * 10_000
    )
    found = find_forwarded(hostile.message(forward, content_type="text/html"))
    assert found.participants == ("jane@acme.example", "kim@team-a.example")
