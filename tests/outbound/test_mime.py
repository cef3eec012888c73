"""The MIME message: touchline's own headers, RFC 2047 and 8058, and no header injection through any field."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from email_validator import validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from touchline.outbound.compose.mime import (
    _HEADER_BREAKERS,
    _POLICY,
    MAX_REFERENCES,
    MAX_SUBJECT_CHARS,
    InvalidMessageError,
    Mailbox,
    OutgoingEmail,
    Unsubscribe,
    _header,
    _plain_address,
    build_message,
    make_message_id,
    refuse_header_injection,
    unsubscribe_url_problem,
    validate_outgoing,
)
from touchline.outbound.compose.mime import _url_problem as mime_url_problem

WHEN = datetime(2026, 12, 6, 9, 30, tzinfo=timezone(timedelta(hours=1)))
EMAIL = OutgoingEmail(
    sender=Mailbox("sam@touchline.example", "Sam Lee"),
    to=(Mailbox("jane@acme.example", "Jane Doe"),),
    cc=(Mailbox("ops@acme.example"),),
    subject="Your renewal",
    text="Hi Jane,\nsee you soon.",
    html="<p>Hi Jane,</p><p>see you soon.</p>",
    date=WHEN,
)
LINE_BREAKS = [
    "\r",
    "\n",
    "\r\n",
    "\x00",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x1d",
    "\x1e",
    "\x85",
    "\u2028",
    "\u2029",
    "\x7f",
]


def parsed(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_message_has_touchlines_headers_and_both_parts() -> None:
    built = build_message(EMAIL, "touchline.example")
    message = parsed(built.raw)
    assert str(message["From"]) == "Sam Lee <sam@touchline.example>"
    assert str(message["To"]) == "Jane Doe <jane@acme.example>"
    assert str(message["Cc"]) == "ops@acme.example"
    assert message["Subject"] == "Your renewal"
    assert message["Date"].datetime == WHEN
    assert message["Message-ID"] == built.message_id
    assert re.fullmatch(r"<[0-9a-f]{32}@touchline\.example>", built.message_id)
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert text.get_content().replace("\r\n", "\n") == "Hi Jane,\nsee you soon.\n"
    assert html.get_content().replace("\r\n", "\n") == "<p>Hi Jane,</p><p>see you soon.</p>\n"
    assert built.recipients == ("jane@acme.example", "ops@acme.example")
    assert b"\r\n" in built.raw
    assert b"\n" not in built.raw.replace(b"\r\n", b"")
    assert "List-Unsubscribe" not in message
    assert "In-Reply-To" not in message
    assert built.raw.count(b"MIME-Version") == 1


def test_text_only_email_is_a_single_part() -> None:
    message = parsed(build_message(replace(EMAIL, html=None), "touchline.example").raw)
    assert message.get_content_type() == "text/plain"


def test_message_ids_are_new_each_time_unless_given() -> None:
    first = build_message(EMAIL, "touchline.example")
    second = build_message(EMAIL, "touchline.example")
    assert first.message_id != second.message_id
    again = build_message(EMAIL, "touchline.example", message_id=first.message_id)
    assert again.message_id == first.message_id
    assert make_message_id("Bücher.example", token="abc") == "<abc@xn--bcher-kva.example>"


def test_non_ascii_subject_and_names_are_encoded_words() -> None:
    email = replace(
        EMAIL, subject="Grüße zur Verlängerung ✓", sender=Mailbox("sam@touchline.example", 'Zoë, "CS" Team')
    )
    built = build_message(email, "touchline.example")
    assert built.raw.isascii()
    assert b"=?utf-8?" in built.raw
    message = parsed(built.raw)
    assert message["Subject"] == "Grüße zur Verlängerung ✓"
    assert message["From"].addresses[0].display_name == 'Zoë, "CS" Team'
    assert len(message["From"].addresses) == 1


def test_international_domains_become_punycode() -> None:
    built = build_message(replace(EMAIL, to=(Mailbox("kunde@bücher.example"),)), "touchline.example")
    assert built.recipients[0] == "kunde@xn--bcher-kva.example"


def test_answer_threads_with_in_reply_to_and_references() -> None:
    email = replace(EMAIL, in_reply_to="<parent@acme.example>", references=("<root@acme.example>",))
    message = parsed(build_message(email, "touchline.example").raw)
    assert message["In-Reply-To"] == "<parent@acme.example>"
    assert message["References"] == "<root@acme.example> <parent@acme.example>"


def test_long_reference_chains_keep_the_root_and_the_newest() -> None:
    chain = tuple(f"<m{index}@acme.example>" for index in range(MAX_REFERENCES + 20))
    message = parsed(build_message(replace(EMAIL, references=chain), "touchline.example").raw)
    kept = str(message["References"]).split()
    assert len(kept) == MAX_REFERENCES
    assert kept[0] == chain[0]
    assert kept[-1] == chain[-1]


def test_one_click_unsubscribe_headers() -> None:
    email = replace(
        EMAIL, unsubscribe=Unsubscribe("https://t.example/u/sig.abc?x=1", "unsubscribe@touchline.example")
    )
    message = parsed(build_message(email, "touchline.example").raw)
    assert message["List-Unsubscribe"] == (
        "<https://t.example/u/sig.abc?x=1>, <mailto:unsubscribe@touchline.example?subject=unsubscribe>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_long_unsubscribe_url_stays_a_url_on_one_line() -> None:
    # A signed token makes the URL longer than a folded line; it must not become an encoded word.
    url = "https://touchline.example/u/" + "Ab9-_." * 40
    raw = build_message(replace(EMAIL, unsubscribe=Unsubscribe(url)), "touchline.example").raw
    assert f"\r\nList-Unsubscribe: <{url}>\r\n".encode() in raw
    assert parsed(raw)["List-Unsubscribe"] == f"<{url}>"
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    with pytest.raises(InvalidMessageError, match="too long"):
        build_message(replace(EMAIL, unsubscribe=Unsubscribe(url + "x" * 800)), "touchline.example")


@pytest.mark.parametrize(
    "url",
    [
        "http://t.example/u/1",
        "https://t.example/u/1>, <https://evil.example",
        "javascript:alert(1)",
        "https:///x",
    ],
)
def test_unsubscribe_url_must_be_plain_https(url: str) -> None:
    with pytest.raises(InvalidMessageError, match="unsubscribe URL"):
        build_message(replace(EMAIL, unsubscribe=Unsubscribe(url)), "touchline.example")


@pytest.mark.parametrize("brk", LINE_BREAKS)
@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("subject", lambda email, brk: replace(email, subject=f"Hi{brk}Bcc: victim@evil.example")),
        (
            "From name",
            lambda email, brk: replace(email, sender=Mailbox("sam@touchline.example", f"Sam{brk}Bcc: x")),
        ),
        (
            "To address",
            lambda email, brk: replace(email, to=(Mailbox(f"jane@acme.example{brk}Bcc: x@evil.example"),)),
        ),
        ("Cc name", lambda email, brk: replace(email, cc=(Mailbox("ops@acme.example", f"Ops{brk}X: y"),))),
        ("In-Reply-To", lambda email, brk: replace(email, in_reply_to=f"<a@b>{brk}Bcc: x@evil.example")),
        ("References", lambda email, brk: replace(email, references=(f"<a@b>{brk}X: y",))),
        (
            "unsubscribe URL",
            lambda email, brk: replace(email, unsubscribe=Unsubscribe(f"https://t.example/u{brk}X: y")),
        ),
    ],
)
def test_header_injection_through_any_field_is_refused(field: str, change: object, brk: str) -> None:
    with pytest.raises(InvalidMessageError, match=field):
        build_message(change(EMAIL, brk), "touchline.example")  # type: ignore[operator]


@pytest.mark.parametrize("brk", LINE_BREAKS)
def test_header_injection_through_ids_and_domains_is_refused(brk: str) -> None:
    with pytest.raises(InvalidMessageError, match="Message-ID"):
        build_message(EMAIL, f"touchline.example{brk}Bcc: x")
    with pytest.raises(InvalidMessageError, match="Message-ID"):
        build_message(EMAIL, "touchline.example", message_id=f"<a@b>{brk}X: y")


@pytest.mark.parametrize(
    "address",
    [
        "jane@acme.example, victim@evil.example",
        "jane@acme.example,victim@evil.example",
        "Jane <jane@acme.example>",
        '"a,b"@acme.example',
        "jane(comment)@acme.example",
        "jäne@acme.example",
        "jane@",
        "jane@localhost",
        "",
    ],
)
def test_only_plain_single_addresses_are_accepted(address: str) -> None:
    with pytest.raises(InvalidMessageError, match="To address"):
        build_message(replace(EMAIL, to=(Mailbox(address),)), "touchline.example")


@pytest.mark.parametrize(
    "message_id", ["a@b", "<a b@c>", "<a@b@c>", "<@b>", "<a@>", "<a@b>, <c@d>", "<a@b><c@d>", "<ä@b>"]
)
def test_malformed_message_ids_are_refused(message_id: str) -> None:
    with pytest.raises(InvalidMessageError):
        build_message(replace(EMAIL, in_reply_to=message_id), "touchline.example")


def test_an_email_needs_a_recipient_and_a_dated_time_zone() -> None:
    with pytest.raises(InvalidMessageError, match="To recipient"):
        build_message(replace(EMAIL, to=()), "touchline.example")
    with pytest.raises(InvalidMessageError, match="time zone"):
        build_message(replace(EMAIL, date=datetime(2026, 12, 6, 9, 30)), "touchline.example")


def test_long_body_lines_are_encoded_within_smtp_limits() -> None:
    email = replace(EMAIL, text="word " * 2000, html="<p>" + "é" * 5000 + "</p>")
    raw = build_message(email, "touchline.example").raw
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    body = parsed(raw).get_body(("plain",))
    assert body is not None
    assert body.get_content().startswith("word word")


EXPECTED_HEADERS = {
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
}


def header_names(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    names = []
    for line in head.split(b"\r\n"):
        assert b"\r" not in line
        assert b"\n" not in line
        if line[:1] in {b" ", b"\t"}:
            continue  # a folded continuation of the header above
        name, colon, _ = line.partition(b":")
        assert colon, line
        names.append(name.decode("ascii").lower())
    return names


@settings(max_examples=300, deadline=None)
@given(
    subject=st.text(max_size=120),
    name=st.text(max_size=60),
    local=st.text(max_size=20),
    reference=st.text(max_size=30),
)
def test_any_text_in_any_field_never_yields_an_extra_header(
    subject: str, name: str, local: str, reference: str
) -> None:
    email = replace(
        EMAIL,
        subject=subject,
        sender=Mailbox("sam@touchline.example", name),
        to=(Mailbox(f"{local}@acme.example", name),),
        in_reply_to=f"<{reference}@acme.example>",
        unsubscribe=Unsubscribe(f"https://t.example/u/{reference}"),
    )
    try:
        built = build_message(email, "touchline.example")
    except InvalidMessageError:
        return
    names = header_names(built.raw)
    assert set(names) <= EXPECTED_HEADERS
    for single in ("from", "to", "subject", "message-id", "in-reply-to", "list-unsubscribe"):
        assert names.count(single) == 1
    message = parsed(built.raw)
    assert len(message["To"].addresses) == 1
    assert message["Subject"] == subject.strip() or " ".join(str(message["Subject"]).split()) == " ".join(
        subject.split()
    )


def test_message_is_built_the_same_at_any_offset() -> None:
    utc = build_message(replace(EMAIL, date=WHEN.astimezone(UTC)), "touchline.example")
    assert parsed(utc.raw)["Date"].datetime == WHEN


HOSTILE = st.sampled_from(
    [
        *LINE_BREAKS,
        "\t",
        " ",
        '"',
        "<",
        ">",
        ",",
        ";",
        ":",
        "@",
        "\\",
        "(",
        ")",
        "=?utf-8?q?x?=",
        "é",
        "\ud800",
    ]
)
TEXT = st.one_of(st.text(max_size=40), st.lists(st.one_of(HOSTILE, st.text(max_size=8))).map("".join))
ADDRESS = st.one_of(
    st.sampled_from(["jane@acme.example", "ops@xn--bcher-kva.example", "bob@bücher.example", "x@[1.2.3.4]"]),
    st.builds(lambda local, domain: f"{local}@{domain}", TEXT, st.sampled_from(["acme.example", "", "a..b"])),
    TEXT,
)
MAILBOX = st.builds(Mailbox, ADDRESS, TEXT)
MESSAGE_ID = st.one_of(
    st.builds(lambda left, right: f"<{left}@{right}>", TEXT, st.sampled_from(["acme.example", "a@b", ""])),
    TEXT,
)


@st.composite
def outgoing_emails(draw: st.DrawFn) -> tuple[OutgoingEmail, str, str | None]:
    """A usable email, Message-ID domain and given Message-ID, with up to three of them (or of the
    email's fields) replaced by random or hostile values, so that each rule is reached, not only the
    first one checked."""
    changes: dict[str, st.SearchStrategy[object]] = {
        "domain": st.one_of(st.sampled_from(["bücher.example", "", "-x.example"]), TEXT),
        "message_id": st.none() | MESSAGE_ID,
        "sender": MAILBOX,
        "to": st.lists(MAILBOX, max_size=3).map(tuple),
        "cc": st.lists(MAILBOX, max_size=2).map(tuple),
        "reply_to": st.none() | MAILBOX,
        "subject": st.one_of(TEXT, st.just("s" * (MAX_SUBJECT_CHARS + 1))),
        "text": TEXT,
        "html": st.none() | TEXT,
        "date": st.sampled_from([WHEN.replace(tzinfo=None), WHEN.astimezone(UTC)]),
        "in_reply_to": st.none() | MESSAGE_ID,
        "references": st.lists(MESSAGE_ID, max_size=3).map(tuple),
        "unsubscribe": st.none()
        | st.builds(
            Unsubscribe,
            st.one_of(
                st.builds("https://t.example/u/{}".format, TEXT),
                st.sampled_from(["http://t.example/u", "https://t.example/" + "u" * 990]),
            ),
            st.none() | ADDRESS,
        ),
    }
    fields = draw(st.lists(st.sampled_from(sorted(changes)), max_size=3, unique=True))
    drawn = {field: draw(changes[field]) for field in fields}
    domain = drawn.pop("domain", "touchline.example")
    message_id = drawn.pop("message_id", None)
    usable = replace(
        EMAIL,
        reply_to=Mailbox("help@touchline.example", "Help"),
        in_reply_to="<parent@acme.example>",
        unsubscribe=Unsubscribe("https://t.example/u/1", "u@t.example"),
    )
    assert isinstance(domain, str)
    assert message_id is None or isinstance(message_id, str)
    return replace(usable, **drawn), domain, message_id


def _outcome(check: Callable[[], str]) -> tuple[str, str]:
    try:
        return "ok", check()
    except InvalidMessageError as error:
        return "refused", str(error)


@settings(max_examples=1000, deadline=None)
@given(case=outgoing_emails())
@example(case=(replace(EMAIL, text="\ud800"), "touchline.example", None))
@example(case=(replace(EMAIL, subject="a\udfff"), "touchline.example", None))
@example(case=(replace(EMAIL, sender=Mailbox("sam@touchline.example", "\ud800")), "t.example", None))
@example(case=(replace(EMAIL, to=(Mailbox("jane\ud800@acme.example"),)), "t.example", None))
def test_validate_outgoing_refuses_exactly_what_build_message_refuses(
    case: tuple[OutgoingEmail, str, str | None],
) -> None:
    email, domain, message_id = case
    validated = _outcome(lambda: validate_outgoing(email, domain, message_id))
    built = _outcome(lambda: build_message(email, domain, message_id=message_id).message_id)
    assert validated[0] == built[0]
    if validated[0] == "refused" or message_id:
        assert validated == built  # the same message, or the same given Message-ID
    else:  # a new random id each time, at the same domain
        assert validated[1].rpartition("@")[2] == built[1].rpartition("@")[2]


def test_validate_outgoing_gives_the_message_id_build_message_uses() -> None:
    assert validate_outgoing(EMAIL, "touchline.example", "<given@touchline.example>") == (
        "<given@touchline.example>"
    )
    made = validate_outgoing(EMAIL, "Touchline.Example")
    assert re.fullmatch(r"<[0-9a-f]{32}@touchline\.example>", made)
    with pytest.raises(InvalidMessageError, match="the subject may not contain a line break"):
        validate_outgoing(replace(EMAIL, subject="Hi\r\nBcc: x@evil.example"), "touchline.example")
    with pytest.raises(InvalidMessageError, match="unsubscribe URL must be a plain https URL"):
        validate_outgoing(replace(EMAIL, unsubscribe=Unsubscribe("http://t.example/u")), "touchline.example")


@pytest.mark.parametrize(
    ("url", "taken"),
    [
        ("https://touchline.example/u/t", True),
        ("http://127.0.0.1:8000/u/t", True),
        ("http://[::1]:8000/u/t", True),
        ("http://localhost/u/t", True),
        ("http://touchline.example/u/t", False),
        ("http://127.0.0.1.evil.example/u/t", False),
        ("http://localhost.evil.example/u/t", False),
        ("ftp://127.0.0.1/u/t", False),
    ],
)
def test_one_click_unsubscribe_wants_https_or_a_loopback_address(url: str, taken: bool) -> None:
    assert (unsubscribe_url_problem(url) is None) is taken


def test_header_injection_is_refused_for_every_line_breaking_or_control_character() -> None:
    """Every code point: refused exactly when `str.splitlines` ends a line at it, or it is a control
    character other than tab."""
    for code_point in range(sys.maxunicode + 1):
        ch = chr(code_point)
        breaking = len(f"a{ch}b".splitlines()) > 1 or (code_point < 32 and ch != "\t") or code_point == 127
        if breaking:
            with pytest.raises(InvalidMessageError, match=re.escape(repr(ch))):
                refuse_header_injection("the field", f"x{ch}y")
        else:
            assert refuse_header_injection("the field", f"x{ch}y") == f"x{ch}y"


PHRASE_CHARS = st.sampled_from([*"abcXYZ019 .,:;<>\"\\()@=?!#'-_é\t", "=?utf-8?q?x?="])
HEADER_TEXT = st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=90),
    st.lists(PHRASE_CHARS, max_size=40).map("".join),
    st.text(max_size=30).filter(lambda text: not _HEADER_BREAKERS.search(text)),
)


ID_PART = st.text(st.sampled_from("abcXYZ019!#$%&'*+-/=?^_`{|}~."), min_size=1, max_size=40)
CHECKED_ID = st.builds("<{}@{}>".format, ID_PART, ID_PART.filter(lambda part: "@" not in part))


@settings(max_examples=500, deadline=None)
@given(
    name_and_value=st.one_of(
        st.tuples(st.sampled_from(["Subject", "X-Other"]), HEADER_TEXT),
        st.tuples(st.just("List-Unsubscribe"), st.text(st.characters(min_codepoint=32, max_codepoint=126))),
        # What the checks let into these: message ids, and dates as format_datetime writes them.
        st.tuples(st.sampled_from(["Message-ID", "In-Reply-To"]), CHECKED_ID),
        st.tuples(st.just("References"), st.lists(CHECKED_ID, min_size=1, max_size=5).map(" ".join)),
        st.tuples(
            st.just("Date"),
            st.datetimes(
                min_value=datetime(1970, 1, 1),
                timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7))]),
            ).map(format_datetime),
        ),
    ),
)
def test_a_header_is_written_as_the_standard_library_writes_it(name_and_value: tuple[str, str]) -> None:
    name, value = name_and_value
    assert _header(name, value) == _POLICY.fold_binary(name, _POLICY.header_factory(name, value))


@settings(max_examples=500, deadline=None)
@given(
    name=st.sampled_from(["From", "To", "Cc", "Reply-To"]),
    addresses=st.lists(
        st.builds(
            lambda display, local, domain: Address(display_name=display, username=local, domain=domain),
            HEADER_TEXT.filter(lambda text: not _HEADER_BREAKERS.search(text)),
            st.sampled_from(["jane", "j.doe", "a+b", "x" * 60]),
            st.sampled_from(["acme.example", "xn--bcher-kva.example"]),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_an_address_header_is_written_as_the_standard_library_writes_it(
    name: str, addresses: list[Address]
) -> None:
    value = addresses[0] if len(addresses) == 1 else tuple(addresses)
    assert _header(name, value) == _POLICY.fold_binary(name, _POLICY.header_factory(name, value))


def test_the_boundary_is_in_neither_body() -> None:
    taken = "--" + "=" * 15
    built = build_message(replace(EMAIL, text=taken * 50, html=f"<pre>{taken}</pre>"), "touchline.example")
    message = parsed(built.raw)
    boundary = message.get_boundary()
    assert boundary
    assert boundary not in taken * 50
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert message.get_body(("plain",)).get_content().rstrip("\r\n") == taken * 50  # type: ignore[union-attr]


def test_an_address_checked_before_is_judged_the_same_in_any_field() -> None:
    """Address checks are remembered: the second field with the same address gets its own name in
    the refusal, and a good address stays good (written the same) wherever it appears."""
    for field, change in (
        ("From", {"sender": Mailbox("no-at-sign.example")}),
        ("To", {"to": (Mailbox("no-at-sign.example"),)}),
        ("Reply-To", {"reply_to": Mailbox(" no-at-sign.example ")}),
    ):
        with pytest.raises(
            InvalidMessageError, match=f"^{field} address .*no-at-sign.example.* is not usable"
        ):
            validate_outgoing(replace(EMAIL, **change), "touchline.example")  # type: ignore[arg-type]
    built = build_message(replace(EMAIL, to=(Mailbox("Jane@Bücher.example"),), cc=()), "touchline.example")
    again = build_message(replace(EMAIL, cc=(Mailbox("Jane@Bücher.example"),)), "touchline.example")
    assert built.recipients == ("Jane@xn--bcher-kva.example",)
    assert "Jane@xn--bcher-kva.example" in again.recipients


_LABEL = st.from_regex(r"[a-z0-9]{1,20}(-[a-z0-9]{1,10}){0,2}", fullmatch=True)
_PLAIN = st.builds(
    "{}@{}.{}".format,
    st.from_regex(r"[a-z0-9_+-]{1,30}(\.[a-z0-9_+-]{1,10}){0,2}", fullmatch=True),
    st.lists(_LABEL, min_size=1, max_size=3).map(".".join),
    st.from_regex(r"[a-z]{2,10}", fullmatch=True),
)


@given(st.one_of(_PLAIN, st.text(alphabet="az09_+-.@A\u00e9-", max_size=40)))
@example("a--b@x--y.example")
@example("a@b.c1")
@example(f"{'a' * 65}@acme.example")
def test_the_plain_address_shortcut_takes_only_what_email_validator_takes_as_written(address: str) -> None:
    """Plain addresses skip email-validator (a bulk send checks thousands): each one it lets
    through must be one email-validator accepts and writes unchanged."""
    if not _plain_address(address):
        return
    checked = validate_email(
        address, check_deliverability=False, allow_smtputf8=False, globally_deliverable=False
    )
    assert checked.ascii_email == address


def test_the_usual_normalised_address_takes_the_plain_shortcut() -> None:
    assert _plain_address("pat.lee+news@mail.customer-1.example")
    assert not _plain_address("Pat@customer.example")  # not normalised: email-validator judges it


_URL_BASES = (
    "https://touchline.example/u/",
    "https://touchline.example/",
    "https://touchline.example",
    "https://",
    "https:///",
    "https://touchline.example?next=/",
    "http://127.0.0.1:8000/u/",
    "http://localhost",
    "http://touchline.example/u/",
    "https://tüchline.example/u/",
    "https://touch line.example/u/",
    "ftp://127.0.0.1/u/",
)


@given(st.sampled_from(_URL_BASES), st.text(alphabet="aZ09._~-/?#@:<> %ü", max_size=12))
def test_a_links_token_is_checked_as_the_whole_link_would_be(base: str, tail: str) -> None:
    """The remembered check of a link's base and the characters of its token give the answer that
    checking the whole link gives, whatever the base and the tail."""
    url = base + tail
    # Asked twice: the first answer may come from the whole check and the second from the remembered one.
    assert unsubscribe_url_problem(url) == unsubscribe_url_problem(url) == mime_url_problem(url)
