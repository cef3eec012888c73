"""Who a forwarded conversation was between: the participants found inside a forwarded body. Pure.

A forward sent to the log address names only the forwarding user and the log address in its own
headers; the people the conversation was with are inside it, either as an attached message
(`message/rfc822`, "forward as attachment") or as an inline block that each mail client writes in
its own way:

- Gmail:       ``---------- Forwarded message ---------`` then ``From:``, ``Date:``, ``Subject:``, ``To:``
- Outlook:     an optional ``________________________________`` or ``-----Original Message-----`` line,
               then ``From:``, ``Sent:``, ``To:``, ``Cc:``, ``Subject:`` (addresses ``;``-separated, or
               ``Name [mailto:a@b]``)
- Apple Mail:  ``Begin forwarded message:`` then ``From:``, ``Subject:``, ``Date:``, ``To:``
- Thunderbird: ``-------- Forwarded Message --------`` then ``Subject:``, ``Date:``, ``From:``, ``To:``,
               ``CC:`` with a tab after each colon

Blocks may be quoted (``> From: ...``), nested (a forward of a forward) and, when a message has no
plain-text part, inside HTML. A few common translations of the labels are understood too. Nothing
here raises: what cannot be read is skipped, since the result is only a suggestion for a person.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses

from touchline.inbound.parse.mime import parse_affordable
from touchline.inbound.quotes import html_to_text
from touchline.kit.addresses import InvalidAddressError, normalise_address

MAX_TEXT_CHARS = 200_000
"""Only the start of a long body is searched: forwarded headers sit near the top, and a cap keeps
one message's cost bounded whatever its size."""
MAX_PARTS = 500
MAX_BLOCKS = 50

_PARSER = BytesParser(policy=policy.compat32)


@dataclass(frozen=True, slots=True)
class ForwardedBlock:
    """One forwarded message: how it was found and the addresses of its headers, normalised."""

    style: str  # attached | gmail | outlook | apple-mail | thunderbird | headers
    from_: tuple[str, ...] = ()
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    subject: str = ""
    date: str = ""

    @property
    def participants(self) -> tuple[str, ...]:
        return _unique((*self.from_, *self.to, *self.cc))


@dataclass(frozen=True, slots=True)
class Forwarded:
    blocks: tuple[ForwardedBlock, ...] = ()

    @property
    def participants(self) -> tuple[str, ...]:
        """Every address of every block, once, in the order found (each block's From first)."""
        return _unique(tuple(address for block in self.blocks for address in block.participants))

    @property
    def styles(self) -> tuple[str, ...]:
        return _unique(tuple(block.style for block in self.blocks))


def find_forwarded(raw: bytes) -> Forwarded:
    """The forwarded messages inside `raw`: attached ones first, then inline blocks in body order."""
    try:
        message = parse_affordable(_PARSER, raw)
    except Exception:  # a message the stdlib cannot even split is a message with nothing to suggest
        return Forwarded()
    blocks: list[ForwardedBlock] = []
    plain: list[str] = []
    rich: list[str] = []
    try:
        for index, part in enumerate(message.walk()):
            if index >= MAX_PARTS:
                break
            _visit(part, index, blocks, plain, rich)
    except Exception:  # noqa: S110 -- a broken MIME tree still yields what was read before the break
        pass
    texts = plain or [html_to_text(body, keep_quoted=True) for body in rich]
    for text in texts:
        blocks.extend(inline_blocks(text))
    return Forwarded(tuple(blocks[:MAX_BLOCKS]))


def _visit(
    part: Message, index: int, blocks: list[ForwardedBlock], plain: list[str], rich: list[str]
) -> None:
    content_type = part.get_content_type()
    if content_type == "message/rfc822" and index > 0:
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if isinstance(inner, Message):
            blocks.append(_attached_block(inner))
        return
    if part.is_multipart() or part.get_content_disposition() == "attachment":
        return
    if content_type == "text/plain":
        plain.append(_decoded(part))
    elif content_type == "text/html":
        rich.append(_decoded(part))


def _attached_block(inner: Message) -> ForwardedBlock:
    def addresses(name: str) -> tuple[str, ...]:
        values = [str(value) for value in inner.get_all(name, [])]
        return _normalised(address for _, address in getaddresses(values))

    return ForwardedBlock(
        style="attached",
        from_=addresses("from"),
        to=addresses("to"),
        cc=addresses("cc"),
        subject=_header_text(inner.get("subject")),
        date=_header_text(inner.get("date")),
    )


def _header_text(value: object) -> str:
    if value is None:
        return ""
    try:
        return str(policy.default.header_factory("subject", str(value)))[:1000]
    except Exception:
        return str(value)[:1000]


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        text = payload[: MAX_TEXT_CHARS * 4].decode(charset, "replace")
    except LookupError:  # an unknown charset: the addresses are ASCII either way
        text = payload[: MAX_TEXT_CHARS * 4].decode("utf-8", "replace")
    return text[:MAX_TEXT_CHARS]


# --- inline blocks -------------------------------------------------------------------------------

_MARKERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^-{3,}\s*Forwarded message\s*-{3,}$"), "gmail"),
    (re.compile(r"^-{3,}\s*Forwarded Message\s*-{3,}$"), "thunderbird"),
    (
        re.compile(
            r"^-{3,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original|"
            r"Messaggio originale|Oorspronkelijk bericht)\s*-{3,}$",
            re.IGNORECASE,
        ),
        "outlook",
    ),
    (re.compile(r"^_{10,}$"), "outlook"),
    (re.compile(r"^Begin forwarded message:?$", re.IGNORECASE), "apple-mail"),
    (
        re.compile(
            r"^-{3,}\s*(?:Weitergeleitete Nachricht|Message transféré|Mensaje reenviado|"
            r"Messaggio inoltrato|Doorgestuurd bericht|Mensagem encaminhada)\s*-{3,}$",
            re.IGNORECASE,
        ),
        "gmail",
    ),
    (re.compile(r"^Anfang der weitergeleiteten Nachricht:?$", re.IGNORECASE), "apple-mail"),
)

# Header labels of forwarded blocks, in English and a few common translations.
_LABELS: dict[str, str] = {
    **dict.fromkeys(("from", "von", "de", "da", "van", "från", "fra"), "from"),
    **dict.fromkeys(("to", "an", "à", "a", "para", "aan", "till", "til"), "to"),
    **dict.fromkeys(("cc", "kopie", "copie", "copia", "kopia"), "cc"),
    **dict.fromkeys(("date", "sent", "gesendet", "datum", "envoyé", "enviado", "data", "verzonden"), "date"),
    **dict.fromkeys(("subject", "betreff", "objet", "asunto", "oggetto", "onderwerp", "assunto"), "subject"),
    "reply-to": "reply-to",
}
_HEADER_LINE = re.compile(r"^([^\W\d_][\w-]{0,20}(?: [\w-]{1,10})?)\s*:\s*(.*)$")
_QUOTE_PREFIX = re.compile(r"^(?:[ \t]*>)+[ \t]?")
# Tried only where a run of address characters starts: a match always starts there, and trying each
# position of a long run without an `@` again would cost the run's length each time.
_ADDRESS = re.compile(r"(?<![^\s<>()\[\],;:\"'*])[^\s<>()\[\],;:\"'*]+@[^\s<>()\[\],;:\"'*]+")


def inline_blocks(text: str) -> list[ForwardedBlock]:
    """Forwarded header blocks written into a plain-text body, outermost first."""
    lines = [_QUOTE_PREFIX.sub("", line).strip() for line in text[:MAX_TEXT_CHARS].splitlines()]
    blocks: list[ForwardedBlock] = []
    index = 0
    while index < len(lines) and len(blocks) < MAX_BLOCKS:
        style = _marker_style(lines[index])
        if style is not None:
            found, end = _header_block(lines, index + 1, style)
            if found is not None:
                blocks.append(found)
                index = end
                continue
        elif _starts_bare_block(lines, index):
            # Outlook often writes no separator line at all: a From/Sent/To run is a block by itself.
            found, end = _header_block(lines, index, "outlook" if _has_sent(lines, index) else "headers")
            if found is not None:
                blocks.append(found)
                index = end
                continue
        index += 1
    return blocks


def _marker_style(line: str) -> str | None:
    if not line or line[0] not in "-_BbAa":
        return None
    for pattern, style in _MARKERS:
        if pattern.match(line):
            return style
    return None


def _label(line: str) -> tuple[str, str] | None:
    found = _HEADER_LINE.match(line)
    if found is None:
        return None
    name = _LABELS.get(found.group(1).strip().lower())
    return (name, found.group(2).strip()) if name else None


def _starts_bare_block(lines: list[str], index: int) -> bool:
    """A `From:` line after a blank line, followed within five lines by two more known labels."""
    first = _label(lines[index])
    if first is None or first[0] != "from" or (index > 0 and lines[index - 1]):
        return False
    following = [_label(line) for line in lines[index + 1 : index + 6]]
    names = {found[0] for found in following if found is not None}
    return len(names & {"to", "date", "subject", "cc"}) >= 2


def _has_sent(lines: list[str], index: int) -> bool:
    return any(line.lower().startswith("sent:") for line in lines[index : index + 6])


def _header_block(lines: list[str], start: int, style: str) -> tuple[ForwardedBlock | None, int]:
    """Read `Label: value` lines from `start` (blank lines before them are skipped); None if none."""
    index = start
    while index < len(lines) and not lines[index] and index - start < 3:
        index += 1
    fields: dict[str, list[str]] = {}
    current: str | None = None
    while index < len(lines):
        line = lines[index]
        if not line:
            break
        labelled = _label(line)
        if labelled is not None:
            current = labelled[0]
            fields.setdefault(current, []).append(labelled[1])
        elif current in {"from", "to", "cc"} and "@" in line:
            fields[current].append(line)  # a long address list wrapped onto the next line
        else:
            break
        index += 1

    def addresses(name: str) -> tuple[str, ...]:
        return _normalised(match for value in fields.get(name, []) for match in _ADDRESS.findall(value))

    if not any(addresses(name) for name in ("from", "to", "cc")):
        return None, start  # prose that happens to look like headers, or a block naming nobody
    block = ForwardedBlock(
        style=style,
        from_=addresses("from"),
        to=addresses("to"),
        cc=addresses("cc"),
        subject=" ".join(fields.get("subject", []))[:1000],
        date=" ".join(fields.get("date", []))[:200],
    )
    return block, index


def _normalised(candidates: Iterable[str]) -> tuple[str, ...]:
    found: list[str] = []
    for candidate in candidates:
        text = candidate.strip().strip(".")
        if not text:
            continue
        try:
            address = normalise_address(text)
        except InvalidAddressError:
            continue
        if address not in found:
            found.append(address)
    return tuple(found)


def _unique(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
