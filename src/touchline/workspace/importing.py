"""CSV import of companies and contacts, row by row, with a report of every row that failed; extra
columns become typed custom fields.

An import is all-or-nothing: `run_import` runs it in one transaction, so an import that fails or is
interrupted part-way stores none of its rows, and it records every attempt in the audit log
(imported, refused, failed or interrupted)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

from touchline.db import session_scope
from touchline.kit.errors import InvalidInputError, NotFoundError, TouchlineError
from touchline.workspace import service
from touchline.workspace.custom_fields import (
    FieldKind,
    FieldType,
    detect_type,
    normalise_key,
    values_from_text,
)
from touchline.workspace.permissions import Actor, Permission

MAX_IMPORT_BYTES = 20 * 1024 * 1024

ProgressCallback = Callable[[int, int], None]
ImportKind = Literal["companies", "contacts"]
_REASON_LIMIT = 2000  # characters of an error kept in its audit entry


@dataclass(frozen=True)
class RowError:
    row: int  # 1-based line number in the file, the header being line 1
    message: str


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.created + self.updated + len(self.errors)


@dataclass(frozen=True)
class CustomColumn:
    """An extra CSV column: the custom field it fills."""

    index: int
    label: str
    key: str


@dataclass
class _Table:
    rows: list[dict[str, str]]  # known columns by name
    cells: list[list[str]]  # every row's cells, in column order
    lines: list[int]  # the line each row starts on
    custom: list[CustomColumn]


class UnreadableCsvError(InvalidInputError):
    """A file that cannot be read as CSV: refused whole, nothing imported."""

    def __init__(self, problems: list[RowError]) -> None:
        self.problems = problems
        listed = "; ".join(
            f"line {problem.row}: {problem.message}" for problem in problems[:_LISTED_PROBLEMS]
        )
        more = len(problems) - _LISTED_PROBLEMS
        super().__init__(
            "the file cannot be read as CSV, so nothing was imported: "
            + listed
            + (f"; and {more} more problem{'s' if more > 1 else ''}" if more > 0 else "")
        )


_LISTED_PROBLEMS = 20


def _records(text: str) -> tuple[list[tuple[int, list[str]]], list[RowError]]:
    """(line a record starts on, its cells) for each non-blank record, and what cannot be read.

    `strict` makes the csv module refuse a quote it cannot close or a character after a closing
    quote, instead of reading the rest of the file into one cell; reading stops at such an error,
    since nothing after it can be trusted to start where the file meant it to.
    """
    reader = csv.reader(io.StringIO(text), strict=True)
    records: list[tuple[int, list[str]]] = []
    problems: list[RowError] = []
    start = 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            problems.append(RowError(start, _csv_problem(error)))
            break
        if record:
            if any("\x00" in cell for cell in record):
                problems.append(RowError(start, "a NUL character: this is not CSV text"))
            records.append((start, record))
        start = reader.line_num + 1
    return records, problems


def _csv_problem(error: csv.Error) -> str:
    text = str(error)
    if "end of data" in text:
        return "a quoted cell is never closed (a quote is missing)"
    if "field limit" in text:
        return f"a cell longer than {csv.field_size_limit():,} characters"
    return f"not CSV: {text}"


def _shape_problems(
    header_line: int, header: list[str], records: list[tuple[int, list[str]]]
) -> list[RowError]:
    """Columns that give one key, and rows with more cells than the header names."""
    problems = []
    seen: dict[str, str] = {}
    for name in header:
        key = normalise_key(name) if name else ""
        if key and key in seen:
            problems.append(
                RowError(
                    header_line,
                    f"the columns {seen[key]!r} and {name!r} both give the field key {key!r}; rename one",
                )
            )
        seen.setdefault(key, name)
    for line, record in records:
        if len(record) > len(header):
            problems.append(RowError(line, f"{len(record)} fields where the header names {len(header)}"))
    return problems


def _read_table(data: bytes, known: set[str], required: set[str]) -> _Table:
    if len(data) > MAX_IMPORT_BYTES:
        raise InvalidInputError(f"the file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInputError("the file is not UTF-8 text; save it as CSV UTF-8 and try again") from None
    records, problems = _records(text)
    header_line, header_cells = records.pop(0) if records else (1, [])
    header = [name.strip() for name in header_cells]
    problems += _shape_problems(header_line, header, records)
    if problems:
        raise UnreadableCsvError(sorted(problems, key=lambda problem: problem.row))
    lines = [line for line, _ in records]
    cells = [[cell.strip() for cell in record] + [""] * (len(header) - len(record)) for _, record in records]
    columns: dict[str, int] = {}
    custom: list[CustomColumn] = []
    for index, name in enumerate(header):
        if not name:
            if any(record[index] for record in cells):
                raise InvalidInputError(f"column {index + 1} has values but no name in the first line")
            continue
        key = normalise_key(name)
        if key in known:
            columns[key] = index
        else:
            custom.append(CustomColumn(index, name, key))
    missing = required - columns.keys()
    if missing:
        raise InvalidInputError(
            f"the CSV has no {', '.join(sorted(missing))} column; the first line must name the columns"
        )
    rows = [{name: record[index] for name, index in columns.items()} for record in cells]
    return _Table(rows, cells, lines, custom)


def _custom_types(
    session: Session, actor: Actor, kind: FieldKind, table: _Table, overrides: Mapping[str, FieldType]
) -> dict[str, FieldType]:
    """The type of every extra column: its field's, when the workspace has it already; else the
    override, or the type its values show. New fields are created here."""
    keys = {column.key for column in table.custom}
    unknown = set(overrides) - keys
    if unknown:
        raise InvalidInputError(
            f"a field type is given for {', '.join(sorted(unknown))}, which is not an extra column of the CSV"
        )
    existing = service.custom_field_types(session, actor.workspace_id, kind)
    types: dict[str, FieldType] = {}
    for column in table.custom:
        wanted = overrides.get(column.key)
        if column.key in existing:
            if wanted is not None and wanted != existing[column.key]:
                raise InvalidInputError(
                    f"{column.key} is already a {existing[column.key]} field; it cannot be imported as "
                    f"{wanted} (delete the field first to change its type)"
                )
            types[column.key] = existing[column.key]
            continue
        chosen = wanted or detect_type(record[column.index] for record in table.cells)
        service.create_custom_field(session, actor, kind, column.label, chosen, key=column.key)
        types[column.key] = chosen
    return types


def _custom_values(table: _Table, types: Mapping[str, FieldType], record: list[str]) -> dict[str, object]:
    """One row's filled extra cells read in their fields' types (an empty cell changes nothing)."""
    filled = {column.key: record[column.index] for column in table.custom if record[column.index]}
    return dict(values_from_text(types, filled))


def import_companies(
    session: Session,
    actor: Actor,
    data: bytes,
    progress: ProgressCallback | None = None,
    field_types: Mapping[str, FieldType] | None = None,
) -> ImportReport:
    """Columns `name`, `domains` (several separated by `;`), optional `account_owner` (a user's email);
    every other column is a custom field of companies (typed from its values unless `field_types`
    names its type). An empty cell leaves a field as it was."""
    actor.require(Permission.EDIT_CUSTOMERS)
    report = ImportReport()
    table = _read_table(data, {"name", "domains", "account_owner"}, {"name", "domains"})
    types = _custom_types(session, actor, "company", table, field_types or {})
    rows = table.rows
    for done, (line, row, record) in enumerate(zip(table.lines, rows, table.cells, strict=True), start=1):
        domains = [domain for domain in row.get("domains", "").split(";") if domain.strip()]
        owner = row.get("account_owner") or None
        try:
            custom = _custom_values(table, types, record)
            with session.begin_nested():
                existing = service.find_company(session, actor, row["name"]) if row["name"] else None
                if existing is not None and existing.name.lower() == row["name"].lower():
                    for domain in domains:
                        service.add_company_domain(session, actor, existing.id, domain)
                    if owner or custom:
                        service.update_company(
                            session, actor, existing.id, account_owner=owner, custom_fields=custom
                        )
                    report.updated += 1
                else:
                    service.create_company(
                        session,
                        actor,
                        row["name"],
                        domains=domains,
                        account_owner=owner,
                        custom_fields=custom,
                    )
                    report.created += 1
        except TouchlineError as error:
            report.errors.append(RowError(line, str(error)))
        if progress is not None:
            progress(done, len(rows))
    service.record_audit(
        session, actor, "import.companies", "workspace", actor.workspace_id, _summary(report)
    )
    return report


def import_contacts(
    session: Session,
    actor: Actor,
    data: bytes,
    progress: ProgressCallback | None = None,
    field_types: Mapping[str, FieldType] | None = None,
) -> ImportReport:
    """Columns `email`, `name`, `company` (a company's name or one of its domains); every other
    column is a custom field of contacts, as for companies."""
    actor.require(Permission.EDIT_CUSTOMERS)
    report = ImportReport()
    table = _read_table(data, {"email", "name", "company"}, {"email"})
    types = _custom_types(session, actor, "contact", table, field_types or {})
    rows = table.rows
    for done, (line, row, record) in enumerate(zip(table.lines, rows, table.cells, strict=True), start=1):
        try:
            custom = _custom_values(table, types, record)
            with session.begin_nested():
                company_id = None
                if row.get("company"):
                    company = service.find_company(session, actor, row["company"])
                    if company is None:
                        raise NotFoundError(
                            f"no company named {row['company']!r} or with that domain; import companies first"
                        )
                    company_id = company.id
                existing = service.find_contact_by_email(session, actor, row["email"])
                if existing is not None:
                    service.update_contact(
                        session,
                        actor,
                        existing.id,
                        name=row.get("name") or None,
                        company_id=company_id,
                        custom_fields=custom,
                    )
                    report.updated += 1
                else:
                    service.create_contact(
                        session,
                        actor,
                        row["email"],
                        name=row.get("name", ""),
                        company_id=company_id,
                        custom_fields=custom,
                    )
                    report.created += 1
        except TouchlineError as error:
            report.errors.append(RowError(line, str(error)))
        if progress is not None:
            progress(done, len(rows))
    service.record_audit(session, actor, "import.contacts", "workspace", actor.workspace_id, _summary(report))
    return report


def _summary(report: ImportReport) -> dict[str, object]:
    return {
        "outcome": "imported",
        "rows": report.total,
        "rows_read": report.total,
        "created": report.created,
        "updated": report.updated,
        "errors": len(report.errors),
    }


def run_import(
    sessions: sessionmaker[Session],
    actor: Actor,
    kind: ImportKind,
    data: bytes,
    progress: ProgressCallback | None = None,
    field_types: Mapping[str, FieldType] | None = None,
) -> ImportReport:
    """Import a CSV file in one transaction and audit the attempt whatever its end.

    An import that succeeds commits its rows with its audit entry. One that is refused (an unreadable
    file, a missing permission), fails (a database error) or is interrupted (Ctrl-C) is rolled back
    whole and the error raised again, after an audit entry written in a transaction of its own says
    what happened and how far it got."""
    run = import_companies if kind == "companies" else import_contacts
    read = (0, 0)  # rows read so far, rows in the file

    def counted(done: int, total: int) -> None:
        nonlocal read
        read = (done, total)
        if progress is not None:
            progress(done, total)

    try:
        with session_scope(sessions) as session:
            return run(session, actor, data, progress=counted, field_types=field_types)
    except TouchlineError as error:
        _audit_end(sessions, actor, kind, {"outcome": "refused", "reason": _reason(error)}, error)
        raise
    except BaseException as error:
        outcome = "failed" if isinstance(error, Exception) else "interrupted"
        done, total = read
        details = {
            "outcome": outcome,
            "rows": total,
            "rows_read": done,
            "created": 0,
            "updated": 0,
            "reason": f"{outcome} after {done} of {total} rows, so nothing was imported: {_reason(error)}",
        }
        _audit_end(sessions, actor, kind, details, error)
        raise


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if not isinstance(error, TouchlineError):
        text = f"{type(error).__name__}: {text}"
    return text[:_REASON_LIMIT]


def _audit_end(
    sessions: sessionmaker[Session],
    actor: Actor,
    kind: ImportKind,
    details: dict[str, object],
    error: BaseException,
) -> None:
    """The audit entry of an import that did not commit. The database may be what failed: then the
    entry cannot be written either, and the import's own error is the one raised, with a note."""
    try:
        with session_scope(sessions) as session:
            service.record_audit(session, actor, f"import.{kind}", "workspace", actor.workspace_id, details)
    except Exception as audit_error:
        error.add_note(f"the import's audit entry could not be written either: {audit_error}")
