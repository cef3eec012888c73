"""`findall` and `search` for a regular expression that can only start matching at a few places:
tried only there.

Python's `re` tries a pattern at every position of a text. A large alternation of line-anchored
patterns (the reply-header patterns of a dozen languages, each `^...$`, starting with a newline, or
with a dash rule) then costs its full width at every character, although a match can only begin at
a line start or at one of a few characters. `LineStartPattern` asks the pattern only where a match
may begin, and returns exactly what `Pattern.findall` and `Pattern.search` would:

- where a `Gate` (kit/regexgate.py) can be derived, at the positions its hits give: the gate
  looks ahead for the words a match needs, so most lines are never tried;
- otherwise at the places worked out, once, from the parsed pattern (`^` and `\\A`, and caseless
  literal first characters, looking through optional items and groups);
- when neither can be bounded (or the stdlib parser's private API changes), it is the pattern's
  own `findall` and `search`.

At a position, each top-level alternative that may begin with the characters found there is tried
on its own, in order.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from touchline.kit.regexgate import Gate, character_class

try:  # the stdlib's own pattern parser; private, hence the fallback
    _parser: Any = importlib.import_module("re._parser")
    _c: Any = importlib.import_module("re._constants")
except ImportError:  # pragma: no cover - other interpreters
    _parser = _c = None

_REPEATS = (
    (_c.MAX_REPEAT, _c.MIN_REPEAT, *((_c.POSSESSIVE_REPEAT,) if hasattr(_c, "POSSESSIVE_REPEAT") else ()))
    if _c
    else ()
)
_LINE_ANCHORS = (_c.AT_BEGINNING, _c.AT_BEGINNING_LINE, _c.AT_BEGINNING_STRING) if _c else ()


@dataclass(frozen=True, slots=True)
class Start:
    """One way a match can begin: at a line start (`first` empty) or at a character of the class
    `first`; and then, if `follow` is set, with a next character of the class `follow`."""

    first: str
    follow: str


Conditions = frozenset[Start]
# What follows the items being read: the rest of each enclosing sequence, with its case flag.
_Continuation = tuple[tuple[list[tuple[Any, Any]], bool], ...]


def _starts(
    items: list[tuple[Any, Any]], ignore_case: bool, after: _Continuation, *, shallow: bool = False
) -> Conditions | None:
    """The start conditions of `items` followed by `after`; None when they cannot be bounded.
    `shallow` leaves out what follows the first character (as when that is being worked out)."""
    found: set[Start] = set()
    for index, (op, argument) in enumerate(items):
        rest: _Continuation = ((items[index + 1 :], ignore_case), *after)
        if op in (_c.ASSERT, _c.ASSERT_NOT) or (op is _c.AT and argument not in _LINE_ANCHORS):
            continue  # zero width: the match starts where the next item does
        if op is _c.AT:
            return frozenset({*found, Start("", "" if shallow else _follow(rest))})
        if op in _REPEATS:
            low, high, body = argument
            # After one round of the body, another round may come before what follows the repeat.
            again: _Continuation = (([(op, (0, high, body))], ignore_case),) if high != 1 else ()
            starts = _starts(list(body), ignore_case, (*again, *rest), shallow=shallow)
            if starts is None:
                return None
            found |= starts
            if low == 0:
                continue  # may repeat zero times: what follows may come first
            return frozenset(found)
        starts = _group_starts(op, argument, ignore_case, rest, shallow)
        if starts is None:
            return None
        return frozenset(found | starts)
    more = _continue(after, shallow)
    return None if more is None else frozenset(found | more)


def _continue(after: _Continuation, shallow: bool) -> Conditions | None:
    if not after:
        return None  # the match may end here, having consumed nothing: anywhere
    (items, ignore_case), *outer = after
    return _starts(items, ignore_case, tuple(outer), shallow=shallow)


def _follow(rest: _Continuation) -> str:
    """The class of the character that comes next, or "" when it cannot be told (or is a line start)."""
    following = _continue(rest, shallow=True)
    if following is None or any(not start.first for start in following):
        return ""
    return "|".join(sorted({start.first for start in following}))


def _group_starts(
    op: Any, argument: Any, ignore_case: bool, rest: _Continuation, shallow: bool
) -> Conditions | None:
    if op is _c.SUBPATTERN:
        _group, add_flags, del_flags, body = argument
        inner = (ignore_case or bool(add_flags & re.IGNORECASE)) and not del_flags & re.IGNORECASE
        return _starts(list(body), inner, rest, shallow=shallow)
    if op is _c.BRANCH:
        found: set[Start] = set()
        for branch in argument[1]:
            starts = _starts(list(branch), ignore_case, rest, shallow=shallow)
            if starts is None:
                return None
            found |= starts
        return frozenset(found)
    character = character_class(op, argument)
    if character is None:
        return None
    first = f"(?i:{character})" if ignore_case else character
    return frozenset({Start(first, "" if shallow else _follow(rest))})


def match_starts(pattern: re.Pattern[str]) -> Conditions | None:
    """Where any match of `pattern` can begin; None if anywhere."""
    if _parser is None:
        return None
    try:
        parsed = list(_parser.parse(pattern.pattern, pattern.flags))
        return _starts(parsed, bool(pattern.flags & re.IGNORECASE), ())
    except Exception:  # an unexpected shape of the private parse tree: do not guess
        return None


def top_level_alternatives(source: str) -> list[str]:
    """`a|b(c|d)|[|]` -> `["a", "b(c|d)", "[|]"]`: the pattern's alternatives outside any group."""
    parts: list[str] = []
    depth, start, index, in_class = 0, 0, 0, False
    while index < len(source):
        character = source[index]
        if character == "\\":
            index += 2
            continue
        if in_class:
            in_class = character != "]"
        elif character == "[":
            in_class = True
            # A "]" right after "[" or "[^" is a literal one, not the end of the class.
            index += 2 if source[index + 1 : index + 2] == "^" else 1
            if source[index : index + 1] == "]":
                index += 1
            continue
        elif character == "(":
            depth += 1
        elif character == ")":
            depth -= 1
        elif character == "|" and depth == 0:
            parts.append(source[start:index])
            start = index + 1
        index += 1
    parts.append(source[start:])
    return parts


