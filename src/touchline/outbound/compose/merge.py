"""The merge context: what templates, recipient filters and sequence conditions read about one
recipient, the recipient's company and the sender.

Fields are addressed by the same path everywhere: `enduser.first_name`, `company.name`,
`company.custom.renewal_date`, `sender.name`. An empty value (None or an empty text) counts as
missing, so a template that needs it fails before the email is sent instead of showing a blank.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal
from typing import Final

FieldValue = str | int | float | Decimal | date | bool
"""A typed value: text, a number, a date or a yes/no flag."""


@dataclass(frozen=True, slots=True)
class EnduserFields:
    email: str
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = None
    phone: str | None = None
    custom: Mapping[str, FieldValue | None] = field(default_factory=dict)

    @property
    def name(self) -> str | None:
        full = " ".join(part for part in (self.first_name, self.last_name) if part)
        return full or None


@dataclass(frozen=True, slots=True)
class CompanyFields:
    name: str
    domain: str | None = None
    owner_name: str | None = None
    owner_email: str | None = None
    custom: Mapping[str, FieldValue | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SenderFields:
    name: str
    email: str
    title: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class MergeContext:
    """One recipient's merge fields; `company` is None for an enduser without a company."""

    enduser: EnduserFields
    sender: SenderFields
    company: CompanyFields | None = None


def _standard_fields(cls: type) -> tuple[str, ...]:
    names = [item.name for item in fields(cls) if item.name != "custom"]
    if cls is EnduserFields:
        names.append("name")
    return tuple(names)


STANDARD_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "enduser": _standard_fields(EnduserFields),
    "company": _standard_fields(CompanyFields),
    "sender": _standard_fields(SenderFields),
}
"""The fixed fields of each kind; `enduser` and `company` also have `custom.<key>` fields."""

CUSTOM_KINDS: Final = frozenset({"enduser", "company"})


class UnknownFieldError(ValueError):
    """A field path that names no merge field."""


@dataclass(frozen=True, slots=True)
class FieldPath:
    """`company.custom.tier` -> kind `company`, custom, name `tier`."""

    kind: str
    name: str
    custom: bool = False

    def __str__(self) -> str:
        return f"{self.kind}.custom.{self.name}" if self.custom else f"{self.kind}.{self.name}"


def parse_field_path(text: str) -> FieldPath:
    """Check a dotted path against the merge fields; raises UnknownFieldError saying what exists."""
    kind, dot, rest = text.strip().partition(".")
    if kind not in STANDARD_FIELDS or not dot or not rest:
        raise UnknownFieldError(
            f"{text!r} is not a field: a field starts with enduser., company. or sender. "
            "(for example enduser.email or company.custom.tier)"
        )
    if rest.startswith("custom."):
        name = rest.removeprefix("custom.")
        if kind not in CUSTOM_KINDS or not name:
            raise UnknownFieldError(f"{text!r} is not a field: only enduser and company have custom fields")
        return FieldPath(kind, name, custom=True)
    if rest not in STANDARD_FIELDS[kind]:
        known = ", ".join(f"{kind}.{name}" for name in STANDARD_FIELDS[kind])
        extra = f", {kind}.custom.<name>" if kind in CUSTOM_KINDS else ""
        raise UnknownFieldError(f"{text!r} is not a field; the {kind} fields are {known}{extra}")
    return FieldPath(kind, rest)


def _record(context: MergeContext, kind: str) -> EnduserFields | CompanyFields | SenderFields | None:
    if kind == "enduser":
        return context.enduser
    if kind == "company":
        return context.company
    return context.sender


def field_value(context: MergeContext, path: FieldPath) -> FieldValue | None:
    """The value at `path`, or None when it is empty or the enduser has no company."""
    record = _record(context, path.kind)
    if record is None:
        return None
    if path.custom:
        custom: Mapping[str, FieldValue | None] = getattr(record, "custom", {})
        value = custom.get(path.name)
    else:
        value = getattr(record, path.name)
    return None if value is None or value == "" else value


def template_values(context: MergeContext) -> dict[str, dict[str, FieldValue | dict[str, FieldValue]]]:
    """Every non-empty field by kind, the shape templates read (`enduser.first_name`,
    `company.custom.tier`); empty fields are left out so that using one is a missing-field error.
    Empty means what it means to `field_value`; the fields are read directly, as a bulk send makes
    this once for each of thousands of recipients."""
    values: dict[str, dict[str, FieldValue | dict[str, FieldValue]]] = {}
    for kind, names in STANDARD_FIELDS.items():
        record = _record(context, kind)
        present: dict[str, FieldValue | dict[str, FieldValue]] = {}
        if record is not None:
            for name in names:
                value = getattr(record, name)
                if value is not None and value != "":
                    present[name] = value
        if kind in CUSTOM_KINDS:
            custom: Mapping[str, FieldValue | None] = getattr(record, "custom", {}) if record else {}
            present["custom"] = {
                key: value for key, value in custom.items() if value is not None and value != ""
            }
        values[kind] = present
    return values
