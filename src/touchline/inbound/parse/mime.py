"""The MIME tree of a whole message, as the stdlib parser builds it, without its line-by-line cost.

The stdlib feed parser looks at every line of a message, attachments included: a message carrying a
150 kB PDF has some 2,700 base64 lines, each pushed through its line buffer and boundary matchers,
and that dominates reading mail with attachments. `message_tree` finds header blocks and boundary
lines with byte searches instead and builds the tree of compat32 `Message` parts the stdlib parser
would: the same header (name, value) pairs, the same payload text, the same structural defects. It
does so only for mail that is plainly well formed: every header block made of header and
continuation lines ending in line breaks (no lone CR), every occurrence of a boundary a complete
boundary line at a line start, at least one part and a single closing boundary per multipart, no
empty part. Anything else goes to the stdlib parser, which stays the reference.

`message/*` parts stay text in both: inbound records an attached message as an attachment and never
reads inside it, so there is nothing to gain from parsing it, and its text is what its size is.
"""

from __future__ import annotations

import itertools
import re
from email import errors
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32

MAX_DEPTH = 40
"""Nesting beyond this is left to the stdlib parser (and the depth limit of whoever walks the tree)."""

MAX_STDLIB_WORK = 4_000_000
"""The stdlib parser checks every line against each multipart boundary open around it, so its cost
is lines x nesting: 300 nested multiparts over a million lines would take it minutes. It reads a
message only as far as lines x (multipart boundaries + 1) stays within this, about half a second
here; what lies beyond is left unread, and a defect says so. Mail the byte searches split is not
limited: their cost grows with the size only."""

MAX_PARTS = 10_000
"""Each part costs either parser far more than a line (some 20 us): a message is read only up to
this many lines starting with `--` (every boundary line does), the rest being left unread, as above.
Mail as sent has a few dozen parts at most."""

_LINE_BREAKS = re.compile(r"\r|\n")
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")
_BOUNDARY_LINE_END = re.compile(rb"(--)?[ \t]*(?:\r?\n)?")
_BOUNDARY_PARAMETER = re.compile(rb"boundary[ \t]*=", re.IGNORECASE)
_OPAQUE = "application/octet-stream"


class RawHeaderPolicy(Compat32):
    """compat32, keeping each header's source text as it is: the field readers unfold and strip it.

    compat32 is the lightest policy and hands back values untouched; the (name, value) pairs it
    stores are what `RawHeaders` gathers, whichever way a message was read.
    """

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        name, _, value = sourcelines[0].partition(":")
        if len(sourcelines) > 1:
            value += "".join(sourcelines[1:])
        return name, value


class MimePolicy(RawHeaderPolicy):
    """The raw policy, with `Message.get` handing out values as policy.default's headers print.

    That is the first line's leading blanks and the final line break dropped, the folding line breaks
    removed: the text MIME decisions (boundary, content type, transfer encoding) were always made on,
    without the header registry. Unencoded 8-bit bytes come back as text (UTF-8, else Latin-1) rather
    than as the surrogates the parser carries them in, so no value read from a part holds characters
    that cannot be stored.
    """

    def header_fetch_parse(self, name: str, value: str) -> str:
        value = _LINE_BREAKS.sub("", value.lstrip(" \t").rstrip("\r\n"))
        if value.isascii():
            return value
        raw = value.encode("utf-8", "surrogateescape")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")


class Part(Message):
    """A compat32 part whose message/* content the parser leaves as text (see the module docstring).

    The stdlib parser decides whether to parse an embedded message by asking its part for the content
    type; this answer keeps it from doing so. The MIME readers read the Content-Type header instead.
    """

    def get_content_type(self) -> str:
        content_type = super().get_content_type()
        return _OPAQUE if content_type.startswith("message/") else content_type


POLICY = MimePolicy()
_PARSER = BytesParser(_class=Part, policy=POLICY)


class CostlyStructureDefect(errors.MessageDefect):
    """The message was read only in part: reading all of it would cost more than MAX_STDLIB_WORK."""


