"""Raw RFC 5322 bytes to `ParsedEmail`, never raising: what cannot be read becomes a defect."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from email.message import Message
from email.parser import BytesHeaderParser

from touchline.inbound.parse.headers import (
    RawHeaders,
    address_field,
    auto_reply_marker,
    bulk_marker,
    date_field,
    decode_bytes,
    decode_words,
    fallback_key,
    in_reply_to_ids,
    message_ids,
    readable,
    text_field,
)
from touchline.inbound.parse.mime import MAX_DEPTH, RawHeaderPolicy, message_tree
from touchline.inbound.parse.model import Attachment, ParsedEmail

_HEADER_PARSER = BytesHeaderParser(policy=RawHeaderPolicy())
_MAX_MIME_DEPTH = MAX_DEPTH


FIRST_LOOK = 16 * 1024
"""How far the blank line is looked for first. Header blocks are almost always shorter, and a message
of CRLF lines holds no LF LF: looking for one through the whole message scanned every attachment (a
third of a second of the storing thread in a sync of 20,000 messages)."""


def header_block(raw: bytes) -> bytes:
    """The bytes up to and including the blank line that ends the header block."""
    if len(raw) > FIRST_LOOK:
        end = _past_blank_line(raw, FIRST_LOOK)
        if end >= 0:
            return raw[:end]
    end = _past_blank_line(raw, len(raw))
    return raw if end < 0 else raw[:end]


def _past_blank_line(raw: bytes, limit: int) -> int:
    """Just past the first blank line that `raw[:limit]` shows whole, or -1.

    A CRLF blank line counts only before the first LF LF (and, when there is none, only where it
    cannot be the start of one that runs past `limit`), so the answer does not depend on `limit`.
    """
    end = raw.find(b"\n\n", 0, limit)
    crlf_end = raw.find(b"\n\r\n", 0, end if end >= 0 else limit - 1)
    if crlf_end >= 0:
        return crlf_end + 3
    return -1 if end < 0 else end + 2


def parse_headers(raw: bytes, *, stdlib_only: bool = False) -> ParsedEmail:
    """Read the header block only (reading stops at the first blank line); never raises.

    A well-formed block is read by `RawHeaders.from_block`, anything else by the stdlib parser; both
    give the same fields. `stdlib_only` always uses the stdlib parser, for comparison.
    """
    try:
        block = header_block(bytes(raw))
        fields = None if stdlib_only else RawHeaders.from_block(block)
        if fields is not None:
            return _from_headers(fields, [], headers_only=True)
        message = _HEADER_PARSER.parsebytes(block)
        defects = [_describe_defect(defect) for defect in message.defects]
        return _from_headers(RawHeaders(message.raw_items()), defects, headers_only=True)
    except Exception as error:  # the parser's contract is to never raise on any input
        return _unreadable(raw, error)


def parse_message(raw: bytes, *, stdlib_only: bool = False) -> ParsedEmail:
    """Read a whole message: headers, the text and HTML bodies, attachment metadata; never raises.

    Plainly well-formed mail is split by byte searches (`mime.message_tree`), anything else by the
    stdlib parser; both build the same parts. `stdlib_only` always uses the stdlib parser, for
    comparison.
    """
    try:
        message = message_tree(bytes(raw), stdlib_only=stdlib_only)
    except Exception as error:  # fall back to the header block alone
        headers = parse_headers(raw)
        return replace(
            headers, headers_only=False, defects=(*headers.defects, f"message: unreadable ({error!r})")
        )
    try:
        parsed = _from_headers(RawHeaders(message.raw_items()), [], headers_only=False)
    except Exception as error:  # a header the readers cannot cope with
        return _unreadable(raw, error)
    body = _Body()
    try:
        body.walk(message, 0)
    except Exception as error:  # keep what the walk collected before it failed
        body.defects.append(f"body: unreadable MIME structure ({error!r})")
    # Read last: decoding the body adds defects (bad base64, for one) to the parts it decodes.
    structure = [_describe_defect(defect) for defect in message.defects]
    return replace(
        parsed,
        headers_only=False,
        text_body="\n".join(body.texts) if body.texts else None,
        html_body=body.html,
        attachments=tuple(body.attachments),
        defects=(*structure, *parsed.defects, *body.defects),
    )


def _from_headers(raw: RawHeaders, defects: list[str], *, headers_only: bool) -> ParsedEmail:
    defects.extend(raw.defects)
    addresses = {
        name: address_field(values, _LABELS[name], defects) for name, values in raw.addresses.items()
    }
    single = raw.single
    raw_date = single.get("date")
    date = date_field(raw_date, defects) if raw_date is not None else None
    if raw_date is None:
        defects.append("Date: missing")
    raw_subject = single.get("subject")
    subject = text_field(raw_subject, "Subject", defects) if raw_subject is not None else ""
    own_ids = message_ids(single.get("message-id", ""))
    message_id = own_ids[0] if own_ids else None
    senders = addresses.get("from", ())
    recipients = addresses.get("to", ())
    if not senders:
        defects.append("From: missing or unreadable")
    if message_id is None:
        defects.append("Message-ID: missing or unreadable; dedup key computed from Date, From, Subject, To")
        dedup_key = fallback_key(date, raw_date, senders, subject, recipients)
    else:
        dedup_key = message_id
    return ParsedEmail(
        dedup_key=dedup_key,
        message_id=message_id,
        from_=senders,
        to=recipients,
        cc=addresses.get("cc", ()),
        bcc=addresses.get("bcc", ()),
        reply_to=addresses.get("reply-to", ()),
        date=date,
        subject=subject,
        in_reply_to=in_reply_to_ids(
            single.get("in-reply-to", ""),
            (
                address.address
                for name in ("from", "to", "cc", "reply-to")
                for address in addresses.get(name, ())
            ),
        ),
        references=message_ids(single.get("references", "")),
        bulk=bulk_marker(single) if not _MARKER_FIELDS.isdisjoint(single) else None,
        auto_reply=auto_reply_marker(single) if not _MARKER_FIELDS.isdisjoint(single) else None,
        headers_only=headers_only,
        defects=tuple(defects),
    )


_MARKER_FIELDS = frozenset(
    {"list-id", "list-unsubscribe", "precedence", "auto-submitted"}
    | {"x-autoreply", "x-autorespond", "x-autogenerated", "x-mail-autoreply"}
)
_LABELS = {"from": "From", "to": "To", "cc": "Cc", "bcc": "Bcc", "reply-to": "Reply-To"}


class _Body:
    """Collects the readable bodies and attachment metadata while walking the MIME tree."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.html: str | None = None
        self.attachments: list[Attachment] = []
        self.defects: list[str] = []

    def walk(self, part: Message, depth: int) -> None:
        if depth > _MAX_MIME_DEPTH:
            self.defects.append(f"body: MIME nesting deeper than {_MAX_MIME_DEPTH}, the rest is skipped")
            return
        payload = part.get_payload()
        if isinstance(payload, list):
            for child in payload:
                if isinstance(child, Message):
                    self.walk(child, depth + 1)
        else:
            content_type = _content_type(part)
            try:
                self._leaf(part, _PartHeaders.read(part, content_type, self.defects))
            except Exception as error:  # one bad part must not cost the others
                self.defects.append(f"body: unreadable {content_type} part ({error!r})")
        if depth:
            self.defects.extend(_describe_defect(defect) for defect in part.defects)

    def _leaf(self, part: Message, headers: _PartHeaders) -> None:
        content_type, disposition = headers.content_type, headers.disposition
        filename = _filename(headers.filename, self.defects)
        if content_type.startswith("message/"):
            self.attachments.append(Attachment(filename, content_type, _size(part), disposition == "inline"))
            return
        is_attachment = disposition == "attachment" or (filename is not None and disposition != "inline")
        if content_type.startswith("multipart/"):
            # Its boundary never came: what the parser kept is the raw text, still worth reading.
            content_type = "text/plain"
        if content_type in {"text/plain", "text/html"} and not is_attachment:
            text = decode_bytes(_payload(part), headers.charset, f"body {content_type}", self.defects)
            if content_type == "text/plain":
                self.texts.append(text)
            elif self.html is None:
                self.html = text
            return
        content_id = part.get("content-id")
        self.attachments.append(
            Attachment(
                filename=filename,
                content_type=content_type,
                size=_size(part),
                inline=disposition == "inline",
                content_id=content_id.strip().strip("<>") if content_id else None,
            )
        )


