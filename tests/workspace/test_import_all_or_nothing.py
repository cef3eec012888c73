"""A CSV import stores all of its rows or none of them, and every attempt leaves an audit entry: one
for an import that succeeded, one for a file or a user that was refused, and one for an import that
failed or was interrupted part-way (issue 15, item 4)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team
from touchline.db import session_scope
from touchline.models import AuditEntry, Company, Contact
from touchline.workspace import importing, service
from touchline.workspace.permissions import Actor

ROWS = 20
INTERRUPTED_AT = 8

CONTACTS = "email,name,plan\n" + "".join(f"c{n}@customer.example,Contact {n},{n}\n" for n in range(ROWS))
COMPANIES = "name,domains\n" + "".join(f"Company {n},c{n}.example\n" for n in range(ROWS))


def _counts(sessions: sessionmaker[Session]) -> tuple[int, int]:
    with session_scope(sessions) as session:
        contacts = session.scalar(select(func.count()).select_from(Contact))
        companies = session.scalar(select(func.count()).select_from(Company))
    return contacts or 0, companies or 0


def _audits(sessions: sessionmaker[Session], action: str) -> list[dict[str, Any]]:
    with session_scope(sessions) as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.created_at)
        )
        return [dict(entry.details) for entry in entries]


def _interrupt_at(row: int, error: BaseException) -> importing.ProgressCallback:
    def progress(done: int, _total: int) -> None:
        if done == row:
            raise error

    return progress


def test_an_import_interrupted_inside_its_transaction_leaves_nothing(
    sessions: sessionmaker[Session], team: Team
) -> None:
    """The rows before the interruption were each written in a savepoint: on SQLite a savepoint
    taken outside a transaction used to commit on release, so they stayed."""
    actor = Actor.operator(team.workspace_id)
    with pytest.raises(KeyboardInterrupt), session_scope(sessions) as session:
        importing.import_companies(
            session, actor, COMPANIES.encode(), progress=_interrupt_at(INTERRUPTED_AT, KeyboardInterrupt())
        )
    assert _counts(sessions) == (0, 0)


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (KeyboardInterrupt(), "interrupted"),
        (OperationalError("INSERT", {}, Exception("database is locked")), "failed"),
    ],
    ids=["ctrl-c", "database error"],
)
def test_an_interrupted_import_stores_nothing_is_audited_and_a_rerun_imports_everything(
    sessions: sessionmaker[Session], team: Team, error: BaseException, outcome: str
) -> None:
    actor = Actor.operator(team.workspace_id)
    with pytest.raises(type(error)):
        importing.run_import(
            sessions,
            actor,
            "contacts",
            CONTACTS.encode(),
            progress=_interrupt_at(INTERRUPTED_AT, error),
        )
    assert _counts(sessions) == (0, 0)
    with session_scope(sessions) as session:
        assert service.custom_field_types(session, team.workspace_id, "contact") == {}
    [failed] = _audits(sessions, "import.contacts")
    assert failed["outcome"] == outcome
    assert (failed["rows"], failed["rows_read"], failed["created"]) == (ROWS, INTERRUPTED_AT, 0)
    assert "nothing was imported" in failed["reason"]

    report = importing.run_import(sessions, actor, "contacts", CONTACTS.encode())
    assert (report.created, report.updated, report.errors) == (ROWS, 0, [])
    assert _counts(sessions) == (ROWS, 0)
    assert _audits(sessions, "import.contacts")[-1] == {
        "outcome": "imported",
        "rows": ROWS,
        "rows_read": ROWS,
        "created": ROWS,
        "updated": 0,
        "errors": 0,
    }


def test_a_database_error_inside_a_row_fails_the_whole_import(
    sessions: sessionmaker[Session], team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database error is not a problem of one row: it ends the import instead of being reported as
    that row's error while the other rows are kept."""
    create_company = service.create_company
    calls = 0

    def failing(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == INTERRUPTED_AT:
            raise OperationalError("INSERT INTO companies", {}, Exception("disk I/O error"))
        return create_company(*args, **kwargs)

    monkeypatch.setattr(service, "create_company", failing)
    actor = Actor.operator(team.workspace_id)
    with pytest.raises(OperationalError):
        importing.run_import(sessions, actor, "companies", COMPANIES.encode())
    assert _counts(sessions) == (0, 0)
    [failed] = _audits(sessions, "import.companies")
    assert failed["outcome"] == "failed"
    assert failed["rows_read"] == INTERRUPTED_AT - 1
    assert "disk I/O error" in failed["reason"]


def test_refusals_are_audited(client: TestClient, sessions: sessionmaker[Session], team: Team) -> None:
    unreadable = client.post(
        "/api/v1/imports/companies",
        files={"file": ("c.csv", 'name,domains\n"Acme,acme.example\n', "text/csv")},
        headers=team.headers(),
    )
    assert unreadable.status_code == 422
    forbidden = client.post(
        "/api/v1/imports/contacts",
        files={"file": ("c.csv", CONTACTS, "text/csv")},
        headers=team.headers("viewer"),
    )
    assert forbidden.status_code == 403
    [refused_file] = _audits(sessions, "import.companies")
    assert refused_file["outcome"] == "refused"
    assert "line 2:" in refused_file["reason"]
    [refused_user] = _audits(sessions, "import.contacts")
    assert refused_user["outcome"] == "refused"
    assert _counts(sessions) == (0, 0)
    # The admin sees both in the audit log the API shows.
    log = client.get("/api/v1/audit-log", headers=team.headers()).json()
    assert [entry["action"] for entry in log].count("import.companies") == 1
