"""Custom field values: keys, types and the reading of values, with no storage.

A custom field's key is what templates and recipient filters name (`company.custom.renewal_date`).
It is made from a CSV column's name (or a label) by one rule: accents are dropped, letters are
lowercased, every run of other characters becomes one `_`, leading and trailing `_` are dropped, a
key that would start with a digit gets `f_` in front, and it is cut to 64 characters. So
`Renewal Date` -> `renewal_date`, `ARR (€)` -> `arr`, `2024 Score` -> `f_2024_score`.

A field is text, a number or a date. Values are stored in JSON as a string (text), a JSON number
(number) or an ISO date string (date), and read back as str, int or Decimal, and datetime.date:
the types the compose stage's merge fields and filters compare. Whole numbers are kept exactly; a
number with a fraction is a JSON number, exact to 15 significant digits.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Final, Literal, get_args

from touchline.kit.errors import InvalidInputError

FieldKind = Literal["company", "contact"]
FieldType = Literal["text", "number", "date"]
FIELD_KINDS: Final[tuple[FieldKind, ...]] = get_args(FieldKind)
FIELD_TYPES: Final[tuple[FieldType, ...]] = get_args(FieldType)
MAX_KEY_LENGTH: Final = 64
PLURALS: Final[dict[FieldKind, str]] = {"company": "companies", "contact": "contacts"}

StoredValue = str | int | float
"""A value as the JSON column holds it."""
TypedValue = str | int | Decimal | date
"""A value as merge fields and filters read it."""

KEY_PATTERN: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
_NOT_KEY: Final = re.compile(r"[^a-z0-9]+")
_ISO_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_NUMBER: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
# Unambiguous spellings only: day and month are never both plain numbers except in ISO order.
_DATE_FORMATS: Final = ("%Y-%m-%d", "%Y/%m/%d", "%d %b %Y", "%d %B %Y", "%b %d, %Y", "%B %d, %Y")


def normalise_key(raw: str) -> str:
    """The key a column or label gives (the rule is in the module's docstring); refuses an empty one."""
    folded = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode("ascii").lower()
    key = _NOT_KEY.sub("_", folded).strip("_")
    if not key:
        raise InvalidInputError(f"{raw!r} gives no field key: a key needs at least one letter or digit")
    if key[0].isdigit():
        key = f"f_{key}"
    return key[:MAX_KEY_LENGTH].rstrip("_")


def field_type(raw: str) -> FieldType:
    for name in FIELD_TYPES:
        if raw.strip().lower() == name:
            return name
    raise InvalidInputError(f"{raw!r} is not a field type; use {', '.join(FIELD_TYPES)}")


def parse_type_overrides(texts: Iterable[str]) -> dict[str, FieldType]:
    """`renewal_date=date` (several separated by commas, or given repeatedly) -> {key: type}; the
    key is normalised as a column's name is."""
    overrides: dict[str, FieldType] = {}
    for text in texts:
        for item in text.split(","):
            if not item.strip():
                continue
            name, equals, kind = item.partition("=")
            if not equals or not name.strip():
                raise InvalidInputError(f"{item.strip()!r}: write COLUMN=TYPE, for example renewal_date=date")
            overrides[normalise_key(name)] = field_type(kind)
    return overrides


def parse_number(text: str) -> int | Decimal | None:
    """`42` -> 42, `-3.50` -> Decimal('-3.50'); None for anything else (no thousands separators)."""
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        return None
    if "." not in text:
        return int(text)
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        return None


def parse_date(text: str) -> date | None:
    """`2027-01-31`, `2027/01/31`, `31 Jan 2027`, `January 31, 2027` -> a date; None otherwise."""
    text = text.strip()
    for pattern in _DATE_FORMATS:
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    return None


def detect_type(values: Iterable[str]) -> FieldType:
    """number when every non-empty value is a number, date when every one is a date, else text."""
    filled = [value for value in values if value.strip()]
    if not filled:
        return "text"
    if all(parse_number(value) is not None for value in filled):
        return "number"
    if all(parse_date(value) is not None for value in filled):
        return "date"
    return "text"


def _stored_number(number: int | Decimal) -> StoredValue:
    return number if isinstance(number, int) else float(number)


def parse_text(key: str, kind: FieldType, text: str) -> StoredValue:
    """A CSV cell read as the field's type, or an error naming the field and the value."""
    if kind == "number":
        number = parse_number(text)
        if number is None:
            raise InvalidInputError(f"{key}: {text!r} is not a number (write 1250 or 12.5)")
        return _stored_number(number)
    if kind == "date":
        day = parse_date(text)
        if day is None:
            raise InvalidInputError(f"{key}: {text!r} is not a date (write 2027-01-31)")
        return day.isoformat()
    return text


def check_value(key: str, kind: FieldType, value: object) -> StoredValue:
    """A value given through the API checked against its field's type: text is a string, a number a
    JSON number, a date an ISO `YYYY-MM-DD` string. Nothing is converted from another type."""
    if kind == "text":
        if isinstance(value, str):
            return value
        raise InvalidInputError(f"custom field {key!r} is text: give a string, not {value!r}")
    if kind == "number":
        if isinstance(value, int | float) and not isinstance(value, bool) and Decimal(value).is_finite():
            return value
        raise InvalidInputError(f"custom field {key!r} is a number: give a JSON number, not {value!r}")
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise InvalidInputError(f"custom field {key!r} is a date: give it as YYYY-MM-DD, not {value!r}")


def typed_value(kind: FieldType, stored: object) -> TypedValue | None:
    """A stored value read in its field's type; None when it is empty or does not fit the type (a
    value kept from before the field had a definition)."""
    if stored is None or stored == "" or isinstance(stored, bool):
        return None
    if kind == "number":
        if isinstance(stored, int):
            return stored
        return Decimal(repr(stored)) if isinstance(stored, float) else None
    if kind == "date":
        try:
            return date.fromisoformat(stored) if isinstance(stored, str) else None
        except ValueError:
            return None
    return stored if isinstance(stored, str) else None


def typed_values(types: Mapping[str, FieldType], stored: Mapping[str, object]) -> dict[str, TypedValue]:
    """Every defined, non-empty value of one record, typed; keys without a definition are left out."""
    values: dict[str, TypedValue] = {}
    for key, kind in types.items():
        value = typed_value(kind, stored.get(key))
        if value is not None:
            values[key] = value
    return values


def values_from_text(
    types: Mapping[str, FieldType], texts: Mapping[str, str]
) -> dict[str, StoredValue | None]:
    """Text typed in a form or a CSV cell, read in each field's type; an empty text clears the field.
    Every misfit is named at once."""
    values: dict[str, StoredValue | None] = {}
    problems: list[str] = []
    for key, text in texts.items():
        if key not in types:
            raise InvalidInputError(f"{key!r} is not a custom field here; reload the page")
        try:
            values[key] = parse_text(key, types[key], text.strip()) if text.strip() else None
        except InvalidInputError as error:
            problems.append(str(error))
    if problems:
        raise InvalidInputError("; ".join(problems))
    return values
