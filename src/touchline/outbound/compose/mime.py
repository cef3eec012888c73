"""The RFC 5322 message touchline sends: built here, with the standard library's `email` package, so
that every header is touchline's own and every value in it has been checked.

Header injection is refused, not repaired: a CR, LF, NUL or any other character that ends a line
(as `str.splitlines` counts them) or is a control character, in any field, raises
InvalidMessageError naming the field. Addresses must be plain `local@domain` (email-validator's
syntax, no quoted local parts, no comments), so one field can never name a second recipient.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import Policy
from email.utils import format_datetime
from typing import Final
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email

from touchline.kit.addresses import InvalidAddressError, normalise_address
from touchline.kit.domains import InvalidDomainError, normalise_domain
from touchline.kit.errors import InvalidInputError

MAX_NAME_CHARS: Final = 200
MAX_SUBJECT_CHARS: Final = 998
MAX_REFERENCES: Final = 50
_MESSAGE_ID_CHARS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~.@"
)
_URL_FORBIDDEN: Final = frozenset("<>\"' \\")


_MAX_LINE: Final = 998  # RFC 5322 2.1.1, CRLF excluded


class _UnfoldedHeader(UnstructuredHeader, BaseHeader):
    """A header whose value is one long ASCII word (a URL), written on one line. The standard library
    turns a word longer than 78 characters into an RFC 2047 encoded word, which no mail client reads
    as the one-click unsubscribe URL; RFC 5322 allows lines of up to 998 characters."""

    def fold(self, *, policy: Policy) -> str:
        return f"{self.name}: {self}{policy.linesep}"


class _CachedHeaderRegistry(HeaderRegistry):
    """The standard registry makes a new class for every header of every message (`type(...)` in
    `__getitem__`), a fifth of the time of building one; the class for a name is the same each time."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def map_to_type(self, name: str, cls: type[BaseHeader]) -> None:
        super().map_to_type(name, cls)
        self._classes.clear()

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._classes.get(key)
        if made is None:
            made = self._classes[key] = super().__getitem__(name)
        return made


_HEADERS = _CachedHeaderRegistry()
_HEADERS.map_to_type("list-unsubscribe", _UnfoldedHeader)
_POLICY: Final = policy.SMTP.clone(header_factory=_HEADERS)


class InvalidMessageError(InvalidInputError):
    """A field that cannot go into an email as given; the message names the field."""


@dataclass(frozen=True, slots=True)
class Mailbox:
    """An address with an optional display name, as in `Jane Doe <jane@acme.com>`."""

    address: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """RFC 8058 one-click unsubscribe: `url` receives a POST (and is what List-Unsubscribe names)."""

    url: str
    mailto: str | None = None


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    sender: Mailbox
    to: tuple[Mailbox, ...]
    subject: str
    text: str
    date: datetime
    html: str | None = None
    cc: tuple[Mailbox, ...] = ()
    reply_to: Mailbox | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    unsubscribe: Unsubscribe | None = None


@dataclass(frozen=True, slots=True)
class BuiltMessage:
    message_id: str
    raw: bytes
    recipients: tuple[str, ...]
    """Every To and Cc address, for the envelope."""


_HEADER_BREAKERS: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
"""Every character that ends a line as `str.splitlines` counts them (CR, LF, VT, FF, the file, group
and record separators, NEL, the line and paragraph separators), and every other control character
but tab. One regular expression, so that checking a long value does not cost a call per character."""


def refuse_header_injection(field: str, value: str) -> str:
    """`value` unchanged, or InvalidMessageError when it could end a header line or hides a control
    character."""
    found = _HEADER_BREAKERS.search(value)
    if found is not None:
        raise InvalidMessageError(
            f"{field} may not contain a line break or control character ({found.group()!r})"
        )
    return value


