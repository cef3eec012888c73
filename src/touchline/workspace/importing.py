"""CSV import of companies and contacts, row by row, with a report of every row that failed."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from touchline.kit.errors import InvalidInputError, NotFoundError, TouchlineError
from touchline.workspace import service
from touchline.workspace.permissions import Actor, Permission

MAX_IMPORT_BYTES = 20 * 1024 * 1024

ProgressCallback = Callable[[int, int], None]


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


def _rows(data: bytes, required: set[str]) -> list[dict[str, str]]:
    if len(data) > MAX_IMPORT_BYTES:
        raise InvalidInputError(f"the file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInputError("the file is not UTF-8 text; save it as CSV UTF-8 and try again") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = {name.strip().lower() for name in (reader.fieldnames or [])}
    missing = required - columns
    if missing:
        raise InvalidInputError(
            f"the CSV has no {', '.join(sorted(missing))} column; the first line must name the columns"
        )
    return [
        {(key or "").strip().lower(): (value or "").strip() for key, value in row.items()} for row in reader
    ]


def import_companies(
    session: Session, actor: Actor, data: bytes, progress: ProgressCallback | None = None
) -> ImportReport:
    """Columns `name`, `domains` (several separated by `;`), optional `account_owner` (a user's email)."""
    actor.require(Permission.EDIT_CUSTOMERS)
    report = ImportReport()
    rows = _rows(data, {"name", "domains"})
    for line, row in enumerate(rows, start=2):
        domains = [domain for domain in row.get("domains", "").split(";") if domain.strip()]
        owner = row.get("account_owner") or None
        try:
            with session.begin_nested():
                existing = service.find_company(session, actor, row["name"]) if row["name"] else None
                if existing is not None and existing.name.lower() == row["name"].lower():
                    for domain in domains:
                        service.add_company_domain(session, actor, existing.id, domain)
                    if owner:
                        service.update_company(session, actor, existing.id, account_owner=owner)
                    report.updated += 1
                else:
                    service.create_company(session, actor, row["name"], domains=domains, account_owner=owner)
                    report.created += 1
        except TouchlineError as error:
            report.errors.append(RowError(line, str(error)))
        if progress is not None:
            progress(line - 1, len(rows))
    service.record_audit(
        session, actor, "import.companies", "workspace", actor.workspace_id, _summary(report)
    )
    return report


def import_contacts(
    session: Session, actor: Actor, data: bytes, progress: ProgressCallback | None = None
) -> ImportReport:
    """Columns `email`, `name`, `company` (a company's name or one of its domains)."""
    actor.require(Permission.EDIT_CUSTOMERS)
    report = ImportReport()
    rows = _rows(data, {"email"})
    for line, row in enumerate(rows, start=2):
        try:
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
                        session, actor, existing.id, name=row.get("name") or None, company_id=company_id
                    )
                    report.updated += 1
                else:
                    service.create_contact(
                        session, actor, row["email"], name=row.get("name", ""), company_id=company_id
                    )
                    report.created += 1
        except TouchlineError as error:
            report.errors.append(RowError(line, str(error)))
        if progress is not None:
            progress(line - 1, len(rows))
    service.record_audit(session, actor, "import.contacts", "workspace", actor.workspace_id, _summary(report))
    return report


def _summary(report: ImportReport) -> dict[str, int]:
    return {"created": report.created, "updated": report.updated, "errors": len(report.errors)}
