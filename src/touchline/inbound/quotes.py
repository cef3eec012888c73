"""The new text of a reply, without the quoted conversation and the signature, for timeline snippets.

The heuristics (reply headers such as "On ... wrote:" or Outlook's "From: ... Sent: ..." blocks in a
dozen languages, signatures, disclaimers) are mail-parser-reply's. This module adds what snippets
need beyond them: `>` quotes without a reply header, answers written below quoted lines, reply
headers and separators in forms the library does not know, sign-offs by the sender's name, plain
text from HTML-only mail, and a length limit. bench/quotes/measure.py measures the result.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from email.utils import parseaddr
from functools import lru_cache
from html import unescape
from html.parser import HTMLParser
from typing import Any

from mailparser_reply import EmailMessage
from mailparser_reply.constants import MAIL_LANGUAGES, OUTLOOK_MAIL_SEPARATOR
from mailparser_reply.parser import EmailReply

from touchline.kit.html import well_formed
from touchline.kit.linescan import LineStartPattern
from touchline.kit.regexgate import Gate

# Every language the library knows is enabled, since a customer may write in any of them.
_LANGUAGES = tuple(MAIL_LANGUAGES)
# Heuristics are regular expressions over the whole text; very long bodies are cut first so that
# one pathological message cannot stall a sync.
_MAX_INPUT_CHARS = 100_000
MAX_BLANK_LINES = 20
"""Blank lines in a row that the reply heuristics see; see `_squeezed`."""
_QUOTED_LINE = re.compile(r"^[ \t]*>")
_WHITESPACE = re.compile(r"\s+")


# The pattern the library's normalisation splits glued Outlook separators with, compiled from the
# same pieces.
_GLUED_SEPARATOR_GATE = Gate.of(re.compile(f"([^\n]){OUTLOOK_MAIL_SEPARATOR}"))

# The library builds its patterns from every language's phrases for each message it reads; they only
# depend on the options, so they are built once per process.
_PATTERNS: dict[tuple[str, tuple[str, ...], bool, str], Any] = {}


class _Message(EmailMessage):  # type: ignore[misc]  # the library ships no types
    """The library's reader, with its patterns built once and searched only where they may match.

    With every language enabled the reply-header, signature and disclaimer patterns are large
    alternations tried at every character, which is nearly all of the cost. `LineStartPattern`
    asks them only where their gates (kit/regexgate.py) let a match start, and finds exactly what
    they find; tests/inbound/test_quotes.py compares whole readings with the library's.
    """

    text: str  # the library's field, declared for the type checker

    def _built(self, name: str, build: Any) -> Any:
        options = self.__dict__.get("_options")
        if options is None:  # the options are set when the message is made, and read for each reply
            options = self.__dict__["_options"] = (
                tuple(self.languages),
                bool(self.keep_hyphen_lists),
                str(self.default_language),
            )
        key = (name, *options)
        found = _PATTERNS.get(key)
        if found is None:
            found = _PATTERNS[key] = build()
        return found

    @property
    def HEADER_REGEX(self) -> Any:
        return self._built("header", lambda: LineStartPattern(super(_Message, self).HEADER_REGEX))

    @property
    def SIGNATURE_REGEX(self) -> Any:
        return self._built("signature", lambda: LineStartPattern(super(_Message, self).SIGNATURE_REGEX))

    @property
    def DISCLAIMERS_REGEX(self) -> Any:
        return self._built("disclaimers", lambda: LineStartPattern(super(_Message, self).DISCLAIMERS_REGEX))

    def _normalize_text(self) -> None:
        # The library's last step splits Outlook separators glued to a line with a pattern tried at
        # every character; where its gate finds no such separator that step changes nothing, and
        # only the first two (line endings, stripped lines) are needed.
        text = "\n".join([line.strip() for line in self.text.replace("\r\n", "\n").split("\n")])
        if _GLUED_SEPARATOR_GATE is None or _GLUED_SEPARATOR_GATE.may_match(text):
            super()._normalize_text()
        else:
            self.text = text


def reply_text(text: str, sender: str | None = None) -> str:
    """The newest part of a plain-text body: no quoted messages, reply headers, signature or disclaimer.

    `sender` (the From header, `Name <address>` or an address) helps find a sign-off with no
    delimiter, as in "Thanks. BT". Text answered inline, below quoted lines, counts as newest too.
    A body that is nothing but quotation (a bare forward) gives back the quoted text rather than "".
    """
    if not text or not text.strip():
        return ""
    body = _squeezed(text[:_MAX_INPUT_CHARS])
    # Hyphen lists stay text: by default the library takes a line starting "- " for a signature.
    replies = _Message(text=body, languages=list(_LANGUAGES), keep_hyphen_lists=True).read().replies
    newest = ""
    for index, reply in enumerate(replies):
        newest = _without_quoted_lines(reply.body)
        if newest:
            newest = "\n\n".join([newest, *_inline_answers(replies[index + 1 :])])
            break
    if not newest:
        quoted = next((reply.body for reply in replies if reply.body.strip()), body)
        return _unquote(quoted).strip()
    newest = _cut_at_reply_header(newest)
    newest = _cut_at_marker_line(newest)
    if sender:
        newest = _cut_sign_off(newest, sender)
    return _strip_trailing_rules(newest)


def _squeezed(text: str) -> str:
    """`text` with each run of blank lines cut to MAX_BLANK_LINES.

    The library's patterns, and the gates derived from them, look a few lines around a line at most,
    except for runs of line breaks (`\\n{2,}`), which they try from each line break of a run: a run of
    thousands of blank lines took them seconds. Cut to a length no window of theirs spans, a run
    still reads as one."""
    lines = text.replace("\r\n", "\n").split("\n")
    if len(lines) <= MAX_BLANK_LINES:
        return text
    kept: list[str] = []
    blank = 0
    for line in lines:
        blank = blank + 1 if not line.strip() else 0
        if blank <= MAX_BLANK_LINES:
            kept.append(line)
    return text if len(kept) == len(lines) else "\n".join(kept)


def snippet(text: str, max_chars: int = 200, sender: str | None = None) -> str:
    """One line of at most `max_chars` characters from the newest part of a body, cut at a word."""
    # str.split() splits on exactly the characters `\s` matches, so this is `\s+` collapsed to one
    # space and stripped, at a fraction of the cost.
    newest = " ".join(reply_text(text, sender).split())
    if len(newest) <= max_chars:
        return newest
    cut = newest[: max(max_chars - 1, 0)]
    space = cut.rfind(" ")
    if space > max_chars // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


def html_to_text(html: str, *, keep_quoted: bool = False) -> str:
    """Readable text of an HTML body, leaving out scripts and styles and, unless `keep_quoted`,
    quoted parts (`<blockquote>`, mail clients' quote containers).

    The markup is made well formed first (`well_formed`), which the stdlib's HTML parser then reads
    in one pass; markup too costly for that has its tags dropped instead."""
    markup = html[: _MAX_INPUT_CHARS * 4]
    readable = well_formed(markup)
    if readable is None:
        text = _TAG_OR_UNCLOSED.sub(_tag_as_text, markup)
        lines = [_WHITESPACE.sub(" ", line).strip() for line in unescape(text).split("\n")]
    else:
        reader = _HtmlText(keep_quoted=keep_quoted)
        try:
            reader.feed(readable)
            reader.close()
        except (AssertionError, ValueError):
            pass  # markup the parser gives up on: keep the text read up to there
        lines = [_WHITESPACE.sub(" ", line).strip() for line in "".join(reader.parts).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# For markup too costly to parse: each tag, or `<` up to the next `<` where no `>` closes it, goes,
# with a line break for a block tag. Each `<` is read up to the next `<` or `>` only: one pass.
_TAG_OR_UNCLOSED = re.compile(r"<(/?)([a-zA-Z0-9]*)[^<>]*>?")


def _tag_as_text(found: re.Match[str]) -> str:
    return "\n" if found.group(2).lower() in _BLOCK_TAGS else ""


def _without_quoted_lines(body: str) -> str:
    """Drop `>`-quoted lines that the reply-header heuristics left behind (quotes with no header)."""
    lines = body.splitlines()
    if ">" in body:  # without one, no line is quoted
        lines = [line for line in lines if not _QUOTED_LINE.match(line)]
    return "\n".join(lines).strip()


def _inline_answers(later_replies: Sequence[EmailReply]) -> list[str]:
    """Text written below quoted lines of an earlier message (bottom-posting, inline answers)."""
    answers = []
    for reply in later_replies:
        if ">" not in reply.body:
            break  # no quoted line: as below
        lines = reply.body.splitlines()
        first_quoted = next((i for i, line in enumerate(lines) if _QUOTED_LINE.match(line)), None)
        if first_quoted is None:
            break  # an unquoted earlier message (a forward, an Outlook header block): not an answer
        answer = _without_quoted_lines("\n".join(lines[first_quoted:]))
        if answer:
            answers.append(answer)
    return answers


def _cut_at_reply_header(text: str) -> str:
    """Cut at a reply header the library does not know: an attribution line ending in a colon with an
    address or a date (`Op 12 dec. 2016 schreef X <x@y>:`, in any language, possibly wrapped once),
    or a separator such as `-------- Oprindelig besked --------`."""
    if ":" not in text and not any(mark in text for mark in _SEPARATOR_STARTS):
        return text  # no line can end in a colon or start like a separator
    lines = text.splitlines()
    stripped = list(map(str.strip, lines))
    # Only a line that starts like a separator, or with it or the next one ending in a colon, can
    # be a header; the others are passed over without building candidates.
    marked = [
        index
        for index, line in enumerate(stripped)
        if line.endswith(":") or line.startswith(_SEPARATOR_STARTS)
    ]
    for index in sorted({*marked, *(index - 1 for index in marked)}):
        if index < 1:
            continue
        line = stripped[index]
        if _is_separator_header(line):
            return "\n".join(lines[:index]).strip()
        following = stripped[index + 1] if index + 1 < len(lines) else ""
        for candidate in (line, f"{line} {following}" if following.endswith(":") else ""):
            if candidate.endswith(":") and len(candidate) < 240 and _ATTRIBUTION_HINT.search(candidate):
                return "\n".join(lines[:index]).strip()
    return text


def _cut_at_marker_line(text: str) -> str:
    """Cut at a long rule (Outlook's reply separator, a mailing-list footer) or a "-Name" sign-off.

    Hyphen lists ("- item") are text, so the library's looser signature rule is off; a dash glued to
    a capitalised name on a line of its own is the sign-off it was meant to catch.
    """
    if "-" not in text and "_" not in text and "=" not in text:
        return text  # both marks start with one of these
    lines = text.splitlines()
    for index in range(1, len(lines)):
        line = lines[index].strip()
        if line[:1] not in _MARKER_STARTS:
            continue
        if _LONG_RULE.match(line) or (_DASH_SIGN_OFF.match(line) and index >= len(lines) - 6):
            return "\n".join(lines[:index]).strip()
    return text


def _cut_sign_off(text: str, sender: str) -> str:
    """Cut a short closing block that starts with the sender's name or initials ("Kim", "Thanks. BT")."""
    names, initials = _sender_marks(sender)
    if not names and not initials:
        return text
    lines = text.splitlines()
    # Only the last four lines with text can start the block, and only if no line from there on is
    # long; found from the end, without going through the whole text.
    last: list[int] = []
    long_from = -1  # the last line longer than 60 characters, among those looked at
    for index in range(len(lines) - 1, -1, -1):
        stripped = lines[index].strip()
        if long_from < 0 and len(stripped) > 60:
            long_from = index
        if stripped:
            last.append(index)
            if len(last) == 4:
                break
    first_filled = next((index for index, line in enumerate(lines) if line.strip()), -1)
    for index in reversed(last):
        if index == first_filled or long_from >= index:
            continue
        words = [word for word in _NON_WORD.split(lines[index]) if word]
        if not words:
            continue
        opens_with_name = words[0].casefold() in names
        short_with_mark = len(words) <= 3 and any(w.casefold() in names or w in initials for w in words)
        if opens_with_name or short_with_mark:
            return "\n".join(lines[:index]).strip()
    return text


@lru_cache(maxsize=4096)
def _sender_marks(sender: str) -> tuple[frozenset[str], frozenset[str]]:
    # Cached: a mailbox's mail comes from few senders, and parsing the address is the dear part.
    display, address = parseaddr(sender)
    words = [word for word in _NON_WORD.split(display) if len(word) > 1 and not word.isdigit()]
    local = address.partition("@")[0]
    parts = [part for part in re.split(r"[._\-+]+", local) if len(part) > 1 and part.isalpha()]
    names = {word.casefold() for word in (*words, *parts)}
    if len(parts) >= 2:
        names.add("".join(parts).casefold())
    initials = set()
    for sequence in (words, parts):
        if len(sequence) >= 2:
            first_letters = "".join(word[0] for word in sequence[:3]).upper()
            initials.update({first_letters, first_letters[::-1]})
    return frozenset(names), frozenset(initials)


def _is_separator_header(line: str) -> bool:
    """Whether a stripped line is a separator header: two or more of `-_=*`, a title of at most 61
    characters, two or more of them again (`-------- Oprindelig besked --------`), or a rule of five
    or more. That is what `^[-_=*]{2,}\\s*\\S.{0,60}?\\s*[-_=*]{2,}$` matches, worked out from the
    runs of marks at both ends in one pass: that expression tries each split of a long run against
    each other, and a line of a few thousand dashes took it seconds."""
    size = len(line)
    lead = size - len(line.lstrip(_SEPARATOR_MARKS))
    if lead == size:
        return size >= 5  # two marks, one taken for the title, two more
    trail = size - len(line.rstrip(_SEPARATOR_MARKS))
    if lead < 2 or trail < 2:
        return False
    title = line[lead : size - trail].strip()
    if title:
        return len(title) <= 61
    # Only blanks between the runs: one mark of a run of three or more can be the title.
    return lead > 2 or trail > 2


def _strip_trailing_rules(text: str) -> str:
    lines = text.rstrip().splitlines()
    while lines and (not lines[-1].strip() or _RULE_LINE.match(lines[-1])):
        lines.pop()
    return "\n".join(lines).strip()


def _unquote(body: str) -> str:
    return "\n".join(re.sub(r"^[ \t]*(?:> ?)+", "", line) for line in body.splitlines()).strip()


_SEPARATOR_STARTS = ("-", "_", "=", "*")
_SEPARATOR_MARKS = "".join(_SEPARATOR_STARTS)
_MARKER_STARTS = ("-", "_", "=")
_NON_WORD = re.compile(r"[^\w]+")
_ATTRIBUTION_HINT = re.compile(r"@|\b\d{1,2}[:.]\d{2}\b|\b(?:19|20)\d{2}\b")
_LONG_RULE = re.compile(r"^[-_=]{20,}$")
_DASH_SIGN_OFF = re.compile(r"^-[A-Z][\w.'-]*(?: [A-Z][\w.'-]*){0,3}$")
_RULE_LINE = re.compile(r"^\s*[-_=*~]{4,}\s*$")


_BLOCK_TAGS = frozenset(
    {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "hr", "pre"}
)
_INVISIBLE_TAGS = frozenset({"script", "style", "head", "title"})
# Quote containers of common clients: Gmail, Yahoo, Outlook on the web and desktop, Apple Mail, Zimbra.
_QUOTE_MARKERS = (
    "gmail_quote",
    "yahoo_quoted",
    "divrplyfwdmsg",
    "appendonsend",
    "olk_src_body_section",
    "moz-cite-prefix",
    "zmail_extra",
)
_VOID_TAGS = frozenset({"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr", "source"})


class _HtmlText(HTMLParser):
    def __init__(self, *, keep_quoted: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        # The elements open inside a skipped one, innermost last, and how many of each name: an end
        # tag is looked up in the counts, so deep nesting costs no scan of the stack per tag.
        self._skipping: list[str] = []
        self._open: Counter[str] = Counter()
        self._keep_quoted = keep_quoted

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self._skipping and not (
            tag in _INVISIBLE_TAGS or (not self._keep_quoted and self._quoted(tag, attrs))
        ):
            if tag in _BLOCK_TAGS:
                self.parts.append("\n")
            return
        if tag not in _VOID_TAGS:
            self._skipping.append(tag)
            self._open[tag] += 1

    @staticmethod
    def _quoted(tag: str, attrs: list[tuple[str, str | None]]) -> bool:
        marker = " ".join(value or "" for name, value in attrs if name in {"class", "id"}).lower()
        return tag == "blockquote" or any(quote in marker for quote in _QUOTE_MARKERS)

    def handle_endtag(self, tag: str) -> None:
        if self._skipping:
            if self._open[tag]:
                while self._skipping:
                    closed = self._skipping.pop()
                    self._open[closed] -= 1
                    if closed == tag:
                        break
            return
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)
