"""Recipient filters over the merge fields: `company.custom.tier=gold`, `enduser.email~@acme.com`.

A filter is `FIELD OP VALUE` with OP one of `=`, `!=`, `<`, `<=`, `>`, `>=`, `~` (contains, ignoring
case); `FIELD=` matches an empty field and `FIELD!=` a filled one. The comparison follows the
field's value: numbers compare as numbers, dates (written `2027-01-31`) as dates, yes/no fields as
`true`/`false`, anything else as text ignoring case. A value that cannot be read as the field's type
matches nothing except `!=`; an empty field matches only `=` with no value and `!=` with a value.
The parsed filter is plain data, so the same filter can later become a database query.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Final, Literal

from touchline.kit.errors import InvalidInputError
from touchline.outbound.compose.merge import (
    FieldPath,
    FieldValue,
    MergeContext,
    UnknownFieldError,
    field_value,
    parse_field_path,
)

Operator = Literal["=", "!=", "<", "<=", ">", ">=", "~", "empty", "not-empty"]
OPERATORS: Final[tuple[Operator, ...]] = ("!=", "<=", ">=", "=", "<", ">", "~")
_OPERATOR_CHARS: Final = frozenset("!<>=~")
_TRUE: Final = frozenset({"true", "yes", "1"})
_FALSE: Final = frozenset({"false", "no", "0"})
RECIPIENT_KINDS: Final = frozenset({"enduser", "company"})


class FilterError(InvalidInputError):
    """A filter that cannot be read; the message says how to write it."""


@dataclass(frozen=True, slots=True)
class FieldFilter:
    field: FieldPath
    operator: Operator
    value: str = ""

    def __str__(self) -> str:
        if self.operator == "empty":
            return f"{self.field}="
        if self.operator == "not-empty":
            return f"{self.field}!="
        return f"{self.field}{self.operator}{self.value}"


def parse_filter(text: str, *, kinds: Iterable[str] = RECIPIENT_KINDS) -> FieldFilter:
    """`company.custom.tier=gold` -> FieldFilter; raises FilterError naming what is wrong."""
    start = next((index for index, ch in enumerate(text) if ch in _OPERATOR_CHARS), None)
    if start is None:
        raise FilterError(
            f"{text!r} has no operator: write FIELD=VALUE, FIELD!=VALUE, FIELD<VALUE or FIELD~TEXT"
        )
    operator = next((op for op in OPERATORS if text.startswith(op, start)), None)
    if operator is None:
        raise FilterError(f"{text!r}: {text[start]!r} is not an operator; use = != < <= > >= or ~")
    name = text[:start].strip()
    value = text[start + len(operator) :].strip()
    try:
        path = parse_field_path(name)
    except UnknownFieldError as error:
        raise FilterError(str(error)) from None
    allowed = set(kinds)
    if path.kind not in allowed:
        raise FilterError(f"{name!r}: recipients are chosen by {' or '.join(sorted(allowed))} fields")
    if not value:
        if operator == "=":
            return FieldFilter(path, "empty")
        if operator == "!=":
            return FieldFilter(path, "not-empty")
        raise FilterError(f"{text!r}: {operator} needs a value after it")
    return FieldFilter(path, operator, value)


def parse_filters(texts: Iterable[str]) -> tuple[FieldFilter, ...]:
    return tuple(parse_filter(text) for text in texts)


# The readings of a filter's operand and of field values are remembered: a bulk send checks one
# filter against each of thousands of endusers, whose values repeat (a company's, a tier, a count).
@functools.lru_cache(maxsize=4096)
def _number(text: str) -> Decimal | None:
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


@functools.lru_cache(maxsize=4096)
def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _sign(mine: Decimal | date | str | bool, theirs: Decimal | date | str | bool) -> int:
    return (mine > theirs) - (mine < theirs)  # type: ignore[operator]  # both of one type, by _comparison


def _comparison(value: FieldValue, operand: str) -> int | None:
    """-1, 0 or 1 as the value is below, equal to or above the operand read in the value's type; None
    when the operand cannot be read in that type."""
    if isinstance(value, bool):
        word = operand.casefold()
        return _sign(value, word in _TRUE) if word in _TRUE | _FALSE else None
    if isinstance(value, int | float | Decimal):
        mine, number = _number(str(value)), _number(operand)
        return _sign(mine, number) if mine is not None and number is not None else None
    if isinstance(value, date):
        day = _date(operand)
        return _sign(value.date() if isinstance(value, datetime) else value, day) if day is not None else None
    return _sign(str(value).casefold(), operand.casefold())


def matches(condition: FieldFilter, context: MergeContext) -> bool:
    value = field_value(context, condition.field)
    if condition.operator == "empty":
        return value is None
    if condition.operator == "not-empty":
        return value is not None
    if value is None:
        return condition.operator == "!="
    if condition.operator == "~":
        return condition.value.casefold() in str(value).casefold()
    sign = _comparison(value, condition.value)
    if sign is None:
        return condition.operator == "!="
    return _HOLDS[condition.operator](sign)


_HOLDS: Final[dict[str, Callable[[int], bool]]] = {
    "=": lambda sign: sign == 0,
    "!=": lambda sign: sign != 0,
    "<": lambda sign: sign < 0,
    "<=": lambda sign: sign <= 0,
    ">": lambda sign: sign > 0,
    ">=": lambda sign: sign >= 0,
}
"""Whether a comparison's sign satisfies each ordering operator."""


def matches_all(conditions: Iterable[FieldFilter], context: MergeContext) -> bool:
    """Every filter holds (the CLI's repeated `--where` are all required)."""
    return all(matches(condition, context) for condition in conditions)
