"""Header fields: addresses, dates, ids, markers and the dedup key, read without ever raising."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from email.parser import BytesHeaderParser

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.inbound.samples import message_bytes
from touchline.inbound.parse import Address, header_block, parse_headers, parse_message
from touchline.inbound.parse.headers import RawHeaders, date_field, message_ids, split_address_list


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("jane@acme.com", [("", "jane@acme.com")]),
        ("Jane Doe <jane@acme.com>, bob@acme.com", [("Jane Doe", "jane@acme.com"), ("", "bob@acme.com")]),
        ('"Doe, Jane" <jane@acme.com>', [("Doe, Jane", "jane@acme.com")]),
        ("jane@acme.com (Jane Doe)", [("Jane Doe", "jane@acme.com")]),
        (
            "team: a@acme.com, b@acme.com;, c@acme.com",
            [("", "a@acme.com"), ("", "b@acme.com"), ("", "c@acme.com")],
        ),
        ("undisclosed-recipients:;", []),
        ("<@relay.example:lee@acme.com>", [("", "lee@acme.com")]),
        ('"Say \\"hi\\"" <hi@acme.com>', [('Say "hi"', "hi@acme.com")]),
        (" , ,jane@acme.com,, ", [("", "jane@acme.com")]),
        ("<>", [("", "")]),
    ],
)
def test_address_lists_split_into_names_and_addresses(value: str, expected: list[tuple[str, str]]) -> None:
    assert split_address_list(value) == expected


def test_addresses_are_normalised_and_names_kept_apart() -> None:
    parsed = parse_headers(
        message_bytes(
            sender="=?utf-8?Q?J=C3=B6rg?= <Joerg@Example.DE>",
            to=["Jane.Doe@ACME.com", "kim@bücher.example"],
            cc=["JANE.DOE@acme.com"],
        )
    )
    assert parsed.from_ == (Address("joerg@example.de", "Jörg"),)
    assert parsed.to == (Address("jane.doe@acme.com"), Address("kim@xn--bcher-kva.example"))
    assert parsed.cc == (Address("jane.doe@acme.com"),)
    assert parsed.sender == "joerg@example.de"


def test_an_address_listed_twice_in_one_header_appears_once() -> None:
    parsed = parse_headers(message_bytes(to=["a@acme.com", "A@ACME.COM", "b@acme.com"]))
    assert [mailbox.address for mailbox in parsed.to] == ["a@acme.com", "b@acme.com"]


def test_repeated_address_headers_are_merged() -> None:
    raw = b"From: a@acme.com\nTo: b@acme.com\nTo: c@acme.com, b@acme.com\nSubject: x\n\n"
    assert [mailbox.address for mailbox in parse_headers(raw).to] == ["b@acme.com", "c@acme.com"]


def test_unreadable_addresses_become_defects_not_errors() -> None:
    parsed = parse_headers(b"From: not an address\nTo: ok@acme.com, @@, x@\nSubject: s\n\n")
    assert parsed.from_ == ()
    assert [mailbox.address for mailbox in parsed.to] == ["ok@acme.com"]
    assert any(defect.startswith("From: unreadable address") for defect in parsed.defects)
    assert sum(defect.startswith("To: unreadable address") for defect in parsed.defects) == 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "Tue, 16 Oct 2001 23:37:42 -0700 (PDT)",
            datetime(2001, 10, 16, 23, 37, 42, tzinfo=timezone(timedelta(hours=-7))),
        ),
        (
            "16 Oct 2001 23:37 +0530",
            datetime(2001, 10, 16, 23, 37, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        ),
        ("Tue, 16 Oct 01 23:37:42 GMT", datetime(2001, 10, 16, 23, 37, 42, tzinfo=UTC)),
        (
            "Tue, 16 Oct 2001 23:37:42 EST",
            datetime(2001, 10, 16, 23, 37, 42, tzinfo=timezone(timedelta(hours=-5))),
        ),
        ("Thu, 4 Jan 2044 00:00:00 +0000", datetime(2044, 1, 4, tzinfo=UTC)),
    ],
)
def test_dates_are_timezone_aware(value: str, expected: datetime) -> None:
    parsed = date_field(value, [])
    assert parsed == expected
    assert parsed is not None
    assert parsed.tzinfo is not None


def test_a_date_without_zone_is_read_as_utc_with_a_defect() -> None:
    defects: list[str] = []
    assert date_field("Tue, 16 Oct 2001 23:37:42", defects) == datetime(2001, 10, 16, 23, 37, 42, tzinfo=UTC)
    assert defects == ["Date: no time zone, read as UTC"]


@pytest.mark.parametrize("value", ["yesterday", "Tue, 45 Foo 2001 99:99:99 +0000", ""])
def test_unreadable_dates_are_none_with_a_defect(value: str) -> None:
    defects: list[str] = []
    assert date_field(value, defects) is None
    assert defects


def test_message_ids_lose_their_brackets_and_keep_their_order() -> None:
    assert message_ids(" <b@x>\n\t<a@x> <b@x>") == ("b@x", "a@x")
    assert message_ids("bare-id@example.com") == ("bare-id@example.com",)
    assert message_ids("no id here") == ()


def test_dedup_key_is_the_message_id_when_there_is_one() -> None:
    parsed = parse_headers(message_bytes(message_id="<Abc.123@acme.com>"))
    assert parsed.message_id == "Abc.123@acme.com"
    assert parsed.dedup_key == "Abc.123@acme.com"


def test_dedup_key_without_message_id_is_stable_and_content_dependent() -> None:
    first = parse_headers(message_bytes(message_id=None, subject="Renewal"))
    again = parse_headers(message_bytes(message_id=None, subject="Renewal", body="another body"))
    other = parse_headers(message_bytes(message_id=None, subject="Other"))
    assert first.message_id is None
    assert first.dedup_key.startswith("sha256:")
    assert first.dedup_key == again.dedup_key
    assert first.dedup_key != other.dedup_key
    assert any("Message-ID" in defect for defect in first.defects)


@pytest.mark.parametrize(
    ("header", "marker"),
    [
        ("List-Id: <news.acme.com>", "List-Id: <news.acme.com>"),
        ("List-Unsubscribe: <mailto:u@acme.com>", "List-Unsubscribe: <mailto:u@acme.com>"),
        ("Precedence: bulk", "Precedence: bulk"),
        ("Precedence: LIST", "Precedence: list"),
        ("Precedence: junk", "Precedence: junk"),
    ],
)
def test_bulk_markers(header: str, marker: str) -> None:
    name, _, value = header.partition(": ")
    assert parse_headers(message_bytes(extra_headers=[(name, value)])).bulk == marker


@pytest.mark.parametrize(
    ("header", "marker"),
    [
        ("Auto-Submitted: auto-replied", "Auto-Submitted: auto-replied"),
        ("Auto-Submitted: auto-generated; owner-email=x@acme.com", "Auto-Submitted: auto-generated"),
        ("X-Autoreply: yes", "X-Autoreply: yes"),
        ("X-Autorespond: vacation", "X-Autorespond: vacation"),
        ("Precedence: auto_reply", "Precedence: auto_reply"),
    ],
)
def test_auto_reply_markers(header: str, marker: str) -> None:
    name, _, value = header.partition(": ")
    assert parse_headers(message_bytes(extra_headers=[(name, value)])).auto_reply == marker


@pytest.mark.parametrize("header", ["Auto-Submitted: no", "X-Autoreply: no", "Precedence: first-class"])
def test_headers_that_are_no_markers(header: str) -> None:
    name, _, value = header.partition(": ")
    parsed = parse_headers(message_bytes(extra_headers=[(name, value)]))
    assert parsed.auto_reply is None
    assert parsed.bulk is None


def test_reading_stops_at_the_blank_line() -> None:
    raw = message_bytes(body="From: intruder@evil.example\nTo: x@y.example\n")
    parsed = parse_headers(raw)
    assert parsed.headers_only
    assert parsed.sender == "jane@acme.com"
    assert header_block(raw).endswith(b"\r\n\r\n")
    assert b"intruder" not in header_block(raw)


def test_crlf_header_block_ends_at_the_crlf_blank_line() -> None:
    raw = b"From: a@acme.com\r\nSubject: s\r\n\r\nbody\r\n\r\nmore"
    assert header_block(raw) == b"From: a@acme.com\r\nSubject: s\r\n\r\n"


def test_a_huge_header_is_read() -> None:
    recipients = ", ".join(f"person{n}@acme.com" for n in range(5000))
    raw = f"From: a@acme.com\nTo: {recipients}\nSubject: {'x' * 200_000}\n\nbody".encode()
    parsed = parse_headers(raw)
    assert len(parsed.to) == 5000
    assert len(parsed.subject) == 200_000


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\n\n",
        b"\x00\xff\xfe garbage \x80\x81",
        b"From: a@acme.com",
        b" continuation first\nFrom: a@acme.com\n\n",
        b"From: a@acme.com\rTo: b@acme.com\r\r",
        b"From a@acme.com Mon Jan  1 00:00:00 2025\nFrom: a@acme.com\n\n",
        b": no name\nFrom: a@acme.com\n\n",
    ],
)
def test_odd_header_blocks_never_raise(raw: bytes) -> None:
    assert parse_headers(raw).dedup_key
    assert parse_message(raw).dedup_key


def _stdlib_fields(block: bytes) -> RawHeaders:
    from touchline.inbound.parse.message import _HEADER_PARSER

    return RawHeaders(_HEADER_PARSER.parsebytes(block).raw_items())


_FIELD_NAMES = st.one_of(
    st.sampled_from(["From", "TO", "cc", "Bcc", "Subject", "Date", "Message-ID", "References", "List-Id"]),
    st.text(
        st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"), min_size=1, max_size=12
    ),
)
_HEADER_LINE = st.tuples(
    _FIELD_NAMES,
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    st.lists(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_HEADER_LINE, max_size=8), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_the_fast_header_reader_agrees_with_the_stdlib_parser(
    fields: list[tuple[str, str, list[str]]], newline: str, blank_line: bool
) -> None:
    lines = []
    for name, value, continuations in fields:
        lines.append(f"{name}:{value}{newline}")
        lines.extend(f" {continuation}{newline}" for continuation in continuations)
    block = "".join(lines).encode() + (newline.encode() if blank_line else b"")
    fast = RawHeaders.from_block(block)
    assert fast is not None
    assert fast == _stdlib_fields(block)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_the_fast_header_reader_never_disagrees_on_arbitrary_bytes(raw: bytes) -> None:
    block = header_block(raw)
    fast = RawHeaders.from_block(block)
    if fast is not None:
        assert fast == _stdlib_fields(block)
    assert parse_headers(raw) == parse_headers(raw, stdlib_only=True)


def test_the_stdlib_parser_reads_what_the_fast_reader_leaves() -> None:
    raw = b"From sender Mon Jan  1 00:00:00 2025\nFrom: a@acme.com\nstray text\nTo: b@acme.com\n\n"
    assert RawHeaders.from_block(header_block(raw)) is None
    parsed = parse_headers(raw)
    assert parsed.sender == "a@acme.com"
    assert "MissingHeaderBodySeparatorDefect" in parsed.defects
    assert parsed == parse_headers(raw, stdlib_only=True)


def test_the_stdlib_parser_is_the_reference() -> None:
    raw = message_bytes(to=["a@acme.com", "b@acme.com"], extra_headers=[("List-Id", "<l.acme.com>")])
    assert parse_headers(raw) == parse_headers(raw, stdlib_only=True)
    assert BytesHeaderParser().parsebytes(raw)["List-Id"] == "<l.acme.com>"


def _raw(message_id: bytes, in_reply_to: bytes = b"", to: bytes = b"success@touchline.example") -> bytes:
    lines = [
        b"From: Jane <jane@acme.com>",
        b"To: " + to,
        b"Subject: Hello",
        b"Date: Mon, 03 Mar 2025 09:15:00 +0000",
        b"Message-ID: " + message_id,
    ]
    if in_reply_to:
        lines.append(b"In-Reply-To: " + in_reply_to)
    return b"\r\n".join(lines) + b"\r\n\r\nHello.\r\n"


@pytest.mark.parametrize(
    ("value", "parent"),
    [
        # The parent's author comes first in this older style; the id is the token after the date.
        (
            b'Message from Lee Kay <lee@other.example> of "Mon, 3 Mar 2025 09:00." <p-1@other.example>',
            "p-1@other.example",
        ),
        (
            b"message from lee@other.example <lee@other.example> of Mon, 3 Mar 2025 <p-1@other.example>",
            "p-1@other.example",
        ),
        (b'Your message of "Mon, 3 Mar 2025" <p-1@other.example>', "p-1@other.example"),
        (b'<p-1@other.example> (Lee Kay\'s message of "Mon, 3 Mar 2025")', "p-1@other.example"),
    ],
)
def test_in_reply_to_follows_the_id_never_the_authors_address(value: bytes, parent: str) -> None:
    for parse in (parse_headers, parse_message):
        assert parse(_raw(b"<r-1@acme.com>", value)).in_reply_to == (parent,)


def test_in_reply_to_holding_only_an_address_names_no_parent() -> None:
    raw = _raw(b"<r-1@acme.com>", b"Message from Lee Kay <lee@other.example> of Mon, 3 Mar 2025")
    assert parse_headers(raw).in_reply_to == ()
    # Named as a recipient, the address is no id either, whatever the words before it.
    raw = _raw(b"<r-1@acme.com>", b"<lee@other.example>", to=b"Lee <lee@other.example>")
    assert parse_headers(raw).in_reply_to == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"<abc @ gateway.example>", "abc@gateway.example"),
        (b"<abc.def@\r\n gateway.example>", "abc.def@gateway.example"),
        (b'<"/C=DE/ADMD=X400/O=ACME/" @ mhs.example>', '"/C=DE/ADMD=X400/O=ACME/"@mhs.example'),
    ],
)
def test_message_ids_with_whitespace_inside_the_brackets_are_read_without_it(
    value: bytes, expected: str
) -> None:
    for parse in (parse_headers, parse_message):
        parsed = parse(_raw(value, b"<p @ gateway.example>"))
        assert parsed.message_id == expected
        assert parsed.dedup_key == expected
        assert parsed.in_reply_to == ("p@gateway.example",)
    assert message_ids("<a@x> < b@x > <a@x>") == ("a@x", "b@x")


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        (b"<caf\xc3\xa9@acme.com>", "caf\u00e9@acme.com"),  # UTF-8: read as the text it is
        (b"<caf\xe9@acme.com>", "caf\\xe9@acme.com"),  # a Latin-1 byte: kept as \xNN
        (b"<a\\xe9@acme.com>", "a\\\\xe9@acme.com"),  # a backslash the sender wrote: doubled
        (b"<\xff\xfe@acme.com>", "\\xff\\xfe@acme.com"),
    ],
)
def test_8bit_message_ids_are_kept_losslessly_as_valid_text(written: bytes, stored: str) -> None:
    for parse in (parse_headers, parse_message):
        parsed = parse(_raw(written, written))
        assert (parsed.message_id, parsed.dedup_key, parsed.in_reply_to) == (stored, stored, (stored,))
        stored.encode("utf-8")  # no surrogate: a database and JSON take it
    recovered = (
        stored.encode("ascii", "backslashreplace").decode("unicode_escape").encode("latin-1", "replace")
    )
    if written.isascii() or b"\xc3" not in written:
        assert b"<" + recovered + b">" == written


@given(
    st.binary(min_size=1, max_size=12).filter(
        lambda b: b"<" not in b and b">" not in b and not any(c in b for c in b" \t\r\n")
    )
)
@settings(max_examples=200, deadline=None)
def test_different_id_bytes_never_read_as_one_id(left: bytes) -> None:
    ids = {
        parse_headers(_raw(b"<" + left + suffix + b"@x>")).message_id
        for suffix in (b"", b"\\", b"\xe9", b"\xc3\xa9")
    }
    assert len(ids) == 4
    assert all(message_id is not None and message_id.encode("utf-8") for message_id in ids)


def _header_block_by_whole_scans(raw: bytes) -> bytes:
    """The header block as found by scanning the whole message for each kind of blank line."""
    end = raw.find(b"\n\n")
    crlf_end = raw.find(b"\n\r\n", 0, end if end >= 0 else len(raw))
    if crlf_end >= 0:
        return raw[: crlf_end + 3]
    return raw if end < 0 else raw[: end + 2]


@settings(max_examples=1000, deadline=None)
@given(
    pieces=st.lists(st.sampled_from([b"a", b"\n", b"\r\n", b"\r"]), max_size=24),
    first_look=st.integers(min_value=1, max_value=16),
)
@example(pieces=[b"a", b"\n", b"\r\n", b"\n", b"a"], first_look=4)  # LF CR LF LF across the first look
def test_the_header_block_is_found_the_same_whatever_is_looked_at_first(
    pieces: list[bytes], first_look: int
) -> None:
    from touchline.inbound.parse import message

    raw = b"".join(pieces)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(message, "FIRST_LOOK", first_look)
        assert header_block(raw) == _header_block_by_whole_scans(raw)


def test_a_large_message_s_header_block_is_found_near_its_start() -> None:
    head = b"From: a@example.com\r\nSubject: big\r\n\r\n"
    for body in (b"x" * 5_000_000, b"line\r\n" * 1_000_000, b"y\n\n" * 100):
        assert header_block(head + body) == head
    lf_head = b"From: a@example.com\nSubject: big\n\n"
    assert header_block(lf_head + b"z\r\n\r\n" * 1000) == lf_head
