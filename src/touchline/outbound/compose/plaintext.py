"""The text part of an email whose template has only HTML.

Unlike the snippets of received mail, nothing is left out: quoted blocks stay (marked with `>`) and
a link keeps its address beside its text, since the text part is all some recipients read. The
parser reads the markup once, left to right, so its time is linear in the size of the HTML.
"""

from __future__ import annotations

from html.parser import HTMLParser

_INVISIBLE_TAGS = frozenset({"script", "style", "head", "title", "template"})
_PARAGRAPH_TAGS = frozenset(
    {"p", "div", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "hr"}
)
_LINE_TAGS = frozenset({"br", "tr", "li", "dt", "dd", "section", "article", "header", "footer"})
_VOID_TAGS = frozenset({"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr", "source"})
_LINK_SCHEMES = ("http://", "https://", "mailto:")


class _TextWriter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._line: list[str] = []
        self._hidden = 0
        self._quote_depth = 0
        self._pre = 0
        self._links: list[tuple[str, int]] = []

    def _break(self, blank: bool = False) -> None:
        text = "".join(self._line).strip() if not self._pre else "".join(self._line).rstrip()
        self._line = []
        prefix = "> " * self._quote_depth
        if text:
            self.lines.append(prefix + text)
        if blank and self.lines and self.lines[-1] != prefix.rstrip():
            self.lines.append(prefix.rstrip())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _INVISIBLE_TAGS:
            self._hidden += 1
        if self._hidden:
            return
        if tag in _PARAGRAPH_TAGS:
            self._break(blank=True)
        elif tag in _LINE_TAGS:
            self._break()
        if tag == "blockquote":
            self._quote_depth += 1
        elif tag == "pre":
            self._pre += 1
        elif tag == "li":
            self._line.append("- ")
        elif tag == "hr":
            self.lines.append("-" * 20)
        elif tag == "a":
            href = dict(attrs).get("href") or ""
            self._links.append((href, len("".join(self._line))))
        elif tag == "img":
            alt = (dict(attrs).get("alt") or "").strip()
            if alt:
                self._line.append(alt)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID_TAGS:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE_TAGS:
            self._hidden = max(self._hidden - 1, 0)
            return
        if self._hidden:
            return
        if tag == "a" and self._links:
            href, start = self._links.pop()
            label = "".join(self._line)[start:].strip()
            if href.lower().startswith(_LINK_SCHEMES) and href.removeprefix("mailto:") != label:
                self._line.append(f" ({href})" if label else href)
        if tag in _PARAGRAPH_TAGS:
            self._break(blank=True)
        elif tag in _LINE_TAGS:
            self._break()
        if tag == "blockquote":
            self._quote_depth = max(self._quote_depth - 1, 0)
        elif tag == "pre":
            self._pre = max(self._pre - 1, 0)

    def text(self) -> str:
        self._break()
        lines = self.lines
        while lines and not lines[-1].strip(">").strip():
            lines.pop()
        start = next((index for index, line in enumerate(lines) if line.strip(">").strip()), len(lines))
        return "\n".join(lines[start:])

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        if self._pre:
            first, *rest = data.split("\n")
            self._line.append(first)
            for line in rest:
                self._break()
                self._line.append(line)
            return
        text = " ".join(data.split())
        if not text:
            if data and self._line and not self._line[-1].endswith(" "):
                self._line.append(" ")
            return
        if data[:1].isspace() and self._line and not self._line[-1].endswith(" "):
            self._line.append(" ")
        self._line.append(text)
        if data[-1:].isspace():
            self._line.append(" ")


def text_from_html(html: str) -> str:
    """Readable text of an HTML email body: paragraphs, line breaks, list items, quotes, link targets."""
    writer = _TextWriter()
    writer.feed(html)
    writer.close()
    return writer.text()