@dataclass(frozen=True, slots=True)
class _Alternative:
    pattern: re.Pattern[str]
    starts: Conditions
    groups_before: int


def _split(pattern: re.Pattern[str]) -> list[_Alternative] | None:
    """The top-level alternatives as patterns of their own, if that changes nothing they match."""
    if pattern.flags & re.VERBOSE or re.search(r"\\[1-9]|\(\?P=", pattern.pattern):
        return None  # comments, or back-references whose numbers would shift
    alternatives: list[_Alternative] = []
    before = 0
    try:
        for source in top_level_alternatives(pattern.pattern):
            compiled = re.compile(source, pattern.flags)
            starts = match_starts(compiled)
            if starts is None:
                return None
            alternatives.append(_Alternative(compiled, starts, before))
            before += compiled.groups
    except re.error:
        return None
    return alternatives if before == pattern.groups and len(alternatives) > 1 else None


def _holds(start: Start, at_line: bool, character: str, following: str) -> bool:
    if not start.first:
        return at_line and (not start.follow or re.fullmatch(start.follow, character) is not None)
    return re.fullmatch(start.first, character) is not None and (
        not start.follow or re.fullmatch(start.follow, following) is not None
    )


class LineStartPattern:
    """Wraps a compiled pattern; `findall` and `search` equal the pattern's own, and are faster
    when they may be.

    Each top-level alternative is tried on its own, and only where it can start: at a line start it
    may follow, or at a character it may begin with, followed by one that may come next. Which
    alternatives those are is worked out once per place (line start or not, two characters) and
    remembered.
    """

    def __init__(self, pattern: re.Pattern[str], *, gated: bool = True) -> None:
        self.pattern = pattern
        self.starts = match_starts(pattern)
        self.gate = Gate.of(pattern) if gated else None
        self._finder: re.Pattern[str] | None = None
        self._alternatives = _split(pattern) or []
        self._by_place: dict[tuple[bool, str, str], tuple[_Alternative, ...]] = {}
        if self.starts is None:
            return
        firsts = sorted({start.first for start in self.starts if start.first})
        finder = ["^"] if any(not start.first for start in self.starts) else []
        finder += [f"(?={first})" for first in firsts]
        self._finder = re.compile("|".join(finder), re.MULTILINE)

    @property
    def bounded(self) -> bool:
        """Whether matches are looked for only where they may start (by a gate or by the starts)."""
        return self.gate is not None or self._finder is not None

    def _candidates(self, at_line: bool, character: str, following: str) -> tuple[_Alternative, ...]:
        key = (at_line, character, following)
        found = self._by_place.get(key)
        if found is None:
            found = tuple(
                alternative
                for alternative in self._alternatives
                if any(_holds(start, at_line, character, following) for start in alternative.starts)
            )
            if len(self._by_place) < 50_000:
                self._by_place[key] = found
        return found

    def _match(self, text: str, position: int) -> Any:
        """What findall would list for a match starting here; None if none does."""
        if not self._alternatives:
            match = self.pattern.match(text, position)
            return None if match is None else (match, _findall_item(match, self.pattern.groups))
        at_line = position == 0 or text[position - 1] == "\n"
        place = text[position : position + 2]
        for alternative in self._candidates(at_line, place[:1], place[1:]):
            match = alternative.pattern.match(text, position)
            if match is not None:
                groups = self.pattern.groups
                if groups == 0:
                    return match, match.group(0)
                values = ("",) * alternative.groups_before + match.groups(default="")
                values += ("",) * (groups - len(values))
                return match, values[0] if groups == 1 else values
        return None

    def findall(self, text: str) -> list[Any]:
        ranges = None if self.gate is None else self.gate.ranges(text)
        if ranges is not None:
            return self._findall_gated(text, ranges)
        if self._finder is None:
            return self.pattern.findall(text)
        found: list[Any] = []
        position = 0
        for candidate in self._finder.finditer(text):
            start = candidate.start()
            if start < position:
                continue
            matched = self._match(text, start)
            if matched is None:
                continue
            match, item = matched
            if match.end() == match.start():
                # Empty matches follow subtler rules in findall; leave them to it.
                return self.pattern.findall(text)
            found.append(item)
            position = match.end()
        return found

    def _findall_gated(self, text: str, ranges: Iterable[tuple[int, int]]) -> list[Any]:
        found: list[Any] = []
        position = 0
        tried = -1
        for low, high in ranges:
            for start in range(max(low, tried + 1, position), high + 1):
                tried = start
                if start < position:
                    continue  # inside the match just found
                matched = self._match(text, start)
                if matched is None:
                    continue
                match, item = matched
                if match.end() == match.start():
                    return self.pattern.findall(text)  # as above
                found.append(item)
                position = match.end()
        return found

    def search(self, text: str) -> re.Match[str] | None:
        """`Pattern.search`: the leftmost match, tried only where the gate allows one."""
        ranges = None if self.gate is None else self.gate.ranges(text)
        if ranges is None:
            return self.pattern.search(text)
        tried = -1
        for low, high in ranges:
            for start in range(max(low, tried + 1), high + 1):
                tried = start
                # No match starts before `start` (the ranges cover them all), so search would try
                # exactly this at `start`.
                match = self.pattern.match(text, start)
                if match is not None:
                    return match
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pattern, name)


def _findall_item(match: re.Match[str], groups: int) -> Any:
    if groups == 0:
        return match.group(0)
    if groups == 1:
        return match.group(1) or ""
    return match.groups(default="")
