"""The HTML part of a tracked email, its links rewritten to tracking URLs: a pure stage, no I/O.

Each `<a href>` to an http or https address gets the click URL of a token of its own; the address it
stood for, with the email's UTM parameters added (never replacing one the link already has), is what
that token redirects to. Left as written: `mailto:` and other schemes, `#anchors`, relative links,
and links marked `data-touchline-track="off"`. With opens tracked, a 1x1 pixel is added; with clicks
tracked, one hidden honeypot link that no person sees or reaches (display:none, aria-hidden, out of
the tab order), so that a hit on it shows a machine following every link.

The markup is read once by the stdlib's tokenizer (`html.parser`, as the text part's writer reads
it); only the `href` values of rewritten links change, and the pixel and honeypot are inserted
before the last `</body>` (or at the end): every other character stays as it was. The text part is
not rewritten: its links stay as written.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html import escape
from html import parser as html_tokenizer
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

UTM_KEYS: Final = ("utm_source", "utm_medium", "utm_campaign", "utm_content")
DO_NOT_TRACK_ATTRIBUTE: Final = "data-touchline-track"
"""`<a href="..." data-touchline-track="off">` keeps its link as written, untracked."""
TOKEN_BYTES: Final = 16
"""128 random bits per token."""

_TRACKED_SCHEMES: Final = ("http", "https")
# The attribute grammar html.parser itself uses to read a start tag (attrfind_tolerant), so that
# the href found here is the very one its tokenizer reported.
_ATTRIBUTES: Final[re.Pattern[str]] = getattr(html_tokenizer, "attrfind_tolerant")  # noqa: B009
_TAG_NAME_END: Final[re.Pattern[str]] = getattr(html_tokenizer, "tagfind_tolerant")  # noqa: B009


def new_token() -> str:
    """An opaque token: 128 random bits, URL-safe, nothing about the email or its recipient."""
    return secrets.token_urlsafe(TOKEN_BYTES)


@dataclass(frozen=True)
class TrackingUrls:
    """Where the tracking endpoints answer: `{base}/t/o/{token}.gif` and `{base}/t/c/{token}`."""

    base: str

    def open_url(self, token: str) -> str:
        return f"{self.base.rstrip('/')}/t/o/{token}.gif"

    def click_url(self, token: str) -> str:
        return f"{self.base.rstrip('/')}/t/c/{token}"


@dataclass(frozen=True)
class IssuedLink:
    """A token issued for one email: its pixel (`open`), a link (`click`) or its honeypot."""

    token: str
    kind: str
    url: str | None
    """A click's destination (UTM added); None for the pixel and the honeypot."""
    position: int
    """A click's place among the email's tracked links, from 1; 0 for the pixel and the honeypot."""


@dataclass(frozen=True)
class TrackedHtml:
    html: str
    links: tuple[IssuedLink, ...] = field(default_factory=tuple)


def with_utm(url: str, utm: Mapping[str, str]) -> str:
    """`url` with each UTM parameter of `utm` that it does not carry yet appended to its query."""
    wanted = {key: value for key, value in utm.items() if key in UTM_KEYS and value}
    if not wanted:
        return url
    parts = urlsplit(url)
    present = {key for key, _ in parse_qsl(parts.query, keep_blank_values=True)}
    added = urlencode([(key, value) for key, value in wanted.items() if key not in present])
    if not added:
        return url
    query = f"{parts.query}&{added}" if parts.query else added
    return urlunsplit(parts._replace(query=query))


def is_trackable(href: str) -> bool:
    """Whether a link's address is one a click URL may stand for: absolute http or https."""
    scheme, separator, rest = href.partition(":")
    return bool(separator) and scheme.lower() in _TRACKED_SCHEMES and rest.startswith("//") and len(rest) > 2


@dataclass(frozen=True)
class _Link:
    start: int
    """Offset of the `<a` of the start tag in the HTML."""
    tag: str
    """The start tag as written."""
    href: str
    """Its address, entities decoded and surrounding spaces stripped."""


