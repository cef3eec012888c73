"""Reading one raw message into what is stored of it: parsed fields, the snippet, sanitised HTML.

Pure and free of I/O, so that sync can run it in helper processes (`touchline.inbound.readers`)
beside the storing, and every other way in (import, the log address) runs the very same code inline.
"""

from __future__ import annotations

from dataclasses import dataclass

from touchline.inbound.parse import ParsedEmail, parse_message
from touchline.inbound.quotes import html_to_text
from touchline.inbound.quotes import snippet as make_snippet
from touchline.kit.html import sanitise_html

MAX_BODY_CHARS = 1_000_000
"""Longer bodies are stored cut at this many characters."""
SNIPPET_SOURCE_CHARS = 4000
"""A snippet shows the start of the newest reply; reading further only feeds the quote heuristics'
regular expressions text whose result is cut away."""


@dataclass(frozen=True, slots=True)
class Shown:
    """What the timeline shows of an email: its snippet and its HTML body, made safe."""

    snippet: str
    html_body: str | None


@dataclass(frozen=True, slots=True)
class ReadMessage:
    parsed: ParsedEmail
    shown: Shown


@dataclass(frozen=True, slots=True)
class Unreadable:
    """Why a message could not be read, as the quarantine records it."""

    reason: str


Read = ReadMessage | Unreadable


def reason_of(error: Exception) -> str:
    """An error as the quarantine records it."""
    return f"{type(error).__name__}: {error}"


def storable(text: str) -> str:
    """PostgreSQL text cannot hold NUL characters; mail sometimes carries them, meaning nothing."""
    return text.replace("\x00", "")


def snippet_of(parsed: ParsedEmail) -> str:
    sender = parsed.from_[0].address if parsed.from_ else None
    if parsed.text_body:
        return storable(make_snippet(parsed.text_body[:SNIPPET_SOURCE_CHARS], sender=sender))
    if parsed.html_body:
        text = html_to_text(parsed.html_body[: SNIPPET_SOURCE_CHARS * 4])
        return storable(make_snippet(text[:SNIPPET_SOURCE_CHARS], sender=sender))
    return ""


def shown_of(parsed: ParsedEmail) -> Shown:
    html = sanitise_html(parsed.html_body[:MAX_BODY_CHARS]) if parsed.html_body else None
    return Shown(snippet=snippet_of(parsed), html_body=storable(html) if html is not None else None)


def read_message(raw: bytes) -> Read:
    """Parse `raw` and make what is shown of it; never raises, so one message costs only itself."""
    try:
        parsed = parse_message(raw)
        return ReadMessage(parsed, shown_of(parsed))
    except Exception as error:
        return Unreadable(reason_of(error))


def read_messages(raws: list[bytes]) -> list[Read]:
    return [read_message(raw) for raw in raws]
