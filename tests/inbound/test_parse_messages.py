"""Whole messages with MIME edge cases, from the fixture files: read as far as possible, never raising."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.inbound.samples import FIXTURES, fixture_bytes
from touchline.inbound.parse import Address, Attachment, parse_headers, parse_message


def test_every_fixture_parses_the_same_headers_both_ways() -> None:
    for path in sorted(FIXTURES.glob("*.eml")):
        full, headers = parse_message(path.read_bytes()), parse_headers(path.read_bytes())
        assert not full.headers_only
        assert headers.headers_only
        assert (full.from_, full.to, full.cc, full.subject, full.date, full.dedup_key) == (
            headers.from_,
            headers.to,
            headers.cc,
            headers.subject,
            headers.date,
            headers.dedup_key,
        ), path.name


def test_encoded_words_in_names_and_subject() -> None:
    parsed = parse_message(fixture_bytes("encoded_words.eml"))
    assert parsed.from_ == (Address("joerg.mueller@example.de", "Jörg Müller"),)
    assert parsed.to == (Address("jane.doe@acme.com", "Doe, Jane"), Address("jerome@acme.com", "Jérôme"))
    assert parsed.cc == (Address("yamada@example.jp", "山田"),)
    assert parsed.subject == "Re: Prüfung der Rechnung"
    assert parsed.text_body == "Grüße aus München.\n"
    assert parsed.defects == ()


def test_rfc2231_and_encoded_attachment_names() -> None:
    parsed = parse_message(fixture_bytes("rfc2231_attachment.eml"))
    assert parsed.text_body == "Rates attached."
    assert [attachment.filename for attachment in parsed.attachments] == [
        "€ rates 2025.pdf",
        "Prévisions été.csv",
        "résumé.bin",
    ]
    assert parsed.attachments[0] == Attachment("€ rates 2025.pdf", "application/pdf", 230)
    assert parsed.attachments[2].size == 6


def test_a_multipart_whose_boundary_never_comes_keeps_its_text() -> None:
    parsed = parse_message(fixture_bytes("broken_multipart.eml"))
    assert parsed.text_body is not None
    assert "preamble is all there is" in parsed.text_body
    assert parsed.attachments == ()
    assert "StartBoundaryNotFoundDefect" in parsed.defects


def test_an_unclosed_multipart_keeps_both_parts() -> None:
    parsed = parse_message(fixture_bytes("broken_multipart_unclosed.eml"))
    assert parsed.text_body == "Plain part that is never closed."
    assert parsed.html_body == "<p>HTML part that is never closed.</p>"
    assert "CloseBoundaryNotFoundDefect" in parsed.defects


def test_unencoded_8_bit_headers_are_read_as_utf8_or_latin1() -> None:
    parsed = parse_message(fixture_bytes("eight_bit_headers.eml"))
    assert parsed.from_ == (Address("zoe@acme.com", "Zoë Åström"),)
    assert parsed.to == (Address("francois@acme.com", "François"),)
    assert parsed.subject == "Überweisung für März"
    assert "To: address list: 8-bit characters that are not UTF-8, read as Latin-1" in parsed.defects


def test_unknown_charsets_fall_back_with_a_defect() -> None:
    parsed = parse_message(fixture_bytes("unknown_charset.eml"))
    assert parsed.from_ == (Address("worf@acme.com", "Worf"),)
    assert parsed.subject == "Qapla'"
    assert parsed.text_body == "nuqneH\n"
    assert "body text/plain: unknown charset 'x-klingon'" in parsed.defects


def test_missing_message_id_gets_a_fallback_key() -> None:
    parsed = parse_message(fixture_bytes("missing_message_id.eml"))
    assert parsed.message_id is None
    assert parsed.dedup_key.startswith("sha256:")
    assert parsed.dedup_key == parse_headers(fixture_bytes("missing_message_id.eml")).dedup_key


def test_bulk_and_auto_reply_fixtures_are_marked() -> None:
    assert parse_message(fixture_bytes("bulk_list.eml")).bulk == "List-Id: ACME news <news.lists.acme.com>"
    assert parse_message(fixture_bytes("auto_reply.eml")).auto_reply == "Auto-Submitted: auto-replied"


def test_alternative_bodies_and_an_inline_image() -> None:
    parsed = parse_message(fixture_bytes("html_alternative.eml"))
    assert parsed.text_body == "Café tomorrow?"
    assert parsed.html_body == '<p>Café tomorrow? <img src="cid:logo@acme"></p>'
    assert parsed.attachments == (Attachment(None, "image/png", 48, inline=True, content_id="logo@acme"),)
    assert parsed.date == datetime(2025, 3, 11, 14, 0, tzinfo=UTC)


def test_a_forwarded_message_is_an_attachment_not_a_body() -> None:
    parsed = parse_message(fixture_bytes("forwarded_message.eml"))
    assert parsed.text_body == "See below."
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [("contract.eml", "message/rfc822")]
    assert parsed.attachments[0].size > 0


def test_crlf_and_folded_headers() -> None:
    parsed = parse_message(fixture_bytes("crlf_line_endings.eml"))
    assert [mailbox.address for mailbox in parsed.to] == ["success@touchline.example", "ivy@acme.com"]
    assert parsed.subject == "CRLF folded subject"


def test_groups_comments_routes_and_idna() -> None:
    parsed = parse_message(fixture_bytes("groups_and_comments.eml"))
    assert parsed.from_ == (Address("jane@acme.com", "Jane Doe"),)
    assert parsed.to == ()
    assert [mailbox.address for mailbox in parsed.cc] == [
        "a@acme.com",
        "bob@acme.com",
        "kim@xn--bcher-kva.example",
        "lee@acme.com",
    ]
    assert parsed.date == datetime(2025, 3, 14, 18, 0, tzinfo=UTC)


def test_bad_base64_keeps_the_text_and_says_so() -> None:
    parsed = parse_message(fixture_bytes("bad_base64.eml"))
    assert parsed.text_body
    assert any("Base64" in defect for defect in parsed.defects)


def test_threading_headers() -> None:
    parsed = parse_message(fixture_bytes("reply_with_references.eml"))
    assert parsed.in_reply_to == ("reply-1@touchline.example",)
    assert parsed.references == ("root-0@acme.com", "reply-1@touchline.example")


def test_a_unix_from_line_and_a_missing_separator_are_tolerated() -> None:
    assert parse_headers(fixture_bytes("unix_from_line.eml")).sender == "kate@acme.com"
    no_separator = parse_message(fixture_bytes("no_body_separator.eml"))
    assert no_separator.subject == "Header block runs into the body"
    assert "MissingHeaderBodySeparatorDefect" in no_separator.defects


def test_non_bytes_input_is_reported_not_raised() -> None:
    parsed = parse_message("not bytes")  # type: ignore[arg-type]
    assert parsed.defects
    assert parsed.defects[0].startswith("message: unreadable")
    assert parse_headers(None).defects  # type: ignore[arg-type]