# Content-Type and Content-Disposition are read the way policy.default's header registry reads them
# (a type and a subtype token, comments and blanks around them allowed, nothing but parameters after;
# else text/plain), so the types reported stay what they were, without building its syntax tree on
# every access. Parameters come from the stdlib's compat32 reader (RFC 2231 included).
_CFWS = r"(?:[ \t]|\((?:[^()\\]|\\.)*\))*"
_NAME_CHARS = r'[^ \t()<>@,;:\\"/\[\]?=]+'
_MEDIA_TYPE = re.compile(rf"{_CFWS}({_NAME_CHARS}){_CFWS}/(?:{_CFWS}({_NAME_CHARS}){_CFWS})?(.*)", re.DOTALL)
_DISPOSITION = re.compile(rf"{_CFWS}({_NAME_CHARS})")
_ParamValue = str | tuple[str | None, str | None, str]


def _content_type(part: Message) -> str:
    value = part.get("content-type")
    if value is None:
        return part.get_default_type()
    match = _MEDIA_TYPE.match(value)
    if match is None:
        return "text/plain"
    maintype, subtype, rest = match.groups()
    if subtype is None:
        return f"{maintype}/plain".lower()
    if rest and not rest.startswith(";"):
        return "text/plain"
    return f"{maintype}/{subtype}".lower()