def message_tree(raw: bytes, *, stdlib_only: bool = False) -> Message:
    """The parts of `raw`; `stdlib_only` always uses the stdlib parser, for comparison."""
    tree = None if stdlib_only or raw.count(b"\n--") > MAX_PARTS else _split(raw)
    return parse_affordable(_PARSER, raw) if tree is None else tree


def parse_affordable(parser: BytesParser, raw: bytes) -> Message:
    """`parser.parsebytes` of as much of `raw` as it reads within MAX_STDLIB_WORK (see there)."""
    prefix = affordable_prefix(raw)
    message = parser.parsebytes(prefix)
    if len(prefix) < len(raw):
        message.defects.append(
            CostlyStructureDefect(
                f"only the first {len(prefix)} of {len(raw)} bytes were read: "
                "too many lines inside too many multipart boundaries"
            )
        )
    return message


def affordable_prefix(raw: bytes) -> bytes:
    """`raw`, or its start up to a line break: the lines the stdlib parser reads within
    MAX_STDLIB_WORK, given how many multipart boundaries the message declares at most, and before
    the line that could start part MAX_PARTS + 1."""
    end = _nth(raw, b"\n--", MAX_PARTS + 1)
    if end >= 0:
        raw = raw[: end + 1]
    lines = raw.count(b"\n")
    nesting = 1 + sum(1 for _ in _BOUNDARY_PARAMETER.finditer(raw))
    allowed = MAX_STDLIB_WORK // nesting
    if lines <= allowed:
        return raw
    # The end of the `allowed`th line, by halving: each count runs at memory speed.
    low, high = 0, len(raw)
    while high - low > 1:
        middle = (low + high) // 2
        if raw.count(b"\n", 0, middle) <= allowed:
            low = middle
        else:
            high = middle
    end = raw.rfind(b"\n", 0, low + 1)
    return raw[: end + 1]


def _nth(raw: bytes, needle: bytes, count: int) -> int:
    """Where the `count`th occurrence of `needle` starts; -1 if there are fewer."""
    position = -1
    for _ in range(count):
        position = raw.find(needle, position + 1)
        if position < 0:
            return -1
    return position


def _split(raw: bytes) -> Part | None:
    # The stdlib parser also ends a line at a lone CR. That matters only where a line is read on its
    # own: in a header block (`_fields` leaves those to the stdlib) and as a boundary line (which
    # must follow a LF and end in one here); a body's lines are joined again as they were.
    root = Part(policy=POLICY)
    return root if _fill(raw, root, 0, len(raw), 0, subpart=False) else None


def _fill(raw: bytes, part: Part, start: int, end: int, depth: int, *, subpart: bool) -> bool:
    """Read the part spanning raw[start:end] into `part`; False when that needs the stdlib parser."""
    headers = _header_fields(raw, start, end)
    if headers is None:
        return False
    fields, body_start = headers
    for name, value in fields:
        part.set_raw(name, value)
    if part.get_content_maintype() == "multipart":
        return depth < MAX_DEPTH and _split_multipart(raw, part, body_start, end, depth)
    body_end = end
    if subpart:
        # The line break before a boundary belongs to the boundary (RFC 2046).
        if raw.endswith(b"\r\n", body_start, end):
            body_end -= 2
        elif raw.endswith(b"\n", body_start, end):
            body_end -= 1
    part.set_payload(raw[body_start:body_end].decode("ascii", "surrogateescape"))
    return True


def _split_multipart(raw: bytes, part: Part, start: int, end: int, depth: int) -> bool:
    boundary = part.get_boundary()
    if boundary is None:
        return False
    try:
        separator = ("--" + boundary).encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return False
    if str(part.get("content-transfer-encoding", "8bit")).lower() not in {"7bit", "8bit", "binary"}:
        part.policy.handle_defect(part, errors.InvalidMultipartContentTransferEncodingDefect())
    lines = _boundary_lines(raw, separator, start, end)
    if lines is None:
        return False
    digest = part.get_content_type() == "multipart/digest"
    for (_, part_start), (next_boundary, _) in itertools.pairwise(lines):
        if part_start == next_boundary:
            return False  # the stdlib parser reads repeated boundary lines as one
        child = Part(policy=POLICY)
        if digest:
            child.set_default_type("message/rfc822")
        part.attach(child)
        if not _fill(raw, child, part_start, next_boundary, depth + 1, subpart=True):
            return False
    return True


