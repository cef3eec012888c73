"""Raw RFC 5322 bytes to `ParsedEmail`, never raising: what cannot be read becomes a defect."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import Compat32

from touchline.inbound.parse.headers import (
    RawHeaders,
    address_field,
    auto_reply_marker,
    bulk_marker,
    date_field,
    decode_bytes,
    decode_words,
    fallback_key,
    message_ids,
    readable,
    text_field,
)
from touchline.inbound.parse.model import Attachment, ParsedEmail


class _RawHeaderPolicy(Compat32):
    """compat32, keeping each header's source text as it is: the field readers unfold and strip it.

    Used for header blocks that `RawHeaders.from_block` leaves to the stdlib; compat32 is the
    lightest policy and hands back values untouched. The full parse uses policy.default for its MIME
    handling (RFC 2231 parameters, charsets).
    """

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        name, _, value = sourcelines[0].partition(":")
        if len(sourcelines) > 1:
            value += "".join(sourcelines[1:])
        return name, value


_HEADER_PARSER = BytesHeaderParser(policy=_RawHeaderPolicy())
_MESSAGE_PARSER = BytesParser(policy=policy.default)
_MAX_MIME_DEPTH = 40


def header_block(raw: bytes) -> bytes:
    """The bytes up to and including the blank line that ends the header block."""
    end = raw.find(b"\n\n")
    crlf_end = raw.find(b"\n\r\n", 0, end if end >= 0 else len(raw))
    if crlf_end >= 0:
        return raw[: crlf_end + 3]
    return raw if end < 0 else raw[: end + 2]


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


def parse_message(raw: bytes) -> ParsedEmail:
    """Read a whole message: headers, the text and HTML bodies, attachment metadata; never raises."""
    try:
        data = bytes(raw)
        message = _MESSAGE_PARSER.parsebytes(data)
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
        in_reply_to=message_ids(single.get("in-reply-to", "")),
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
        headers = _PartHeaders.read(part)
        if part.is_multipart() and not headers.content_type.startswith("message/"):
            for child in part.get_payload():
                if isinstance(child, Message):
                    self.walk(child, depth + 1)
        else:
            try:
                self._leaf(part, headers)
            except Exception as error:  # one bad part must not cost the others
                self.defects.append(f"body: unreadable {headers.content_type} part ({error!r})")
        if depth:
            self.defects.extend(_describe_defect(defect) for defect in part.defects)

    def _leaf(self, part: Message, headers: _PartHeaders) -> None:
        content_type, disposition = headers.content_type, headers.disposition
        filename = _filename(headers.filename, self.defects)
        if content_type.startswith("message/"):
            self.attachments.append(
                Attachment(filename, content_type, _embedded_size(part), disposition == "inline")
            )
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
                size=len(_payload(part)),
                inline=disposition == "inline",
                content_id=str(content_id).strip().strip("<>") if content_id else None,
            )
        )


@dataclass(frozen=True, slots=True)
class _PartHeaders:
    """Content-Type and Content-Disposition of one part, each parsed once.

    policy.default parses a structured header anew on every access, and the convenience getters
    (content type, charset, filename, disposition) each access it again; once is enough.
    """

    content_type: str
    charset: str | None
    disposition: str | None
    filename: str | None

    @classmethod
    def read(cls, part: Message) -> _PartHeaders:
        type_header = part.get("content-type")
        if type_header is None:
            content_type = part.get_default_type()
            type_params: Mapping[str, str] = {}
        else:
            content_type = str(getattr(type_header, "content_type", "")).lower()
            if content_type.count("/") != 1:
                content_type = "text/plain"
            type_params = getattr(type_header, "params", None) or {}
        disposition_header = part.get("content-disposition")
        disposition = None
        disposition_params: Mapping[str, str] = {}
        if disposition_header is not None:
            disposition = str(getattr(disposition_header, "content_disposition", "") or "").lower() or None
            disposition_params = getattr(disposition_header, "params", None) or {}
        filename = disposition_params.get("filename") or type_params.get("name")
        return cls(content_type, type_params.get("charset"), disposition, filename)


def _payload(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _embedded_size(part: Message) -> int:
    payload = part.get_payload()
    if isinstance(payload, list):
        return sum(len(inner.as_bytes()) for inner in payload if isinstance(inner, Message))
    return len(_payload(part))


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