@dataclass(frozen=True, slots=True)
class _PartHeaders:
    """Content type, charset, disposition and file name of one leaf part."""

    content_type: str
    charset: str | None
    disposition: str | None
    filename: str | None

    @classmethod
    def read(cls, part: Message, content_type: str, defects: list[str]) -> _PartHeaders:
        type_params = _params(part, "content-type", defects)
        disposition = None
        disposition_params: dict[str, _ParamValue] = {}
        disposition_value = part.get("content-disposition")
        if disposition_value is not None:
            match = _DISPOSITION.match(disposition_value)
            disposition = match.group(1).lower() if match else None
            disposition_params = _params(part, "content-disposition", defects)
        filename = _param_text(disposition_params.get("filename"), defects) or _param_text(
            type_params.get("name"), defects
        )
        return cls(content_type, _param_text(type_params.get("charset"), defects), disposition, filename)


def _params(part: Message, header: str, defects: list[str]) -> dict[str, _ParamValue]:
    """The parameters of a header, RFC 2231 continuations joined; a name given twice keeps its first value."""
    try:
        params = part.get_params(header=header)
    except (TypeError, ValueError) as error:  # RFC 2231 sections the stdlib cannot put in order
        defects.append(f"{header}: unreadable parameters ({error!r})")
        return {}
    found: dict[str, _ParamValue] = {}
    for name, value in (params or [])[1:]:  # the first is the value itself
        found.setdefault(name, value)
    return found


def _param_text(value: _ParamValue | None, defects: list[str]) -> str | None:
    """A parameter's text; an RFC 2231 value is decoded like a body, so an unknown charset is a defect."""
    if not isinstance(value, tuple):
        return value
    charset, _, text = value
    try:
        octets = text.encode("latin-1")  # how the stdlib leaves the %-encoded octets
    except UnicodeEncodeError:  # unencoded 8-bit text among them, already read as UTF-8
        return text
    return decode_bytes(octets, charset, "attachment name", defects)


def _payload(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _size(part: Message) -> int:
    """The decoded size of a leaf's content; well-formed base64 is measured without decoding it."""
    payload = part.get_payload()
    if isinstance(payload, str) and str(part.get("content-transfer-encoding", "")).lower() == "base64":
        size = _base64_size(payload.encode("ascii", "surrogateescape"))
        if size is not None:
            return size
    # Anything else decodes as it always did, reporting the same defects (bad base64 among them).
    return len(_payload(part))


_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _base64_size(encoded: bytes) -> int | None:
    """How many bytes base64 text decodes to, or None unless decoding it would succeed without a defect:
    line breaks aside, only the base64 alphabet, a multiple of four characters, padding only at the end.
    """
    rest = encoded.translate(None, _BASE64_ALPHABET)  # line breaks, padding and anything out of place
    padding = rest.translate(None, b"\r\n")
    if padding and (padding not in {b"=", b"=="} or not encoded.rstrip(b"\r\n").endswith(padding)):
        return None
    length = len(encoded) - len(rest) + len(padding)
    if length % 4:
        return None
    return length // 4 * 3 - len(padding)


def _filename(raw_name: str | None, defects: list[str]) -> str | None:
    """The attachment's name as read from its (RFC 2231) parameters, stray encoded words decoded too."""
    if raw_name is None:
        return None
    name = decode_words(readable(str(raw_name), "attachment name", defects), "attachment name", defects)
    return name.strip() or None


def _describe_defect(defect: object) -> str:
    detail = str(defect).strip()
    kind = type(defect).__name__
    return f"{kind}: {detail}" if detail and detail != kind else kind


def _unreadable(raw: object, error: Exception) -> ParsedEmail:
    try:
        content = bytes(raw)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        content = repr(raw).encode("utf-8", "replace")
    key = "sha256:" + hashlib.sha256(content).hexdigest()[:40]
    return ParsedEmail(dedup_key=key, defects=(f"message: unreadable ({error!r})",))