def _boundary_lines(raw: bytes, separator: bytes, start: int, end: int) -> list[tuple[int, int]] | None:
    """Where each boundary line in raw[start:end] starts and where the line after it starts, the
    closing one last; None unless the separator occurs only as complete boundary lines, at least one
    before the closing one and none after it."""
    lines: list[tuple[int, int]] = []
    position = raw.find(separator, start, end)
    while position >= 0:
        if position != start and raw[position - 1] != 0x0A:
            return None  # the separator inside a line: harmless, but not plainly well formed
        line_break = raw.find(b"\n", position, end)
        line_end = end if line_break < 0 else line_break + 1
        tail = _BOUNDARY_LINE_END.fullmatch(raw, position + len(separator), line_end)
        if tail is None:
            return None
        lines.append((position, line_end))
        if tail.group(1):
            closing = len(lines) > 1 and raw.find(separator, line_end, end) < 0
            return lines if closing else None
        position = raw.find(separator, line_end, end)
    return None


def _header_fields(raw: bytes, start: int, end: int) -> tuple[list[tuple[str, str]], int] | None:
    """The (name, raw value) pairs of the header block at raw[start:end] and where the body starts;
    None unless every line is a header or continuation line ending in a line break.
    """
    if raw.startswith(b"\n", start, end):
        return [], start + 1
    if raw.startswith(b"\r\n", start, end):
        return [], start + 2
    block_end, body_start = _blank_line(raw, start, min(end, start + _HEADER_WINDOW))
    if block_end < 0:
        block_end, body_start = _blank_line(raw, start, end)
    if block_end < 0:
        block_end = body_start = end  # headers only, up to the end of the part
    fields = _fields(raw[start:block_end].decode("ascii", "surrogateescape"))
    return None if fields is None else (fields, body_start)


def _fields(block: str) -> list[tuple[str, str]] | None:
    """The (name, value) pairs the stdlib parser stores under `RawHeaderPolicy` for a header block
    without its blank line; None unless every line is a header or continuation line ending in a line
    break, none with a lone CR."""
    if "\r" in block and block.count("\r") != block.count("\r\n"):
        return None
    lines = block.split("\n")
    if lines.pop():
        return None  # the last line has no line break
    fields: list[tuple[str, str]] = []
    name: str | None = None
    value: list[str] = []
    for line in lines:
        if line[:1] in {" ", "\t"}:
            if name is None:
                return None  # a continuation line with nothing to continue
            value.append(line)
            continue
        if name is not None:
            fields.append((name, "\n".join(value) + "\n"))
        name, colon, rest = line.partition(":")
        if not colon or _FIELD_NAME.fullmatch(name) is None:
            return None
        value = [rest]
    if name is not None:
        fields.append((name, "\n".join(value) + "\n"))
    return fields


# Header blocks are short, bodies long: the blank line is looked for near the start first, so that a
# CRLF message's attachment is not searched end to end for a LF blank line it never has.
_HEADER_WINDOW = 16_384


def _blank_line(raw: bytes, start: int, end: int) -> tuple[int, int]:
    """Where the header block in raw[start:end] ends and the body starts, at the first blank line
    after a header line (LF or CRLF); (-1, -1) without one."""
    blank = raw.find(b"\n\n", start, end)
    crlf_blank = raw.find(b"\n\r\n", start, blank + 1 if blank >= 0 else end)
    if crlf_blank >= 0:
        return crlf_blank + 1, crlf_blank + 3
    if blank >= 0:
        return blank + 1, blank + 2
    return -1, -1
