"""Imports: companies and contacts from CSV, and mail from mbox files, maildirs and folders."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from touchline.cli.common import (
    Workspace,
    configure_jobs,
    console,
    database_sessions,
    errors,
    fail,
    load_settings,
    operator_of,
)
from touchline.kit.errors import TouchlineError
from touchline.kit.runtime import tune_garbage_collector

if TYPE_CHECKING:
    from touchline.workspace.importing import ImportKind

import_app = typer.Typer(help="Import companies and contacts from CSV.", no_args_is_help=True)


FieldTypes = Annotated[
    list[str] | None,
    typer.Option(
        "--field-type",
        help="COLUMN=TYPE (text, number or date), repeatable: the type of an extra column's custom field, "
        "instead of the one its values suggest",
    ),
]


def _run_import(workspace: str, file: Path, kind: ImportKind, field_types: list[str] | None) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from touchline.db import session_scope
    from touchline.workspace import importing
    from touchline.workspace.custom_fields import parse_type_overrides

    if not file.is_file():
        raise fail(f"{file} is not a file")
    data = file.read_bytes()
    try:
        overrides = parse_type_overrides(field_types or [])
    except TouchlineError as error:
        raise fail(str(error)) from None
    with Progress(
        TextColumn(f"importing {kind}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
    ) as progress:
        task = progress.add_task(kind, total=None)
        with database_sessions(load_settings()) as sessions:
            with session_scope(sessions) as session:
                actor = operator_of(session, workspace)
            try:
                report = importing.run_import(
                    sessions,
                    actor,
                    kind,
                    data,
                    progress=lambda done, total: progress.update(task, completed=done, total=total),
                    field_types=overrides,
                )
            except KeyboardInterrupt:
                raise fail(f"interrupted: no {kind} were imported", code=130) from None
    console.print(f"{kind}: {report.created} created, {report.updated} updated, {len(report.errors)} failed")
    if report.errors:
        table = Table("line", "error", title="rows not imported")
        for row_error in report.errors:
            table.add_row(str(row_error.row), row_error.message)
        console.print(table)
        raise typer.Exit(1)


@import_app.command("companies")
def import_companies(
    workspace: Workspace,
    file: Annotated[Path, typer.Argument(help="CSV file")],
    field_type: FieldTypes = None,
) -> None:
    """Columns: name, domains (several separated by ';'), optional account_owner (a user's email).
    Every other column becomes a custom field of companies (number, date or text, from its values)."""
    _run_import(workspace, file, "companies", field_type)


@import_app.command("contacts")
def import_contacts(
    workspace: Workspace,
    file: Annotated[Path, typer.Argument(help="CSV file")],
    field_type: FieldTypes = None,
) -> None:
    """Columns: email, name, company (a company's name or one of its domains).
    Every other column becomes a custom field of contacts (number, date or text, from its values)."""
    _run_import(workspace, file, "contacts", field_type)


@import_app.command("mail")
def import_mail(
    path: Annotated[Path, typer.Argument(help="An mbox file, a maildir, or a folder of message files")],
    user: Annotated[str, typer.Option("--user", help="The user the mail belongs to")],
) -> None:
    """Import mail through the same keep-or-ignore pipeline as sync."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from sqlalchemy import select

    from touchline.db import make_engine, make_sessionmaker, session_scope
    from touchline.inbound.importing import count_messages
    from touchline.inbound.importing import import_mail as run_import
    from touchline.models import User

    tune_garbage_collector()
    if not path.exists():
        raise fail(f"{path} does not exist")
    settings = load_settings()
    configure_jobs(settings)  # storing mail sends jobs (engagement finds replies among it)
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    with session_scope(sessions) as session:
        owner = session.scalar(select(User).where(User.email == user.strip().lower()))
        if owner is None:
            raise fail(f"no user {user}; `touchline user add` adds one")
        workspace_id, user_id = owner.workspace_id, owner.id
    total = count_messages(path)
    with Progress(
        TextColumn("importing mail"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=errors
    ) as progress:
        task = progress.add_task("mail", total=total)
        report = run_import(
            sessions, workspace_id, user_id, path, progress=lambda n: progress.advance(task, n)
        )
    engine.dispose()
    console.print(
        f"{report.read} read: {report.kept} kept ({report.stored_new} new), "
        f"{report.ignored} not customer mail, {report.quarantined} quarantined, "
        f"{len(report.unreadable)} unreadable"
    )
    if report.unreadable:
        table = Table("item", "reason", title="not read")
        for label, reason in report.unreadable:
            table.add_row(label, reason)
        console.print(table)
        raise typer.Exit(1)
