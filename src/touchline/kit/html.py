"""HTML from mail, made safe to show: scripts, event handlers, forms and remote frames removed."""

from __future__ import annotations

import re
from collections import Counter

import nh3

_ALLOWED_TAGS = nh3.ALLOWED_TAGS - {"img"} | {"font", "center"}
_ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attributes) for tag, attributes in nh3.ALLOWED_ATTRIBUTES.items()},
    "font": {"color", "face", "size"},
    "td": {"colspan", "rowspan", "align", "valign"},
    "th": {"colspan", "rowspan", "align", "valign"},
    "table": {"summary"},
}

# The HTML5 parser under nh3 reads most markup in one pass, with two exceptions that hostile mail
# can aim at. Markup beyond either bound is not parsed (a person sees its text only); mail as written
# stays far below both.
MAX_NESTING_WORK = 20_000_000
"""It looks through the open elements each time a block element (`div`, `blockquote`, `ul`...)
opens or closes: the sum of the nesting depths at those tags, at most (some 50 ms of its work;
100,000 nested `div`s would take it minutes)."""
MAX_ENTITY_WORK = 10_000_000_000
"""Each `&` in a run of text costs it as much as the run is long: the sum over runs of text of
their `&`s times their length, at most (some 0.1 s)."""

# Tags whose start and end make the parser look through the open elements (those that close a `p`).
_SCOPE_CHECKED = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "center",
        "details",
        "dialog",
        "dir",
        "div",
        "dl",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "header",
        "hgroup",
        "main",
        "menu",
        "nav",
        "ol",
        "p",
        "search",
        "section",
        "summary",
        "ul",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "pre",
        "listing",
        "form",
        "li",
        "dd",
        "dt",
    ]
)
# Elements that never stay open: void ones, and those the next of their kind or their parent's end
# closes, so that unclosed ones do not nest.
_NOT_NESTING = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
        "p",
        "li",
        "dd",
        "dt",
        "td",
        "th",
        "tr",
        "thead",
        "tbody",
        "tfoot",
        "option",
        "optgroup",
        "colgroup",
        "caption",
        "rb",
        "rt",
        "rp",
        "rtc",
        "html",
        "head",
        "body",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
    ]
)
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)")


def nesting_work(html: str) -> int:
    """An upper bound of the parser's work on nesting, in the units of MAX_NESTING_WORK."""
    tags = html.count("<")
    if tags * tags <= MAX_NESTING_WORK:
        return tags * tags  # few tags: the bound needs no reading
    work = depth = 0
    open_elements: Counter[str] = Counter()
    for found in _TAG.finditer(html):
        closing, name = found.group(1), found.group(2).lower()
        if name in _SCOPE_CHECKED:
            work += depth + 1
        if name in _NOT_NESTING:
            continue
        if not closing:
            open_elements[name] += 1
            depth += 1
        elif open_elements[name]:
            open_elements[name] -= 1
            depth -= 1
    return work


def entity_work(html: str) -> int:
    """An upper bound of the parser's work on `&`s, in the units of MAX_ENTITY_WORK."""
    coarse = html.count("&") * len(html)
    if coarse <= MAX_ENTITY_WORK:
        return coarse
    return sum(run.count("&") * len(run) for run in html.split("<"))


def too_costly(html: str) -> str | None:
    """Why parsing `html` would cost more than these bounds allow, or None."""
    if nesting_work(html) > MAX_NESTING_WORK:
        return "HTML nested too deeply"
    if entity_work(html) > MAX_ENTITY_WORK:
        return "HTML with too many character references in a run of text"
    return None


def sanitise_html(html: str) -> str | None:
    """Keep structure and text; drop active content. Images are dropped too: remote images in customer
    mail are tracking pixels as often as not, and showing them would report every view back.

    None when the markup costs too much to parse (`too_costly`)."""
    if too_costly(html) is not None:
        return None
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def well_formed(html: str) -> str | None:
    """`html` parsed and written out again, keeping its elements' structure, text and `class` and `id`
    attributes, without comments, scripts, styles and titles; None when it costs too much to parse.

    Every `<` of the text comes out escaped and every tag closed, so that any reader, the stdlib's
    `html.parser` among them, reads the result in one pass: that parser backtracks over unclosed
    tags and comments (`<style` repeated, say) far beyond linear time."""
    if too_costly(html) is not None:
        return None
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes={"*": {"class", "id"}},
        clean_content_tags={"script", "style", "title"},
        link_rel=None,
    )
