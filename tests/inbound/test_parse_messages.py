"""Whole messages with MIME edge cases, from the fixture files and built here: read as far as possible,
never raising."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.corpus import enron_files
from tests.inbound.samples import FIXTURES, fixture_bytes, message_bytes
from touchline.inbound.parse import Address, Attachment, mime, parse_headers, parse_message
from touchline.inbound.parse import message as message_module
from touchline.inbound.parse.headers import decode_bytes, decode_words, readable


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


_HEAD = (
    b"From: jane@acme.com\nTo: success@touchline.example\nSubject: Parts\n"
    b"Date: Mon, 03 Mar 2025 09:15:00 +0000\nMessage-ID: <parts-1@acme.com>\n"
)


def _multipart(*parts: bytes, boundary: bytes = b"b1", subtype: bytes = b"mixed") -> bytes:
    body = b"".join(b"--" + boundary + b"\n" + part + b"\n" for part in parts)
    head = b"Content-Type: multipart/" + subtype + b'; boundary="' + boundary + b'"\n\n'
    return head + body + b"--" + boundary + b"--\n"


def _message(body: bytes, *, crlf: bool = False) -> bytes:
    raw = _HEAD + b"MIME-Version: 1.0\n" + body
    return raw.replace(b"\n", b"\r\n") if crlf else raw


def _attachment(encoded: bytes, *, content_type: bytes = b"application/octet-stream") -> bytes:
    return (
        b"Content-Type: " + content_type + b"\n"
        b'Content-Disposition: attachment; filename="data.bin"\n'
        b"Content-Transfer-Encoding: base64\n\n" + encoded
    )


@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 56, 57, 58, 59, 1000, 4096, 65_537])
def test_base64_attachment_size_is_the_decoded_size(size: int, crlf: bool) -> None:
    content = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    encoded = base64.encodebytes(content)  # 76-character lines, each with a line break, padded
    raw = _message(_multipart(b"Content-Type: text/plain\n\nSee attached.", _attachment(encoded)), crlf=crlf)
    parsed = parse_message(raw)
    assert parsed.attachments == (Attachment("data.bin", "application/octet-stream", size),)
    assert parsed.text_body == "See attached."
    assert parsed.defects == ()


@pytest.mark.parametrize(
    "encoded",
    [
        b"",
        b"QQ==",
        b"QUI=",
        b"QUJD",
        b"QUJD\nREVG\n",
        b"QUJDREVGRw==\r\n",
        b"QU\nJD\r\nRE\nVG\nRw==\n",
        base64.b64encode(bytes(1000)),
        base64.encodebytes(bytes(range(256)) * 9).replace(b"\n", b"\r\n"),
    ],
)
def test_base64_size_without_decoding_equals_the_decoded_length(encoded: bytes) -> None:
    assert message_module._base64_size(encoded) == len(base64.b64decode(b"".join(encoded.splitlines())))


@pytest.mark.parametrize(
    "encoded",
    [b"QQ", b"QUJDRA", b"QUJ D", b"QUJD*!", b"=QUJD", b"QQ==QUJD", b"QQ=A", b"QUJDR", b"QUJD\xe9"],
)
def test_base64_that_would_not_decode_cleanly_is_not_measured(encoded: bytes) -> None:
    assert message_module._base64_size(encoded) is None


def test_attachments_are_measured_without_being_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _message(_multipart(_attachment(base64.encodebytes(bytes(3000)))), crlf=True)

    def decode_nothing(part: Message) -> bytes:
        raise AssertionError("an attachment was decoded")

    monkeypatch.setattr(message_module, "_payload", decode_nothing)
    parsed = parse_message(raw)
    assert parsed.attachments == (Attachment("data.bin", "application/octet-stream", 3000),)
    assert parsed.defects == ()


@pytest.mark.parametrize(
    ("encoded", "size", "defect"),
    [
        (b"QUJDRA\n", 4, "InvalidBase64PaddingDefect"),  # padding left off
        (b"QUJD*!REVG\n", 6, "InvalidBase64CharactersDefect"),
        (b"QUJD REVG \n", 6, "InvalidBase64CharactersDefect"),  # blanks are not line breaks
        (b"QUJDR\n", 5, "InvalidBase64LengthDefect"),  # no way to decode: the text itself
    ],
)
def test_malformed_base64_attachments_say_so_and_are_measured_as_decoded(
    encoded: bytes, size: int, defect: str
) -> None:
    parsed = parse_message(_message(_multipart(_attachment(encoded))))
    assert [attachment.size for attachment in parsed.attachments] == [size]
    assert defect in parsed.defects


def test_quoted_printable_and_8bit_attachments_are_measured_decoded() -> None:
    quoted = b"Content-Type: text/csv\nContent-Disposition: attachment; filename=a.csv\n"
    quoted += b"Content-Transfer-Encoding: quoted-printable\n\nK=C3=B6ln,=\n1\n"
    plain = b"Content-Type: text/csv; name=b.csv\nContent-Transfer-Encoding: 8bit\n\nK\xc3\xb6ln,1\n"
    parsed = parse_message(_message(_multipart(quoted, plain)))
    assert [(a.filename, a.size) for a in parsed.attachments] == [("a.csv", 8), ("b.csv", 8)]


def test_an_attached_message_is_as_long_as_its_text() -> None:
    inner = b"From: legal@partner.example\nSubject: Contract\n\nInner body.\n"
    part = b"Content-Type: message/rfc822\nContent-Disposition: attachment; filename=c.eml\n\n" + inner
    for crlf in (False, True):
        parsed = parse_message(
            _message(_multipart(b"Content-Type: text/plain\n\nSee below.", part), crlf=crlf)
        )
        expected = len(inner.replace(b"\n", b"\r\n")) if crlf else len(inner)
        assert parsed.attachments == (Attachment("c.eml", "message/rfc822", expected),)
        assert parsed.text_body == "See below."


def test_rfc2231_names_are_decoded_in_their_charset() -> None:
    parts = (
        b"Content-Type: application/pdf\n"
        b"Content-Disposition: attachment; filename*=UTF-8'en'%E2%82%AC%20rates.pdf\n\nx",
        b"Content-Type: text/csv\nContent-Disposition: attachment;\n"
        b" filename*0*=iso-8859-1''Pr%E9visions%20;\n filename*1*=%E9t%E9;\n filename*2=.csv\n\nx",
        b'Content-Type: application/octet-stream; name="=?utf-8?Q?r=C3=A9sum=C3=A9.bin?="\n\nx',
        b'Content-Type: image/png; name="ignored.png"\nContent-Disposition: inline; filename="logo.png"\n\nx',
    )
    parsed = parse_message(_message(_multipart(*parts)))
    assert [a.filename for a in parsed.attachments] == [
        "€ rates.pdf",
        "Prévisions été.csv",
        "résumé.bin",
        "logo.png",
    ]
    assert parsed.attachments[3].inline
    assert parsed.defects == ()


def test_an_rfc2231_name_in_an_unknown_charset_is_read_with_a_defect() -> None:
    part = (
        b"Content-Type: text/plain\nContent-Disposition: attachment; filename*=x-klingon''caf%C3%A9.txt\n\nx"
    )
    parsed = parse_message(_message(_multipart(part)))
    assert [a.filename for a in parsed.attachments] == ["café.txt"]
    assert "attachment name: unknown charset 'x-klingon'" in parsed.defects


def test_unencoded_8_bit_names_are_read_as_utf8_or_latin1() -> None:
    parts = (
        b'Content-Type: application/pdf; name="r\xc3\xa9sum\xc3\xa9.pdf"\n\nx',
        b'Content-Type: application/pdf\nContent-Disposition: attachment; filename="caf\xe9.pdf"\n\nx',
    )
    parsed = parse_message(_message(_multipart(*parts)))
    assert [a.filename for a in parsed.attachments] == ["résumé.pdf", "café.pdf"]


def test_rfc2231_sections_the_stdlib_cannot_order_cost_the_name_only() -> None:
    part = b"Content-Type: application/pdf\nContent-Disposition: attachment; filename*=a; filename*0=b\n\nx"
    parsed = parse_message(_message(_multipart(part)))
    assert parsed.attachments == (Attachment(None, "application/pdf", 1),)
    assert any(defect.startswith("content-disposition: unreadable parameters") for defect in parsed.defects)


def test_an_unknown_charset_in_a_part_keeps_the_text_and_is_named_as_written() -> None:
    part = (
        b'Content-Type: text/plain; charset="X-Klingon"\nContent-Transfer-Encoding: 8bit\n\nnuqneH \xc3\xa9'
    )
    parsed = parse_message(_message(_multipart(part), crlf=True))
    assert parsed.text_body == "nuqneH é"
    assert parsed.defects == ("body text/plain: unknown charset 'X-Klingon'",)


def test_content_types_are_read_as_before() -> None:
    parts = (
        b"Content-Type: TEXT/HTML (comment) ; charset=utf-8\n\n<p>hi</p>",
        b"Content-Type: image/\nContent-Transfer-Encoding: base64\n\nQUJD",
        b"Content-Type: application/pdf garbage\nContent-Disposition: attachment\n\nx",
        b"Content-Type: text\nContent-Disposition: ATTACHMENT; filename=t.txt\n\nx",
        b"\nno headers at all",
    )
    parsed = parse_message(_message(_multipart(*parts)))
    assert parsed.html_body == "<p>hi</p>"
    assert parsed.text_body == "no headers at all"
    assert [(a.content_type, a.filename) for a in parsed.attachments] == [
        ("image/plain", None),
        ("text/plain", None),
        ("text/plain", "t.txt"),
    ]


def test_every_fixture_reads_the_same_without_the_stdlib_parser() -> None:
    fast = 0
    for path in sorted(FIXTURES.rglob("*.eml")):
        raw = path.read_bytes()
        assert parse_message(raw) == parse_message(raw, stdlib_only=True), path.name
        fast += mime._split(raw) is not None
    # The broken ones go to the stdlib parser; the well-formed ones must not.
    assert fast >= 20


@pytest.mark.parametrize(
    "body",
    [
        _multipart(b"Content-Type: text/plain\n\nA", b"Content-Type: text/plain\n\nB").replace(
            b"--b1--\n", b""
        ),
        _multipart(b"Content-Type: text/plain\n\nA").replace(b"\n--b1\n", b"\n--b1\n--b1\n"),
        _multipart(b"Content-Type: text/plain\n\nA --b1\nContent-Type: text/plain\n\nB"),
        _multipart(b"Content-Type: text/plain\n\nA\n--b1x"),
        _multipart(b"Content-Type: text/plain\n\nA") + b"--b1--\n",
        _multipart(b"Content-Type: text/plain\n\nA\r--b1\nContent-Type: text/plain\n\nB"),
        _multipart(b"Content-Type: text/plain\nbroken header line\n\nA"),
        _multipart(b"Content-Type: text/plain\n\nA").replace(b'boundary="b1"', b'boundary="b\xc3\xa91"'),
        b"Content-Type: multipart/mixed\n\n--b1\n\nA\n--b1--\n",
    ],
)
def test_what_is_not_plainly_well_formed_goes_to_the_stdlib_parser(body: bytes) -> None:
    raw = _message(body)
    assert mime._split(raw) is None
    assert parse_message(raw) == parse_message(raw, stdlib_only=True)


_LEAF = st.tuples(
    st.sampled_from([b"text/plain", b"text/html", b"application/pdf", b"message/rfc822", b"image/png", b""]),
    st.sampled_from([b"", b"attachment", b"inline"]),
    st.sampled_from([b"", b"7bit", b"base64", b"quoted-printable", b"8bit"]),
    st.binary(max_size=120).map(lambda content: content.replace(b"-", b"+")),  # never a boundary
)


def _leaf_bytes(leaf: tuple[bytes, bytes, bytes, bytes]) -> bytes:
    content_type, disposition, encoding, content = leaf
    head = b""
    if content_type:
        head += b"Content-Type: " + content_type + b'; charset="utf-8"; name="n.bin"\n'
    if disposition:
        head += b"Content-Disposition: " + disposition + b";\n filename*=utf-8''%C3%A9.bin\n"
    if encoding:
        head += b"Content-Transfer-Encoding: " + encoding + b"\n"
    if encoding == b"base64":
        content = base64.encodebytes(content)
    elif encoding == b"quoted-printable":
        content = binascii.b2a_qp(content)
    return head + b"\n" + content


def _multipart_of(children: list[bytes], boundary: bytes, subtype: bytes) -> bytes:
    # A multipart is longer than any multipart inside it, so their boundaries differ; the closing x
    # keeps one from being the start of another.
    size = str(len(b"".join(children))).encode()
    return _multipart(*children, boundary=boundary + size + b"x", subtype=subtype)


_TREE = st.recursive(
    _LEAF.map(_leaf_bytes),
    lambda children: st.builds(
        _multipart_of,
        st.lists(children, min_size=1, max_size=3),
        st.sampled_from([b"b1", b"=_x", b"outer boundary"]),
        st.sampled_from([b"mixed", b"alternative", b"digest"]),
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(_TREE, st.booleans())
def test_the_fast_reader_agrees_with_the_stdlib_parser(body: bytes, crlf: bool) -> None:
    raw = _message(body, crlf=crlf)
    assert mime._split(raw) is not None
    assert parse_message(raw) == parse_message(raw, stdlib_only=True)


@settings(max_examples=300, deadline=None)
@given(_TREE, st.booleans(), st.integers(min_value=0), st.binary(min_size=1, max_size=4))
def test_the_fast_reader_never_disagrees_on_damaged_mail(
    body: bytes, crlf: bool, position: int, damage: bytes
) -> None:
    raw = _message(body, crlf=crlf)
    position %= len(raw)
    raw = raw[:position] + damage + raw[position + 1 :]
    assert parse_message(raw) == parse_message(raw, stdlib_only=True)


def _policy_default_reading(
    raw: bytes,
) -> tuple[str | None, str | None, list[tuple[str | None, str, int, bool]]]:
    """Text, HTML and attachments as parse_message read them with policy.default's header registry,
    before it read parts itself: the reference for the comparison below."""
    texts: list[str] = []
    html: str | None = None
    attachments: list[tuple[str | None, str, int, bool]] = []
    ignored: list[str] = []

    def walk(part: Message) -> None:
        nonlocal html
        type_header = part.get("content-type")
        if type_header is None:
            content_type, type_params = part.get_default_type(), {}
        else:
            content_type = str(type_header.content_type).lower()
            if content_type.count("/") != 1:
                content_type = "text/plain"
            type_params = type_header.params or {}
        if part.is_multipart() and not content_type.startswith("message/"):
            for child in part.get_payload():
                walk(child)
            return
        disposition_header = part.get("content-disposition")
        disposition, disposition_params = None, {}
        if disposition_header is not None:
            disposition = str(disposition_header.content_disposition or "").lower() or None
            disposition_params = disposition_header.params or {}
        name = disposition_params.get("filename") or type_params.get("name")
        if name is not None:
            name = decode_words(readable(str(name), "", ignored), "", ignored).strip() or None
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if content_type.startswith("message/"):
            # Sized as re-serialised by the stdlib then; now as carried, so not compared.
            attachments.append((name, content_type, -1, disposition == "inline"))
            return
        is_attachment = disposition == "attachment" or (name is not None and disposition != "inline")
        if content_type.startswith("multipart/"):
            content_type = "text/plain"
        if content_type in {"text/plain", "text/html"} and not is_attachment:
            text = decode_bytes(data, type_params.get("charset"), "", ignored)
            if content_type == "text/plain":
                texts.append(text)
            elif html is None:
                html = text
            return
        attachments.append((name, content_type, len(data), disposition == "inline"))

    walk(BytesParser(policy=policy.default).parsebytes(raw))
    return ("\n".join(texts) if texts else None), html, attachments


def _reading(raw: bytes) -> tuple[str | None, str | None, list[tuple[str | None, str, int, bool]]]:
    parsed = parse_message(raw)
    attachments = [
        (a.filename, a.content_type, -1 if a.content_type.startswith("message/") else a.size, a.inline)
        for a in parsed.attachments
    ]
    return parsed.text_body, parsed.html_body, attachments


def _stdlib_built_mail() -> list[bytes]:
    built = []
    for size in (0, 1, 100, 5_000, 150_000):
        message = EmailMessage(policy=policy.SMTP)
        message["From"] = "jane@acme.com"
        message["Subject"] = "Files"
        message.set_content("Hello,\nthe files.\n")
        message.add_alternative("<p>Hello, the files.</p>", subtype="html")
        message.add_attachment(bytes(range(256)) * (size // 256), maintype="application", subtype="pdf")
        message.add_attachment("Köln;1\n" * size, subtype="csv", filename="Köln Umsätze.csv")
        message.add_attachment(b"\x89PNG" * size, maintype="image", subtype="png", filename="x.png")
        built.append(message.as_bytes())
    return built


def test_the_reading_is_the_one_policy_default_gave_on_built_mail_and_fixtures() -> None:
    mail = [*_stdlib_built_mail(), *(path.read_bytes() for path in sorted(FIXTURES.rglob("*.eml")))]
    mail.append(message_bytes(body="Grüße\n"))
    for raw in mail:
        assert _reading(raw) == _policy_default_reading(raw)


@pytest.mark.corpus
def test_the_reading_is_the_one_policy_default_gave_on_the_enron_corpus() -> None:
    different = [
        path
        for path in enron_files()
        if _reading(raw := Path(path).read_bytes()) != _policy_default_reading(raw)
    ]
    assert different == []
