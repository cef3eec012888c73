"""The `touchline` command: serve, worker, database, and the operator's workspace commands."""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.orm import Session

from touchline.config import Settings
from touchline.db import make_engine, make_sessionmaker, session_scope
from touchline.kit.crypto import SecretBox
from touchline.kit.errors import NotFoundError, TouchlineError
from touchline.workspace import importing, service
from touchline.workspace.permissions import Actor

app = typer.Typer(help="touchline: every customer conversation in one place.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
workspace_app = typer.Typer(help="Workspaces (one per organisation).", no_args_is_help=True)
user_app = typer.Typer(help="Users of a workspace.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
import_app = typer.Typer(help="Import companies and contacts from CSV.", no_args_is_help=True)
queue_app = typer.Typer(help="The job queue.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(workspace_app, name="workspace")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(import_app, name="import")
app.add_typer(queue_app, name="queue")

console = Console()
errors = Console(stderr=True)

Workspace = Annotated[str, typer.Option("--workspace", "-w", help="Workspace id or name")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


@contextmanager
def _transaction(settings: Settings) -> Iterator[Session]:
    engine = make_engine(settings.resolved_database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            yield session
    except TouchlineError as error:
        raise _fail(str(error)) from None
    finally:
        engine.dispose()


def _settings() -> Settings:
    settings = Settings()
    settings.ensure_data_dir()
    return settings


def _upgrade(settings: Settings) -> None:
    from touchline.schema import upgrade

    upgrade(settings.resolved_database_url)


def _operator(session: Session, reference: str) -> Actor:
    return Actor.operator(service.find_workspace(session, reference).id)


# --- processes -----------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    migrate: Annotated[bool, typer.Option(help="Upgrade the database schema first")] = True,
    worker: Annotated[bool, typer.Option(help="Run jobs in this process too")] = True,
) -> None:
    """Run the API, pages and (by default) an in-process worker."""
    import uvicorn

    from touchline.app import create_app

    settings = _settings()
    if migrate:
        _upgrade(settings)
    settings.in_process_worker = worker
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


@app.command()
def worker(threads: Annotated[int, typer.Option(help="Jobs run at once in this process")] = 2) -> None:
    """Run a separate worker that takes jobs from the queue."""
    import touchline.app  # noqa: F401 -- importing the app declares every feature's jobs
    from touchline.worker import configure_queue

    settings = _settings()
    console.print(
        f"worker: {threads} thread(s) on the {'Redis' if settings.uses_redis_queue else 'SQLite'} queue"
    )
    configure_queue(settings).run_worker(threads)


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
) -> None:
    """Create (or refresh) a demo workspace, print how to log in, and serve."""
    from touchline.demo import ensure_demo_workspace

    settings = _settings()
    _upgrade(settings)
    password = secrets.token_urlsafe(12)
    with _transaction(settings) as session:
        email = ensure_demo_workspace(session, SecretBox(settings.secret_keys), settings, password)
    console.rule("touchline demo")
    console.print(f"Open  [bold]http://{host}:{port}/login[/]")
    console.print(f"Email [bold]{email}[/]   Password [bold]{password}[/]")
    console.rule()
    serve(host=host, port=port, migrate=False, worker=True)


@queue_app.command("ping")
def queue_ping(timeout: Annotated[float, typer.Option(help="Seconds to wait for a worker")] = 10.0) -> None:
    """Send a job through the queue and wait for a worker to answer it."""
    from touchline.worker import configure_queue

    queue = configure_queue(_settings())
    try:
        round_trip = queue.ping_worker(timeout)
    finally:
        queue.close()
    if round_trip is None:
        raise _fail(f"no worker answered within {timeout:g} s; start one with `touchline worker`")
    console.print(f"a worker answered in {round_trip * 1000:.0f} ms")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Upgrade the database schema to the newest revision."""
    settings = _settings()
    _upgrade(settings)
    console.print("database schema is up to date")


# --- workspaces, users, tokens -------------------------------------------------------------------


@workspace_app.command("create")
def workspace_create(
    name: str,
    internal_domain: Annotated[
        list[str] | None,
        typer.Option("--internal-domain", help="Your staff's own domain; repeat for several"),
    ] = None,
) -> None:
    """Create a workspace and print its id."""
    settings = _settings()
    with _transaction(settings) as session:
        workspace = service.create_workspace(
            session,
            SecretBox(settings.secret_keys),
            name,
            internal_domains=internal_domain or [],
            inbound_domain=settings.inbound_domain,
        )
        workspace_id = workspace.id
    typer.echo(str(workspace_id))


@workspace_app.command("show")
def workspace_show(
    workspace: Annotated[str, typer.Argument(help="Workspace id or name")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show a workspace's settings, roles and counts."""
    with _transaction(_settings()) as session:
        summary = service.workspace_summary(session, service.find_workspace(session, workspace))
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    table = Table(show_header=False, title=str(summary["name"]))
    for key, value in summary.items():
        table.add_row(key, json.dumps(value, default=str) if isinstance(value, list | dict) else str(value))
    console.print(table)


@user_app.command("add")
def user_add(
    email: str,
    workspace: Workspace,
    role: Annotated[str, typer.Option(help="Role name (Admin, Member, Viewer or your own)")] = "Member",
    name: Annotated[str, typer.Option(help="Display name")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read a password from stdin")
    ] = False,
) -> None:
    """Add a user to a workspace and print their id."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    if password_stdin and not password:
        raise _fail("--password-stdin was given but standard input held no password")
    with _transaction(_settings()) as session:
        user = service.add_user(
            session, _operator(session, workspace), email, name=name, role=role, password=password
        )
        user_id = user.id
    typer.echo(str(user_id))


@token_app.command("create")
def token_create(
    workspace: Workspace,
    user: Annotated[str, typer.Option("--user", help="The user the token acts as")],
    name: Annotated[str, typer.Option(help="What the token is for")] = "command line",
) -> None:
    """Create an API token for a user and print it (it is shown only once)."""
    with _transaction(_settings()) as session:
        operator = _operator(session, workspace)
        owner = service.find_user_by_email(session, operator, user)
        token, _row = service.create_api_token(session, service.actor_for(owner), name)
    typer.echo(token)


# --- imports -------------------------------------------------------------------------------------


def _run_import(workspace: str, file: Path, kind: str) -> None:
    if not file.is_file():
        raise _fail(f"{file} is not a file")
    data = file.read_bytes()
    run = importing.import_companies if kind == "companies" else importing.import_contacts
    with Progress(
        TextColumn(f"importing {kind}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
    ) as progress:
        task = progress.add_task(kind, total=None)
        with _transaction(_settings()) as session:
            report = run(
                session,
                _operator(session, workspace),
                data,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    console.print(f"{kind}: {report.created} created, {report.updated} updated, {len(report.errors)} failed")
    if report.errors:
        table = Table("line", "error", title="rows not imported")
        for row_error in report.errors:
            table.add_row(str(row_error.row), row_error.message)
        console.print(table)
        raise typer.Exit(1)


@import_app.command("companies")
def import_companies(workspace: Workspace, file: Annotated[Path, typer.Argument(help="CSV file")]) -> None:
    """Columns: name, domains (several separated by ';'), optional account_owner (a user's email)."""
    _run_import(workspace, file, "companies")


@import_app.command("contacts")
def import_contacts(workspace: Workspace, file: Annotated[Path, typer.Argument(help="CSV file")]) -> None:
    """Columns: email, name, company (a company's name or one of its domains)."""
    _run_import(workspace, file, "contacts")


def main() -> None:
    try:
        app()
    except NotFoundError as error:
        errors.print(f"[bold red]error:[/] {error}")
        sys.exit(1)


if __name__ == "__main__":
    main()