class _LinkFinder(html_tokenizer.HTMLParser):
    """Collects the start tags of the links to rewrite and where `</body>` is, in one pass."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self._line_starts = [0]
        self._line_starts.extend(index + 1 for index, char in enumerate(html) if char == "\n")
        self.links: list[_Link] = []
        self.body_end: int | None = None

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        values = dict(attrs)
        href = (values.get("href") or "").strip()
        if (values.get(DO_NOT_TRACK_ATTRIBUTE) or "").strip().lower() == "off" or not is_trackable(href):
            return
        written = self.get_starttag_text()
        if written is not None:
            self.links.append(_Link(self._offset(), written, href))

    def handle_endtag(self, tag: str) -> None:
        if tag == "body":
            self.body_end = self._offset()


def _href_span(tag: str) -> tuple[int, int] | None:
    """Where the value of the (first) href attribute is written inside a start tag, quotes included."""
    name_end = _TAG_NAME_END.match(tag, 1)
    position = name_end.end() if name_end else 1
    while position < len(tag):
        found = _ATTRIBUTES.match(tag, position)
        if found is None or found.end() == position:
            return None
        if found.group(1).lower() == "href" and found.group(3) is not None:
            return found.start(3), found.end(3)
        position = found.end()
    return None


def _hidden_extras(opens: str | None, honeypot: str | None) -> str:
    extras = []
    if honeypot is not None:
        extras.append(
            f'<a href="{escape(honeypot)}" style="display:none" aria-hidden="true" tabindex="-1"></a>'
        )
    if opens is not None:
        extras.append(
            f'<img src="{escape(opens)}" width="1" height="1" alt="" '
            'style="display:block;width:1px;height:1px;border:0">'
        )
    return "".join(extras)


def rewrite(
    html: str,
    *,
    opens: bool,
    clicks: bool,
    urls: TrackingUrls,
    utm: Mapping[str, str] | None = None,
    token: Callable[[], str] = new_token,
) -> TrackedHtml:
    """The HTML as sent with opens and/or clicks tracked, and the tokens it holds."""
    if not opens and not clicks:
        return TrackedHtml(html)
    finder = _LinkFinder(html)
    # Fed once and never closed: markup left unterminated (a comment, a tag, a `<script>`) hides
    # the rest of the document from people too, so its links stay as they are. Closing would make
    # the tokenizer look for each such construct's end again from every later `<`: quadratic time.
    # `<![` not followed by a name makes the tokenizer give up there (AssertionError).
    with contextlib.suppress(AssertionError):
        finder.feed(html)

    issued: list[IssuedLink] = []
    pieces: list[str] = []
    written_up_to = 0
    if clicks:
        for link in finder.links:
            span = _href_span(link.tag)
            if span is None:
                continue
            issued_token = token()
            issued.append(IssuedLink(issued_token, "click", with_utm(link.href, utm or {}), len(issued) + 1))
            pieces.append(html[written_up_to : link.start + span[0]])
            pieces.append(f'"{escape(urls.click_url(issued_token))}"')
            written_up_to = link.start + span[1]
    honeypot_url = None
    if clicks:
        honeypot = IssuedLink(token(), "honeypot", None, 0)
        issued.append(honeypot)
        honeypot_url = urls.click_url(honeypot.token)
    pixel_url = None
    if opens:
        pixel = IssuedLink(token(), "open", None, 0)
        issued.append(pixel)
        pixel_url = urls.open_url(pixel.token)
    insert_at = finder.body_end if finder.body_end is not None else len(html)
    if insert_at < written_up_to:  # a link after `</body>`: the extras go at the very end
        insert_at = len(html)
    pieces.append(html[written_up_to:insert_at])
    pieces.append(_hidden_extras(pixel_url, honeypot_url))
    pieces.append(html[insert_at:])
    return TrackedHtml("".join(pieces), tuple(issued))
