"""A cheap necessary condition for a regular expression to match: where it may start, found fast.

Python's `re` tries a pattern at every position of a text. For big case-insensitive alternations
of line-anchored phrases (the reply-header, signature and disclaimer patterns of a dozen
languages) that costs the whole alternation at every character, and case-insensitive letters
also switch off the engine's own skipping to where a match may begin. A `Gate` is a weaker
pattern, derived once from the parsed one, that matches wherever the pattern does (and possibly
elsewhere) and that the engine searches quickly:

- it reads a folded copy of the text, as long as the text: ASCII lowered, any other character
  read as `?`. Each character class of the pattern becomes the set of folded characters its
  characters fold to, so the gate has no case-insensitive letters;
- it leaves out what only narrows a match down (lookarounds, `\\A`, `\\b`) and what a match may
  end with, and reads a row of variable-length items that share many characters (`.+?\\s?.+?`,
  tried in every split) as one run;
- each way a match can begin is rewritten to start with a character: `^x` as "a newline, then x"
  (the folded copy gets a newline in front, standing for the start of the text), `a?b` as
  `ab|b`, `a{2,}` as `aa+`; a leading run of a class (`\\s*`, or one character of a class too
  broad to search for) is stepped back over from each hit instead;
- the ways are merged into a tree on their characters, one search for each first character:
  a pattern that starts with one known character is found as fast as `str.find` finds it, and at
  each place only the branches of the characters there are followed;
- a string that every way needs (`mail` for the disclaimers) is looked for in the folded copy
  first: without it nothing is searched.

`Gate.ranges` yields, in order, ranges of positions where the pattern may start; the pattern
itself decides there. Text mostly beyond ASCII (Cyrillic, CJK) folds to runs of `?` that the
folded words of such scripts match everywhere, so it is not gated (`ranges` gives None). A
pattern the derivation does not cover (back-references, one that may match the empty string
anywhere, a change in the stdlib's private parser) has no gate: `Gate.of` returns None, and
callers use the pattern alone.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

try:  # the stdlib's own pattern parser; private, hence the fallback
    _parser: Any = importlib.import_module("re._parser")
    _c: Any = importlib.import_module("re._constants")
except ImportError:  # pragma: no cover - other interpreters
    _parser = _c = None

_ASCII = frozenset(chr(code) for code in range(128))
_ASCII_ORDER = tuple(chr(code) for code in range(128))
_NEWLINE = frozenset("\n")
# How a character beyond ASCII reads in the folded copy (str.encode(..., "replace") writes "?").
WILDCARD = "?"
# A class of more folded characters than this is stepped over rather than searched for, and two
# repeats sharing more than this many are read as one run.
_BROAD = 16
# Bounds on the rewriting, past which a pattern gets no gate.
_MAX_PATHS = 4000
_MAX_STEPS = 200_000
# How deep into the tree repeats are unrolled into branches that start with a character.
_UNROLL_DEPTH = 4
# More first characters than this are searched for together, as one character set.
_MAX_SEARCHES = 8
# Text with more than one character in this many beyond ASCII is not gated.
_MOSTLY_BEYOND_ASCII = 10
_UNBOUNDED = -1
_REPEATS = (
    (_c.MAX_REPEAT, _c.MIN_REPEAT, *((_c.POSSESSIVE_REPEAT,) if hasattr(_c, "POSSESSIVE_REPEAT") else ()))
    if _c
    else ()
)
_CATEGORIES = (
    {
        _c.CATEGORY_DIGIT: r"\d",
        _c.CATEGORY_NOT_DIGIT: r"\D",
        _c.CATEGORY_SPACE: r"\s",
        _c.CATEGORY_NOT_SPACE: r"\S",
        _c.CATEGORY_WORD: r"\w",
        _c.CATEGORY_NOT_WORD: r"\W",
    }
    if _c
    else {}
)


class _Unsupported(Exception):
    """A construct no gate is derived for."""


@dataclass(frozen=True, slots=True)
class _Char:
    chars: frozenset[str]  # folded characters; empty: matches nothing


@dataclass(frozen=True, slots=True)
class _Alt:
    branches: tuple[tuple[_Node, ...], ...]


@dataclass(frozen=True, slots=True)
class _Rep:
    low: int
    high: int  # _UNBOUNDED: no upper limit
    body: tuple[_Node, ...]
    lazy: bool


@dataclass(frozen=True, slots=True)
class _LineStart:
    pass


@dataclass(frozen=True, slots=True)
class _LineEnd:
    pass


_Node = _Char | _Alt | _Rep | _LineStart | _LineEnd
_Seq = tuple[_Node, ...]
_NEWLINE_CHAR = _Char(_NEWLINE)
_NEVER = _Char(frozenset())


def character_class(op: Any, argument: Any) -> str | None:
    """The one character an item of a parsed pattern consumes, as a character class; None if the
    item is not one character, or is a class this cannot write."""
    if _c is None:
        return None
    if op is _c.LITERAL:
        return "[" + re.escape(chr(argument)) + "]"
    if op is _c.NOT_LITERAL:
        return "[^" + re.escape(chr(argument)) + "]"
    if op is not _c.IN:
        return None
    parts: list[str] = []
    for kind, value in argument:
        if kind is _c.NEGATE:
            parts.insert(0, "^")
        elif kind is _c.LITERAL:
            parts.append(re.escape(chr(value)))
        elif kind is _c.RANGE:
            parts.append(f"{re.escape(chr(value[0]))}-{re.escape(chr(value[1]))}")
        elif kind is _c.CATEGORY and value in _CATEGORIES:
            parts.append(_CATEGORIES[value])
        else:
            return None
    return "[" + "".join(parts) + "]"


def fold(text: str) -> str:
    """The copy of `text` a gate reads: as long, ASCII lowered, every other character a `?`."""
    if text.isascii():
        return text.lower()
    return text.encode("ascii", "replace").decode("ascii").lower()


# From the parsed pattern to nodes over folded characters.


class _Reader:
    """Reads a parsed pattern into nodes, for ASCII text or for any text (`wildcard`)."""

    def __init__(self, wildcard: bool) -> None:
        self.wildcard = wildcard
        self._sets: dict[tuple[Any, str, int], frozenset[str]] = {}
        self._handlers: dict[Any, Callable[[Any, Any, int], _Seq]] = {
            _c.LITERAL: self._character,
            _c.NOT_LITERAL: self._character,
            _c.IN: self._character,
            _c.ANY: self._character,
            _c.AT: _anchor,
            _c.ASSERT: _nothing,  # lookarounds only narrow a match down: the gate is weaker without
            _c.ASSERT_NOT: _nothing,
            _c.SUBPATTERN: self._group,
            _c.BRANCH: self._branch,
            **dict.fromkeys(_REPEATS, self._repeat),
        }
        if hasattr(_c, "ATOMIC_GROUP"):
            # What can match atomically can match: the gate need not commit.
            self._handlers[_c.ATOMIC_GROUP] = lambda _op, body, flags: self.read(body, flags)

    def read(self, items: Any, flags: int) -> _Seq:
        out: list[_Node] = []
        for op, argument in items:
            handler = self._handlers.get(op)
            if handler is None:
                raise _Unsupported(str(op))  # back-references and conditionals
            out.extend(handler(op, argument, flags))
        return tuple(out)

    def _character(self, op: Any, argument: Any, flags: int) -> _Seq:
        chars = self._folded(op, argument, flags)
        return (_Char(chars) if chars else _NEVER,)

    def _group(self, _op: Any, argument: Any, flags: int) -> _Seq:
        _number, add_flags, del_flags, body = argument
        return self.read(body, (flags | add_flags) & ~del_flags)

    def _branch(self, _op: Any, argument: Any, flags: int) -> _Seq:
        # Branches that cannot match (a word in a script ASCII text does not have) go.
        branches = [self.read(branch, flags) for branch in argument[1]]
        alive = tuple(branch for branch in branches if _NEVER not in branch)
        return (_Alt(alive) if alive else _NEVER,)

    def _repeat(self, op: Any, argument: Any, flags: int) -> _Seq:
        low, high, body = argument
        inner = self.read(body, flags)
        if _NEVER in inner:
            return (_NEVER,) if low > 0 else ()
        limit = _UNBOUNDED if high == _c.MAXREPEAT else int(high)
        return (_Rep(int(low), limit, inner, op is _c.MIN_REPEAT),)

    def _folded(self, op: Any, argument: Any, flags: int) -> frozenset[str]:
        """The folded characters that the characters one item matches fold to."""
        key = (op, repr(argument), flags & (re.IGNORECASE | re.ASCII | re.DOTALL))
        found = self._sets.get(key)
        if found is None:
            found = self._sets[key] = self._fold_item(op, argument, flags)
        return found

    def _fold_item(self, op: Any, argument: Any, flags: int) -> frozenset[str]:
        if op is _c.ANY:
            return _ASCII if flags & re.DOTALL else _ASCII - _NEWLINE
        source = character_class(op, argument)
        if source is None:
            return _ASCII  # a class this cannot write: take it to match anything
        # The engine itself says which characters the item matches, with its flags.
        item = re.compile(source, flags & (re.IGNORECASE | re.ASCII))
        found = frozenset(c.lower() for c in _ASCII_ORDER if item.fullmatch(c))
        if self.wildcard and _beyond_ascii(op, argument, item):
            found |= {WILDCARD}
        return found


def _beyond_ascii(op: Any, argument: Any, item: re.Pattern[str]) -> bool:
    """Whether an item may match a character outside ASCII: one it names, a class it negates or
    a category (when unsure: yes), or a partner of an ASCII letter under IGNORECASE (the Kelvin
    sign for k, ſ for s), which the engine is asked about."""
    if op is _c.LITERAL:
        codes: list[int] = [argument]
    elif op is _c.IN and all(kind in (_c.LITERAL, _c.RANGE) for kind, _value in argument):
        codes = [value if kind is _c.LITERAL else value[1] for kind, value in argument]
    else:
        return True
    return max(codes) >= 128 or item.search(_case_partners()) is not None


@cache
def _case_partners() -> str:
    """The characters outside ASCII that match an ASCII letter under IGNORECASE."""
    everything = "".join(map(chr, range(128, sys.maxunicode + 1)))
    return "".join(sorted(set(re.findall("[a-z]", everything, re.IGNORECASE))))


def _anchor(_op: Any, argument: Any, _flags: int) -> _Seq:
    # `^` and `$` are kept (the gate searches line by line); \A, \Z, \b and \B only narrow a match
    # down, and would read the folded copy's extra newline or `?` wrongly.
    if argument in (_c.AT_BEGINNING, _c.AT_BEGINNING_LINE):
        return (_LineStart(),)
    if argument in (_c.AT_END, _c.AT_END_LINE):
        return (_LineEnd(),)
    return ()


def _nothing(_op: Any, _argument: Any, _flags: int) -> _Seq:
    return ()


# Rewriting the nodes into ways a match can begin, each starting with a character.


def _nullable(node: _Node) -> bool:
    if isinstance(node, _Char):
        return False
    if isinstance(node, _Alt):
        return any(all(_nullable(item) for item in branch) for branch in node.branches)
    if isinstance(node, _Rep):
        return node.low == 0 or all(_nullable(item) for item in node.body)
    return True  # anchors


def _again(node: _Rep, low: int) -> _Seq:
    """What is left of a repeat after one round, as a sequence (empty once no round is left)."""
    high = node.high if node.high == _UNBOUNDED else node.high - 1
    if high == 0:
        return ()
    return (_Rep(low, high, node.body, node.lazy),)


def _single(node: _Rep) -> _Char | None:
    """The character a repeat repeats, if it repeats one."""
    if len(node.body) == 1 and isinstance(node.body[0], _Char):
        return node.body[0]
    return None


_Path = tuple[frozenset[str], _Seq]
_State = tuple[_Seq, bool, frozenset[str]]


@dataclass
class _Budget:
    steps: int = 0

    def spend(self, paths: list[_Path]) -> None:
        self.steps += 1
        if self.steps > _MAX_STEPS or len(paths) > _MAX_PATHS:
            raise _Unsupported("too many ways to start")


def _expand(state: _State, paths: list[_Path], budget: _Budget) -> None:
    """Rewrite the sequence of `state` (sequence, after a line start, run) into paths.

    A path (run, items) stands for: the match steps over characters of `run`, then `items` match
    (their first item is a character; a newline first stands for a line start). If the sequence
    matches at p, then some path's items match at a position h with p in [the start of the run of
    `run` characters that ends at h, h + 1], which is the range `Gate.ranges` yields for a hit at h.
    """
    current: _State | None = state
    while current is not None:
        budget.spend(paths)
        seq, line, run = current
        if not seq:
            if not line:
                raise _Unsupported("may match the empty string anywhere")
            paths.append((run, (_NEWLINE_CHAR,)))
            return
        node, rest = seq[0], seq[1:]
        if isinstance(node, _Char):
            current = _at_character(node, rest, line, run, paths)
        elif isinstance(node, _Alt):
            for branch in node.branches:
                _expand((branch + rest, line, run), paths, budget)
            return
        elif isinstance(node, _Rep):
            current = _at_repeat(node, rest, line, run, paths, budget)
        else:
            current = (rest, line or isinstance(node, _LineStart), run)


def _at_character(
    node: _Char, rest: _Seq, line: bool, run: frozenset[str], paths: list[_Path]
) -> _State | None:
    if not node.chars or _NEVER in rest:
        return None  # cannot match: no path
    if rest and len(node.chars) > _BROAD:
        # Step over it like a leading run: searching for it would stop almost everywhere.
        return rest, False, run | node.chars
    paths.append((run, ((_NEWLINE_CHAR,) if line else ()) + (node, *rest)))
    return None


def _at_repeat(
    node: _Rep, rest: _Seq, line: bool, run: frozenset[str], paths: list[_Path], budget: _Budget
) -> _State | None:
    if node.high == 0:
        return rest, line, run
    if node.low > 0:
        return node.body + _again(node, node.low - 1) + rest, line, run
    if node.high == _UNBOUNDED and all(_nullable(item) for item in node.body):
        raise _Unsupported("an endless repeat of what may match nothing")
    single = _single(node)
    if single is not None and (not line or len(single.chars) > _BROAD):
        return rest, False, run | single.chars  # a leading run
    _expand((rest, line, run), paths, budget)  # no round
    return node.body + _again(node, 0) + rest, line, run  # at least one


# Writing the paths as gate patterns.


def _class_source(chars: frozenset[str]) -> str:
    if not chars:
        return "(?!)"
    if len(chars) == 1:
        return re.escape(next(iter(chars)))
    if chars == _ASCII - _NEWLINE:
        return "."
    return "[" + "".join(re.escape(c) for c in sorted(chars)) + "]"


def _quantifier(low: int, high: int, lazy: bool) -> str:
    if high == _UNBOUNDED:
        text = "*" if low == 0 else "+" if low == 1 else f"{{{low},}}"
    elif low == high:
        text = f"{{{low}}}"
    else:
        text = "?" if (low, high) == (0, 1) else f"{{{low},{high}}}"
    return text + ("?" if lazy else "")


def _simple(node: _Node) -> bool:
    """One character, or a repeat of one."""
    return isinstance(node, _Char) or (isinstance(node, _Rep) and _single(node) is not None)


def _chars_of(node: _Node) -> frozenset[str]:
    if isinstance(node, _Char):
        return node.chars
    single = _single(node) if isinstance(node, _Rep) else None
    return single.chars if single is not None else frozenset()


def _seq_source(seq: _Seq) -> str:
    parts: list[str] = []
    index = 0
    while index < len(seq):
        if _simple(seq[index]):
            end = index
            while end < len(seq) and _simple(seq[end]):
                end += 1
            parts.append(_run_source(seq[index:end]))
            index = end
        else:
            parts.append(_node_source(seq[index]))
            index += 1
    return "".join(parts)


def _run_source(items: _Seq) -> str:
    """Items of one character or repeats of one, in a row.

    Unbounded repeats that share many characters with only optional items between them
    (`.+?\\s?.+?`) would be tried in every split of a line; from the first to the last of those,
    the gate reads one run of their characters instead (with as many newlines as they allow),
    which matches at least as much. A single character between repeats keeps them apart, and
    repeats that share few (`[ *]*.*`) can only be split in few ways.
    """
    parts: list[str] = []
    start = 0
    for index, node in enumerate((*items, None)):
        if node is None or isinstance(node, _Char):
            parts.append(_optional_run_source(items[start:index]))
            if node is not None:
                parts.append(_node_source(node))
            start = index + 1
    return "".join(parts)


def _optional_run_source(items: _Seq) -> str:
    unbounded = [
        index for index, node in enumerate(items) if isinstance(node, _Rep) and node.high == _UNBOUNDED
    ]
    sharing = [
        index
        for index in unbounded
        if any(
            other != index and len(_chars_of(items[index]) & _chars_of(items[other])) > _BROAD
            for other in unbounded
        )
    ]
    if not sharing:
        return "".join(_node_source(node) for node in items)
    first, last = sharing[0], sharing[-1]
    span = items[first : last + 1]
    chars = frozenset[str]().union(*(_chars_of(node) for node in span))
    with_newline = [node for node in span if "\n" in _chars_of(node)]
    if any(isinstance(node, _Rep) and node.high == _UNBOUNDED for node in with_newline):
        merged = _class_source(chars) + "*?"
    else:
        newlines = sum(node.high if isinstance(node, _Rep) else 1 for node in with_newline)
        inner = _class_source(chars - _NEWLINE) + "*?" if chars - _NEWLINE else ""
        merged = inner if newlines == 0 else f"{inner}(?:\\n{inner}){{0,{newlines}}}?"
    before = "".join(_node_source(node) for node in items[:first])
    after = "".join(_node_source(node) for node in items[last + 1 :])
    return before + merged + after


def _node_source(node: _Node) -> str:
    if isinstance(node, _Char):
        return _class_source(node.chars)
    if isinstance(node, _LineStart):
        return "^"
    if isinstance(node, _LineEnd):
        return "$"
    if isinstance(node, _Alt):
        return "(?:" + "|".join(_seq_source(branch) for branch in node.branches) + ")"
    if all(isinstance(item, _LineStart | _LineEnd) for item in node.body):
        # An anchor repeated is the anchor, or nothing.
        return _seq_source(node.body) if node.low > 0 else ""
    return "(?:" + _seq_source(node.body) + ")" + _quantifier(node.low, node.high, node.lazy)


def _head_forms(seq: _Seq, limit: int = 64) -> list[_Seq] | None:
    """`seq` as alternatives that each start with a character (an empty one: `seq` may match
    nothing), leaving out anchors in front; None when that takes more than `limit` of them."""
    forms: list[_Seq] = []
    pending = [seq]
    while pending:
        current = pending.pop()
        while current and isinstance(current[0], _LineStart | _LineEnd):
            current = current[1:]
        node = current[0] if current else None
        if node is None or isinstance(node, _Char):
            forms.append(current)
        elif isinstance(node, _Alt):
            pending.extend(branch + current[1:] for branch in reversed(node.branches))
        elif not isinstance(node, _Rep) or (
            node.high == _UNBOUNDED and all(_nullable(item) for item in node.body)
        ):
            return None
        elif node.high == 0:
            pending.append(current[1:])
        elif node.low > 0:
            pending.append(node.body + _again(node, node.low - 1) + current[1:])
        else:
            pending.append(node.body + _again(node, 0) + current[1:])
            pending.append(current[1:])
        if len(forms) + len(pending) > limit:
            return None
    return forms


def _grouped(
    paths: list[_Seq], depth: int, split: bool
) -> tuple[dict[frozenset[str], list[_Seq]], list[_Seq]] | None:
    """The paths by first character (or class; `split`: each character of it), with the rest of
    each, and the paths that do not start with one; None if a path is empty."""
    heads: dict[frozenset[str], list[_Seq]] = {}
    others: list[_Seq] = []
    for path in paths:
        if path and isinstance(path[0], _Char):
            forms: list[_Seq] | None = [path]
        else:
            forms = _head_forms(path) if depth < _UNROLL_DEPTH else None
        if forms is None:
            others.append(path)
            continue
        for form in forms:
            if not form:
                return None
            head = form[0]
            assert isinstance(head, _Char)
            for key in [frozenset(c) for c in sorted(head.chars)] if split else [head.chars]:
                heads.setdefault(key, []).append(form[1:])
    return heads, others


def _tree_source(paths: list[_Seq], depth: int) -> str:
    """The paths as one alternation, merged on their first characters. Branches that start with
    a character are dismissed by the engine at a glance, so near the top, where most places are
    dismissed, others are rewritten into such where that takes few branches (deeper, a repeat
    would be unrolled without end)."""
    groups = _grouped(paths, depth, split=False)
    if groups is None:
        return ""  # one path is complete here: nothing more to ask
    heads, others = groups
    parts = [_class_source(key) + _wrapped(_tree_source(rests, depth + 1)) for key, rests in heads.items()]
    parts.extend(_seq_source(path) for path in others)
    return "|".join(dict.fromkeys(parts))


def _wrapped(source: str) -> str:
    return f"(?:{source})" if source else ""


def _searches(paths: list[_Seq]) -> list[str]:
    """Gate sources, one for each character a match may start with: the engine finds a pattern
    that starts with one known character as fast as str.find does, while it checks a set of
    several at every character. Past a few characters, one pattern is cheaper."""
    grouped = _grouped(paths, 0, split=True)
    assert grouped is not None  # every path starts with a character
    heads, _others = grouped
    sources = [_class_source(key) + _wrapped(_tree_source(rests, 1)) for key, rests in heads.items()]
    return sources if len(sources) <= _MAX_SEARCHES else ["|".join(sources)]


def _shortest_end(seq: _Seq) -> _Seq:
    """`seq` without what it may end with: optional items, and the rounds of a final repeat past
    the fewest it needs. Whatever `seq` matches at a position, this matches there too, and it
    stops looking sooner."""
    while seq:
        last = seq[-1]
        if _nullable(last):
            seq = seq[:-1]
        elif isinstance(last, _Rep) and last.low == 1:
            seq = seq[:-1] + last.body
        elif isinstance(last, _Rep) and last.high != last.low:
            return (*seq[:-1], _Rep(last.low, last.low, last.body, last.lazy))
        else:
            return seq
    return seq


def _literals(seq: _Seq) -> set[str]:
    """Strings that any match of `seq` contains: its runs of single characters, and those of the
    repeats it cannot skip."""
    found: set[str] = set()
    run = ""
    for node in seq:
        if isinstance(node, _Char) and len(node.chars) == 1:
            run += next(iter(node.chars))
            continue
        single = _single(node) if isinstance(node, _Rep) else None
        if isinstance(node, _Rep) and single is not None and node.low >= 1 and len(single.chars) == 1:
            run += next(iter(single.chars)) * node.low  # `-{5,}`: at least "-----"
            if node.high == node.low:
                continue
        if run:
            found.add(run)
            run = ""
        if isinstance(node, _Rep) and single is None and node.low >= 1:
            found |= _literals(node.body)
    if run:
        found.add(run)
    return found


def _common_literal(paths: list[_Seq]) -> str:
    """The longest string (of two characters or more) that every path needs; "" if none."""
    if not paths:
        return ""
    each = [_literals(path) for path in paths]
    candidates = sorted(
        {
            part[start:end]
            for part in each[0]
            for start in range(len(part))
            for end in range(start + 2, len(part) + 1)
        },
        key=lambda candidate: (-len(candidate), candidate),
    )
    for candidate in candidates:
        if all(any(candidate in literal for literal in literals) for literals in each[1:]):
            return candidate
    return ""


@dataclass(frozen=True, slots=True)
class _Variant:
    searches: tuple[re.Pattern[str], ...]  # none: the pattern cannot match
    run: frozenset[str]
    required: str  # in the folded copy wherever the pattern matches; "" if nothing is known


def _build(pattern: re.Pattern[str], wildcard: bool) -> _Variant:
    seq = _Reader(wildcard).read(_parser.parse(pattern.pattern, pattern.flags), pattern.flags)
    paths: list[_Path] = []
    if _NEVER not in seq:
        _expand((seq, False, frozenset()), paths, _Budget())
    run = frozenset[str]().union(*(path_run for path_run, _items in paths))
    sources = _searches([_shortest_end(items) for _run, items in paths]) if paths else []
    required = _common_literal([items for _run, items in paths])
    return _Variant(tuple(re.compile(source, re.MULTILINE) for source in sources), run, required)


class Gate:
    """Where a pattern may start matching, found by a cheap search; see the module docstring."""

    def __init__(self, pattern: re.Pattern[str], ascii_variant: _Variant) -> None:
        self.pattern = pattern
        self._ascii = ascii_variant
        # For text beyond ASCII, built when first needed (False: it could not be).
        self._any: _Variant | Literal[False] | None = None

    @classmethod
    def of(cls, pattern: re.Pattern[str]) -> Gate | None:
        """The gate of `pattern`, or None when none can be derived."""
        if _parser is None or not isinstance(pattern.pattern, str):
            return None
        try:
            return cls(pattern, _build(pattern, wildcard=False))
        except Exception:  # a construct not covered, or an unexpected shape of the private parse tree
            return None

    @property
    def sources(self) -> list[str]:
        """The gate patterns for ASCII text, for inspection."""
        return [search.pattern for search in self._ascii.searches]

    def _variant(self, text: str) -> tuple[str, _Variant] | None:
        if text.isascii():
            return "\n" + text.lower(), self._ascii
        folded = fold(text)
        if (folded.count(WILDCARD) - text.count(WILDCARD)) * _MOSTLY_BEYOND_ASCII > len(text):
            # Text mostly beyond ASCII (Cyrillic, CJK) folds to runs of `?`, which the folded forms
            # of words in such scripts match everywhere: the gate would stop at every place.
            return None
        if self._any is None:
            try:
                self._any = _build(self.pattern, wildcard=True)
            except Exception:  # as in `of`: then such text is not gated
                self._any = False
        if not isinstance(self._any, _Variant):
            return None
        return "\n" + folded, self._any

    def ranges(self, text: str) -> Iterable[tuple[int, int]] | None:
        """Ranges [low, high] of positions in `text`, in increasing order, such that every position
        where the pattern matches (`pattern.match(text, position)`) lies in one of them; None when
        the gate cannot narrow this text down, and the pattern is to be asked everywhere."""
        found = self._variant(text)
        if found is None:
            return None
        folded, variant = found
        if variant.required not in folded:
            return ()
        # The next hit of each search, as [position, search]; searches without one drop out.
        pending = [[hit.start(), search] for search in variant.searches if (hit := search.search(folded))]
        # Most texts have no hit at all: only those pay for a generator.
        return _walk(folded, variant.run, len(text), pending) if pending else ()

    def may_match(self, text: str) -> bool:
        """False only if the pattern matches nowhere in `text`."""
        found = self._variant(text)
        if found is None:
            return True
        folded, variant = found
        if variant.required not in folded:
            return False
        return any(search.search(folded) is not None for search in variant.searches)


def _walk(folded: str, run: frozenset[str], size: int, pending: list[list[Any]]) -> Iterator[tuple[int, int]]:
    while pending:
        entry = min(pending, key=_position) if len(pending) > 1 else pending[0]
        at = entry[0]
        # folded[i] is text[i - 1]; a hit at folded position i is one at text position i - 1.
        low = at - 1
        if run:
            while low > 0 and folded[low] in run:
                low -= 1
        yield max(low, 0), min(at, size)
        hit = entry[1].search(folded, at + 1)
        if hit is None:
            pending.remove(entry)
        else:
            entry[0] = hit.start()


def _position(entry: list[Any]) -> int:
    position: int = entry[0]
    return position