def _refuse_lone_surrogates(field: str, value: str) -> str:
    """`value` unchanged, or InvalidMessageError when it is not Unicode text that can be written as
    UTF-8 (a lone surrogate, as a JSON "\\ud800" escape can make)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidMessageError(
            f"{field} is not valid text (it holds a lone surrogate, {value[error.start]!r})"
        ) from None
    return value


def make_message_id(domain: str, token: str | None = None) -> str:
    """`<random@domain>`: 128 random bits, so ids never collide or reveal anything."""
    host = _message_id_host(domain)
    if token is None:
        # Hex digits are valid on the left of any id whose right is `host`, as checked.
        return f"<{secrets.token_hex(16)}@{host}>"
    return check_message_id("Message-ID", f"<{token}@{host}>")


@functools.lru_cache(maxsize=256)
def _message_id_host(domain: str) -> str:
    """The right of the Message-IDs made at `domain`, checked as part of one; remembered (a bulk
    send makes thousands at its senders' few domains)."""
    try:
        host = normalise_domain(refuse_header_injection("the Message-ID domain", domain))
    except InvalidDomainError as error:
        raise InvalidMessageError(f"the Message-ID domain is not a domain: {error}") from None
    check_message_id("Message-ID", f"<{'0' * 32}@{host}>")
    return host


def check_message_id(field: str, value: str) -> str:
    """A message id as `<left@right>` in printable ASCII without spaces or brackets inside."""
    refuse_header_injection(field, value)
    inner = value[1:-1] if value.startswith("<") and value.endswith(">") else ""
    left, at, right = inner.partition("@")
    if not (left and at and right) or not _MESSAGE_ID_CHARS.issuperset(inner) or "@" in right:
        raise InvalidMessageError(f"{field} {value!r} is not a message id of the form <left@right>")
    return value


@functools.lru_cache(maxsize=256)
def _remembered_address(field: str, mailbox: Mailbox) -> Address:
    """`_address` of a mailbox that repeats from email to email (a bulk send's From and Reply-To):
    an Address is immutable, so the checked one is shared."""
    return _address(field, mailbox)


def _address(field: str, mailbox: Mailbox) -> Address:
    refuse_header_injection(f"{field} address", mailbox.address)
    name = _refuse_lone_surrogates(f"{field} name", refuse_header_injection(f"{field} name", mailbox.name))
    name = name.strip()
    if len(name) > MAX_NAME_CHARS:
        raise InvalidMessageError(f"{field} name is longer than {MAX_NAME_CHARS} characters")
    checked = _address_spec(mailbox.address)
    if isinstance(checked, _Unusable):
        raise InvalidMessageError(f"{field} address {mailbox.address!r} is not usable: {checked.reason}")
    local, _, domain = checked.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


@dataclass(frozen=True, slots=True)
class _Unusable:
    reason: str


_PLAIN_ADDRESS: Final = re.compile(
    r"[a-z0-9_+-]{1,64}(?:\.[a-z0-9_+-]{1,63}){0,31}@(?:[a-z0-9]{1,63}(?:-[a-z0-9]{1,62}){0,31}\.){1,30}[a-z]{2,63}"
)
"""Lower-case ASCII addresses of the plainest form (dot-atoms of letters, digits, `_`, `+`, `-`; a
domain of letter-or-digit labels joined by single hyphens, ending in a letters-only top-level
label): email-validator accepts every one of them as written, so they need not be run through it.
tests/outbound/test_mime.py checks that against email-validator itself."""


def _plain_address(address: str) -> bool:
    if len(address) > 254 or not _PLAIN_ADDRESS.fullmatch(address):
        return False
    local, _, domain = address.rpartition("@")
    return len(local) <= 64 and len(domain) <= 253 and all(len(label) <= 63 for label in domain.split("."))


@functools.lru_cache(maxsize=4096)
def _address_spec(address: str) -> str | _Unusable:
    """The address as it is written in a header (ASCII, the domain in punycode), or why it cannot be.

    Remembered: checking an address is most of the time of checking an email, and a bulk send has
    one sender (and often one Reply-To and unsubscribe mailto) for thousands of emails. A plain
    address (`_PLAIN_ADDRESS`), as every normalised address of a bulk send's endusers usually is,
    is checked by the project's own rules alone (remembered by normalise_address)."""
    if _plain_address(address):
        try:
            if normalise_address(address) == address:
                return address
        except InvalidAddressError as error:
            return _Unusable(str(error))
    try:
        # Reserved names (.test, .invalid) are allowed: they are for test and internal mail servers.
        checked = validate_email(
            address.strip(),
            check_deliverability=False,
            allow_smtputf8=False,
            globally_deliverable=False,
        )
        normalise_address(checked.ascii_email or checked.normalized)  # the project's own rules too
    except (EmailNotValidError, InvalidAddressError) as error:
        return _Unusable(str(error))
    return str(checked.ascii_email or checked.normalized)


def _on_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_URL_TAIL: Final = re.compile(r"[A-Za-z0-9._~-]*")
"""Characters that, appended after a URL's last `/`, change neither its scheme nor its host and
add nothing `unsubscribe_url_problem` refuses (a signed token's)."""


def unsubscribe_url_problem(url: str) -> str | None:
    """Why `url` cannot be a one-click unsubscribe target (None when it can). RFC 8058 wants https;
    plain http is taken only on a loopback host (touchline tried on one machine, such as its demo),
    where no receiver elsewhere could follow the link anyway.

    A bulk send's links differ only in their token after one base (`https://host/u/`): the base is
    checked once (remembered), and each link's token by its characters alone, which give the same
    answer as checking the whole link."""
    base, slash, tail = url.rpartition("/")
    if slash and _URL_TAIL.fullmatch(tail) and _usable_base(base + slash):
        return None
    return _url_problem(url)


@functools.lru_cache(maxsize=64)
def _usable_base(base: str) -> bool:
    """Whether `base` (ending in `/`) names a host and is a usable unsubscribe URL itself."""
    return bool(urlsplit(base).netloc) and _url_problem(base) is None


def _url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    secure = parts.scheme == "https" or (parts.scheme == "http" and _on_loopback(parts.hostname))
    if not secure or not parts.netloc or not url.isascii() or not _URL_FORBIDDEN.isdisjoint(url):
        return (
            "the unsubscribe URL must be a plain https URL (RFC 8058; http only on this machine's "
            f"loopback address), and it is {url!r}"
        )
    return None


def _unsubscribe_headers(unsubscribe: Unsubscribe) -> str:
    url = refuse_header_injection("the unsubscribe URL", unsubscribe.url)
    problem = unsubscribe_url_problem(url)
    if problem is not None:
        raise InvalidMessageError(problem)
    targets = [f"<{url}>"]
    if unsubscribe.mailto is not None:
        mailto = _remembered_address("the unsubscribe mailto", Mailbox(unsubscribe.mailto))
        targets.append(f"<mailto:{mailto.addr_spec}?subject=unsubscribe>")
    header = ", ".join(targets)
    if len("List-Unsubscribe: ") + len(header) > _MAX_LINE:
        raise InvalidMessageError("the unsubscribe URL is too long for one header line")
    return header


def _references(email: OutgoingEmail) -> tuple[str | None, tuple[str, ...]]:
    in_reply_to = check_message_id("In-Reply-To", email.in_reply_to) if email.in_reply_to else None
    references = [check_message_id("References", reference) for reference in email.references]
    if in_reply_to and in_reply_to not in references:
        references.append(in_reply_to)  # RFC 5322 3.6.4: the parent's id ends References
    if len(references) > MAX_REFERENCES:
        references = references[:1] + references[-(MAX_REFERENCES - 1) :]  # keep the root and the newest
    return in_reply_to, tuple(references)


@dataclass(frozen=True, slots=True)
class _Checked:
    """Every header value of an email, checked: what `build_message` writes, nothing left to refuse."""

    message_id: str
    sender: Address
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: Address | None
    subject: str
    in_reply_to: str | None
    references: tuple[str, ...]
    unsubscribe: str | None


def _checked(email: OutgoingEmail, message_id_domain: str, message_id: str | None) -> _Checked:
    """The one place for the rules: raises InvalidMessageError naming the first field that breaks one."""
    if not email.to:
        raise InvalidMessageError("an email needs at least one To recipient")
    if email.date.tzinfo is None:
        raise InvalidMessageError("the Date needs a time zone")
    subject = _refuse_lone_surrogates("the subject", refuse_header_injection("the subject", email.subject))
    if len(subject) > MAX_SUBJECT_CHARS:
        raise InvalidMessageError(f"the subject is longer than {MAX_SUBJECT_CHARS} characters")
    _refuse_lone_surrogates("the text body", email.text)
    if email.html is not None:
        _refuse_lone_surrogates("the HTML body", email.html)
    identifier = (
        check_message_id("Message-ID", message_id) if message_id else make_message_id(message_id_domain)
    )
    sender = _remembered_address("From", email.sender)
    to = _addresses("To", email.to)
    cc = _addresses("Cc", email.cc)
    in_reply_to, references = _references(email)
    reply_to = _remembered_address("Reply-To", email.reply_to) if email.reply_to is not None else None
    unsubscribe = _unsubscribe_headers(email.unsubscribe) if email.unsubscribe is not None else None
    return _Checked(identifier, sender, to, cc, reply_to, subject, in_reply_to, references, unsubscribe)


def validate_outgoing(email: OutgoingEmail, domain: str, message_id: str | None = None) -> str:
    """The Message-ID `build_message(email, domain, message_id=message_id)` would use, or the
    InvalidMessageError it would raise: the same checks without writing the message, for checking an
    email when it is queued and building it only when it leaves."""
    return _checked(email, domain, message_id).message_id


def build_message(
    email: OutgoingEmail, message_id_domain: str, *, message_id: str | None = None
) -> BuiltMessage:
    """The message as bytes with CRLF line ends, ready for SMTP or a provider's raw-send API.

    `message_id` is for a resend of the same email; otherwise a new one is made at
    `message_id_domain` (the sender's domain, so replies thread in the recipient's client)."""
    checked = _checked(email, message_id_domain, message_id)
    headers = [_header("From", checked.sender), _header("To", checked.to)]
    if checked.cc:
        headers.append(_header("Cc", checked.cc))
    if checked.reply_to is not None:
        headers.append(_header("Reply-To", checked.reply_to))
    headers.append(_header("Subject", checked.subject))
    headers.append(_header("Date", format_datetime(email.date)))
    headers.append(_header("Message-ID", checked.message_id))
    if checked.in_reply_to:
        headers.append(_header("In-Reply-To", checked.in_reply_to))
    if checked.references:
        headers.append(_header("References", " ".join(checked.references)))
    if checked.unsubscribe is not None:
        headers.append(_header("List-Unsubscribe", checked.unsubscribe))
        headers.append(_header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    # The content (MIME-Version, Content-Type, the parts) is the standard library's, written on its
    # own and put after touchline's headers: the generator writes a message's headers, then its body,
    # so this is the message it would write with all the headers on one EmailMessage.
    content = EmailMessage(policy=_POLICY)
    content.set_content(email.text)
    if email.html is not None:
        content.make_alternative(boundary=_boundary(email.text, email.html))
        content.add_alternative(email.html, subtype="html")
        for part in content.iter_parts():
            del part["MIME-Version"]  # the standard library repeats it in each part; it belongs on top
    recipients = tuple(dict.fromkeys(address.addr_spec for address in (*checked.to, *checked.cc)))
    raw = b"".join(headers) + content.as_bytes()
    return BuiltMessage(message_id=checked.message_id, raw=raw, recipients=recipients)


def _boundary(*bodies: str) -> str:
    """A multipart boundary in the standard library's form that no body contains, chosen here: the
    library's own choice compiles a new regular expression for every message."""
    while True:
        boundary = f"{'=' * 15}{secrets.randbits(63):019d}=="
        if not any(boundary in body for body in bodies):
            return boundary


_PLAIN_HEADER_VALUE: Final = re.compile(r"[!-~]+(?: [!-~]+)*")
"""Printable ASCII words with single spaces between them: written as they are."""
_ATOM_PHRASE: Final = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
"""A display name that needs neither quotes nor encoding (RFC 5322 atoms)."""
_HEADER_LINE: Final = 78  # RFC 5322 2.1.1: lines SHOULD be no longer; the policy folds at it


def _header(name: str, value: str | Address | tuple[Address, ...]) -> bytes:
    """One header line exactly as the standard library writes it under the message policy.

    Parsing a value into a header object and folding it again is most of the time of building a
    message, and for a short value of plain ASCII words (and plain names) it gives the value back
    unchanged: such a line is written here. Anything else (non-ASCII text, quoted or encoded names,
    `=?` that could read as an encoded word, a line that needs folding) goes through the library."""
    if isinstance(value, str):
        text = value
    else:
        addresses = (value,) if isinstance(value, Address) else value
        if all(
            not address.display_name or _ATOM_PHRASE.fullmatch(address.display_name) for address in addresses
        ):
            text = ", ".join(str(address) for address in addresses)
        else:
            text = ""
    if (
        text
        and len(name) + 2 + len(text) <= _HEADER_LINE
        and "=?" not in text
        and _PLAIN_HEADER_VALUE.fullmatch(text)
    ):
        return f"{name}: {text}\r\n".encode("ascii")
    return _POLICY.fold_binary(name, _POLICY.header_factory(name, value))


def _addresses(field: str, mailboxes: Sequence[Mailbox]) -> tuple[Address, ...]:
    return tuple(_address(field, mailbox) for mailbox in mailboxes)
