"""The `touchline` command: serve, worker, database, and the operator's workspace commands."""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from touchline.config import Settings
from touchline.db import make_engine, make_sessionmaker, session_scope
from touchline.kit.crypto import SecretBox
from touchline.kit.errors import NotFoundError, TouchlineError
from touchline.kit.runtime import tune_garbage_collector
from touchline.workspace import importing, service
from touchline.workspace.custom_fields import parse_type_overrides
from touchline.workspace.permissions import Actor

if TYPE_CHECKING:
    from touchline.inbound.fetch.service import SyncReport
    from touchline.models import OutboundEmail

app = typer.Typer(help="touchline: every customer conversation in one place.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
workspace_app = typer.Typer(help="Workspaces (one per organisation).", no_args_is_help=True)
user_app = typer.Typer(help="Users of a workspace.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
import_app = typer.Typer(help="Import companies and contacts from CSV.", no_args_is_help=True)
queue_app = typer.Typer(help="The job queue.", no_args_is_help=True)
mailbox_app = typer.Typer(help="Connected mailboxes.", no_args_is_help=True)
emails_app = typer.Typer(help="Stored emails.", no_args_is_help=True)
outbox_app = typer.Typer(help="Emails sent through touchline and what became of them.", no_args_is_help=True)
template_app = typer.Typer(help="Email templates with merge fields.", no_args_is_help=True)
sequence_app = typer.Typer(help="Sequences: enduser playbooks of template steps.", no_args_is_help=True)
bounces_app = typer.Typer(help="Delivery reports (bounces) and automatic replies.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(workspace_app, name="workspace")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(import_app, name="import")
app.add_typer(queue_app, name="queue")
app.add_typer(mailbox_app, name="mailbox")
app.add_typer(emails_app, name="emails")
app.add_typer(outbox_app, name="outbox")
app.add_typer(template_app, name="template")
app.add_typer(sequence_app, name="sequence")
engagement_app = typer.Typer(help="What came of the emails touchline sent.", no_args_is_help=True)
contact_app = typer.Typer(help="Contacts (endusers).", no_args_is_help=True)
app.add_typer(engagement_app, name="engagement")
app.add_typer(contact_app, name="contact")
app.add_typer(bounces_app, name="bounces")
experiment_app = typer.Typer(help="A/B tests of template variants and their decisions.", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")

console = Console()
errors = Console(stderr=True)

Workspace = Annotated[str, typer.Option("--workspace", "-w", help="Workspace id or name")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


@contextmanager
def _transaction(settings: Settings) -> Iterator[Session]:
    with _sessions(settings) as sessions, session_scope(sessions) as session:
        yield session


@contextmanager
def _sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings.resolved_database_url)
    try:
        yield make_sessionmaker(engine)
    except importing.UnreadableCsvError as error:
        raise _fail(str(error), code=2) from None  # an unusable input file, as for triage
    except TouchlineError as error:
        raise _fail(str(error)) from None
    finally:
        engine.dispose()


def _redacted(url: str) -> str:
    """A URL as it may be printed: without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=f"{user}{host}{port}"))


def _log_to_stderr() -> None:
    """Long-running processes log their jobs (`touchline.jobs`: one key=value line per job start,
    end and error) and warnings to stderr, for the service manager's journal."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("huey").setLevel(logging.WARNING)


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
    tune_garbage_collector()
    import uvicorn

    from touchline.app import create_app

    settings = _settings()
    if migrate:
        _upgrade(settings)
    settings.in_process_worker = worker
    inbound = None
    if settings.inbound_smtp_enabled:
        from touchline.inbound.receive.smtp import InboundServer

        inbound = InboundServer(settings)
        try:
            inbound.start()
        except OSError as error:
            raise _fail(
                f"the log address's SMTP port {settings.inbound_smtp_port} is taken ({error}); "
                "set TOUCHLINE_INBOUND_SMTP_PORT or TOUCHLINE_INBOUND_SMTP_ENABLED=false"
            ) from None
        console.print(f"log address SMTP on {settings.inbound_smtp_host}:{settings.inbound_smtp_port}")
    try:
        # Browsers hold notification streams open; at shutdown they are cut after a few seconds and
        # reconnect (to another process, when several serve), resuming from their last event.
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info", timeout_graceful_shutdown=5)
    finally:
        if inbound is not None:
            inbound.stop()


@app.command()
def inbound(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: the settings')")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: the settings')")] = None,
) -> None:
    """Run only the log address's SMTP server (serve starts it too).

    Accepted mail is logged by workers: by one in this process with the embedded defaults
    (TOUCHLINE_IN_PROCESS_WORKER), otherwise by `touchline worker` processes.
    """
    tune_garbage_collector()
    import touchline.jobs  # noqa: F401 -- this process sends the logging job, and may run any job
    from touchline.inbound.receive.smtp import run_inbound_server
    from touchline.worker import configure_queue

    settings = _settings()
    queue = configure_queue(settings)
    try:
        if settings.in_process_worker:
            # The every-minute schedules are the other workers' (or serve's) to run.
            queue.start_in_process(settings.worker_threads, periodic=False)
        run_inbound_server(settings, host, port)
    finally:
        queue.close()


@app.command()
def tracking(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8001,
) -> None:
    """Run only the tracking endpoints (the open pixel and click redirects under /t; serve mounts
    them too). Stateless: several may serve one PostgreSQL database behind a load balancer."""
    tune_garbage_collector()
    import uvicorn

    import touchline.jobs  # noqa: F401 -- this process sends the engagement refresh job
    from touchline.outbound.track.app import create_tracking_app
    from touchline.worker import configure_queue

    settings = _settings()
    engine = make_engine(settings.resolved_database_url)
    queue = configure_queue(settings)
    try:
        application = create_tracking_app(settings, make_sessionmaker(engine), queue, prefix="/t")
        console.print(f"tracking endpoints on http://{host}:{port}/t/")
        # uvloop and httptools (C) rather than asyncio's loop and h11 (pure Python): on one core they
        # roughly halve the server's share of each hit (docs/benchmarks.md, "tracking").
        uvicorn.run(
            application,
            host=host,
            port=port,
            log_level="info",
            access_log=False,
            loop="uvloop",
            http="httptools",
            server_header=False,
        )
    finally:
        queue.close()
        engine.dispose()


@app.command()
def worker(threads: Annotated[int, typer.Option(help="Jobs run at once in this process")] = 2) -> None:
    """Run a separate worker that takes jobs from the queue."""
    tune_garbage_collector()
    import touchline.app  # noqa: F401 -- importing the app declares every feature's jobs
    from touchline.inbound.readers import configure_readers
    from touchline.worker import configure_queue

    settings = _settings()
    _log_to_stderr()
    console.print(
        f"worker: {threads} thread(s) for quick jobs and {threads} for long ones (mailbox syncs) on the "
        f"{'Redis' if settings.uses_redis_queue else 'SQLite'} queue,"
        f" {settings.sync_reader_processes} mail reader process(es)"
    )
    configure_readers(settings.sync_reader_processes).start()
    configure_queue(settings).run_worker(threads)


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    reset: Annotated[
        bool,
        typer.Option(
            "--reset", help="Delete the demo's data (database, sent mail, IMAP mail) and start afresh"
        ),
    ] = False,
) -> None:
    """Create (or refresh) a demo workspace with mailboxes to connect, print how to log in, and serve."""
    from touchline.demo import (
        DEMO_TRUSTED_NETWORKS,
        DEMO_USERS,
        SINK_HOST,
        demo_relay_environment,
        ensure_demo_workspace,
        import_demo_mail,
        mark_if_new,
        start_demo_sink,
    )
    from touchline.demo_imap import start_demo_imap

    if reset:
        _reset_demo()

    os.environ["TOUCHLINE_INBOUND_TRUSTED_NETWORKS"] = DEMO_TRUSTED_NETWORKS

    # A demo is tried against mail servers on this machine or its network (unless told otherwise).
    os.environ.setdefault("TOUCHLINE_ALLOW_PRIVATE_MAIL_HOSTS", "true")
    mark_if_new(_settings())
    imap = start_demo_imap(_settings().data_dir, DEMO_USERS)
    try:
        # A demo mailbox, once connected, sends through the sink too: its SMTP login is the IMAP one.
        sink = start_demo_sink(_settings().data_dir, {a.username: a.password for a in imap.accounts})
    except BaseException:
        imap.stop()
        raise
    # Whatever relay is configured, the demo's outbox sends to its sink: demo mail stays on this machine.
    os.environ.update(demo_relay_environment(sink))
    os.environ["TOUCHLINE_DEMO_SENT_FOLDER"] = str(sink.folder)  # listed on the Sent by the demo page
    try:
        # The Email page names the demo's mailbox to connect.
        os.environ["TOUCHLINE_DEMO_IMAP_HOST"] = imap.host
        os.environ["TOUCHLINE_DEMO_IMAP_PORT"] = str(imap.port)
        os.environ["TOUCHLINE_DEMO_IMAP_PASSWORDS"] = json.dumps(
            {a.username: a.password for a in imap.accounts}
        )
        settings = _settings()
        _upgrade(settings)
        password = secrets.token_urlsafe(12)
        with _transaction(settings) as session:
            email, created = ensure_demo_workspace(
                session, SecretBox(settings.secret_keys), settings, password
            )
        if created:
            _configure_jobs(settings)  # storing mail sends jobs (engagement finds replies among it)
            engine = make_engine(settings.resolved_database_url)
            report = import_demo_mail(make_sessionmaker(engine))
            engine.dispose()
            console.print(f"demo mail: {report.kept} customer emails kept, {report.ignored} internal ignored")
        console.rule("touchline demo")
        console.print(f"Open  [bold]http://{host}:{port}/login[/]")
        console.print(f"Email [bold]{email}[/]   Password [bold]{password}[/]")
        console.print(
            f"Mailboxes to connect on the Email page (IMAP server {imap.host}, port {imap.port}, "
            f"security None; SMTP {SINK_HOST}, port {sink.port}, security None; "
            f"their mail is in {imap.folder}):"
        )
        for account in imap.accounts:
            console.print(
                f"  IMAP username [bold]{account.username}[/]   password [bold]{account.password}[/]"
            )
        console.print(
            f"The log address takes mail sent from this machine as authenticated "
            f"(TOUCHLINE_INBOUND_TRUSTED_NETWORKS={DEMO_TRUSTED_NETWORKS}); other senders need DKIM or SPF"
        )
        console.print(
            f"Sent mail is caught by a local sink (the demo's relay, SMTP on {SINK_HOST}:{sink.port}): "
            f"open [bold]{sink.folder}[/] (one .eml file per message) or, as an admin, the page "
            f"[bold]http://{host}:{port}/demo/sent[/]; nothing is sent on"
        )
        console.print("Start over with [bold]touchline demo --reset[/]")
        console.rule()
        serve(host=host, port=port, migrate=False, worker=True)
    finally:
        imap.stop()
        sink.stop()


def _reset_demo() -> None:
    """Delete the demo's data after saying what goes; refuse a data directory the demo did not create."""
    from touchline.demo import NotDemoDataError, delete_demo_data, demo_data_paths

    try:
        doomed = demo_data_paths(_settings())
    except NotDemoDataError as error:
        raise _fail(f"not resetting: {error}") from None
    console.print("Resetting the demo; deleting:" if doomed else "Resetting the demo: nothing to delete")
    for path in doomed:
        console.print(f"  {path}", soft_wrap=True, markup=False)
    delete_demo_data(doomed)


@queue_app.command("ping")
def queue_ping(timeout: Annotated[float, typer.Option(help="Seconds to wait for a worker")] = 10.0) -> None:
    """Send a job through the queue and wait for a worker to answer it."""
    from touchline.worker import configure_queue

    settings = _settings()
    where = str(settings.queue_file)
    if settings.uses_redis_queue:
        where = f"Redis at {_redacted(settings.queue_url)}"
    try:
        queue = configure_queue(settings)
        try:
            queue.ping()
            round_trip = queue.ping_worker(timeout)
        finally:
            queue.close()
    except Exception as error:
        # One line an operator can act on, not a traceback: the queue itself is out of reach.
        reason = " ".join(str(error).split()) or type(error).__name__
        message = escape(f"the queue ({where}) cannot be reached: {reason}")
        errors.print(f"[bold red]error:[/] {message}", soft_wrap=True)
        raise typer.Exit(1) from None
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


@user_app.command("invite")
def user_invite(
    email: str,
    workspace: Workspace,
    role: Annotated[
        str, typer.Option(help="Role of a new user (Admin, Member, Viewer or your own)")
    ] = "Member",
    name: Annotated[str, typer.Option(help="Display name of a new user")] = "",
) -> None:
    """Invite a user to choose their password through a single-use, expiring link: emailed through the
    relay when one is set, otherwise printed to pass on. A new address is added first; a user without
    a password gets a new invitation (the earlier link stops working)."""
    from touchline.models.base import utcnow
    from touchline.workspace import account_links

    settings = _settings()
    _configure_jobs(settings)
    with _transaction(settings) as session:
        operator = _operator(session, workspace)
        try:
            existing = service.find_user_by_email(session, operator, email)
        except NotFoundError:
            user, issued = account_links.add_user(
                session, operator, settings, email, name=name, role=role, password=None, now=utcnow()
            )
        else:
            user = existing
            issued = account_links.issue(
                session, operator, settings, user.id, account_links.INVITATION, utcnow()
            )
        assert issued is not None  # added without a password
        address, url, emailed = user.email, issued.url, issued.emailed
    typer.echo(f"invitation emailed to {address}" if emailed else url)


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


class Switch(StrEnum):
    ON = "on"
    OFF = "off"


@app.command("public-account")
def public_account(
    switch: Annotated[
        Switch, typer.Argument(help="on: colleagues may send from your address; off: only you")
    ],
    workspace: Workspace,
    user: Annotated[str, typer.Option("--user", help="The user switching their own address (acts as them)")],
) -> None:
    """Switch a user's public account usage, acting as that user (it is their own choice)."""
    from touchline.outbound.from_field import service as from_field

    with _transaction(_settings()) as session:
        me = service.actor_for(service.find_user_by_email(session, _operator(session, workspace), user))
        assert me.user_id is not None
        state = from_field.set_public_account_usage(session, me, me.user_id, turn_on=switch is Switch.ON)
    console.print(
        f"{state.address} is public: colleagues can send from it"
        if state.public
        else f"{state.address} is private: only {user} sends from it"
    )


# --- imports -------------------------------------------------------------------------------------


FieldTypes = Annotated[
    list[str] | None,
    typer.Option(
        "--field-type",
        help="COLUMN=TYPE (text, number or date), repeatable: the type of an extra column's custom field, "
        "instead of the one its values suggest",
    ),
]


def _run_import(
    workspace: str, file: Path, kind: importing.ImportKind, field_types: list[str] | None
) -> None:
    if not file.is_file():
        raise _fail(f"{file} is not a file")
    data = file.read_bytes()
    try:
        overrides = parse_type_overrides(field_types or [])
    except TouchlineError as error:
        raise _fail(str(error)) from None
    with Progress(
        TextColumn(f"importing {kind}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
    ) as progress:
        task = progress.add_task(kind, total=None)
        with _sessions(_settings()) as sessions:
            with session_scope(sessions) as session:
                actor = _operator(session, workspace)
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
                raise _fail(f"interrupted: no {kind} were imported", code=130) from None
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


# --- mail triage ---------------------------------------------------------------------------------


@app.command()
def triage(
    paths: Annotated[list[Path], typer.Argument(help="mbox files, maildirs, folders or message files")],
    directory: Annotated[Path, typer.Option("--directory", help="Directory JSON: domains, users, contacts")],
) -> None:
    """Decide keep / ignore for each message against a directory, one JSON line per message."""
    tune_garbage_collector()
    from touchline.inbound.triage import run_triage

    raise typer.Exit(run_triage(directory, paths, sys.stdout))


@bounces_app.command("classify")
def bounces_classify(
    paths: Annotated[list[Path], typer.Argument(help="Message files, mbox files, or folders of .eml files")],
) -> None:
    """One JSON line per message: a bounce (hard, soft, blocked, delayed), an automatic reply, or neither."""
    from touchline.inbound.reports.files import run_classify

    raise typer.Exit(run_classify(paths, sys.stdout))


# --- mailboxes, sync and stored mail ------------------------------------------------------------


def _configure_jobs(settings: Settings) -> None:
    """Commands that enqueue jobs need the queue and every declared job."""
    import touchline.jobs  # noqa: F401
    from touchline.worker import configure_queue

    configure_queue(settings)


@mailbox_app.command("connect-imap")
def mailbox_connect_imap(
    workspace: Workspace,
    user: Annotated[str, typer.Option("--user", help="The user whose mailbox this is")],
    host: Annotated[str, typer.Option(help="IMAP server")],
    username: Annotated[str, typer.Option(help="IMAP login name")],
    port: Annotated[int | None, typer.Option(help="Port (993 for tls, 143 otherwise)")] = None,
    security: Annotated[
        str, typer.Option(help="tls, starttls or plain (plain only to this machine)")
    ] = "tls",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin")
    ] = False,
    smtp_host: Annotated[
        str | None, typer.Option(help="SMTP server for sending (default: the IMAP host)")
    ] = None,
    smtp_port: Annotated[int, typer.Option(help="SMTP port")] = 587,
    smtp_security: Annotated[
        str, typer.Option(help="tls, starttls or plain (plain only to this machine)")
    ] = "starttls",
) -> None:
    """Connect a user's IMAP mailbox: checks the IMAP and SMTP logins, lists folders, selects Inbox, Sent."""
    from touchline.kit.errors import InvalidInputError
    from touchline.mailboxes import service as mailboxes
    from touchline.mailboxes.connect import list_imap_folders, smtp_connection

    if not password_stdin:
        raise _fail("pass the password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\n")
    settings = _settings()
    _configure_jobs(settings)
    if smtp_security not in ("tls", "starttls", "plain"):
        raise _fail("--smtp-security must be tls, starttls or plain")
    connection = {
        "host": host,
        "port": port,
        "security": security,
        "username": username,
        "smtp": smtp_connection(host, smtp_host, smtp_port, smtp_security),
    }
    try:
        folders = list_imap_folders(connection, password, settings)
    except InvalidInputError as error:
        raise _fail(str(error)) from None
    with _transaction(settings) as session:
        operator = _operator(session, workspace)
        owner = service.find_user_by_email(session, operator, user)
        mailbox = mailboxes.connect_mailbox(
            session,
            operator,
            SecretBox(settings.secret_keys),
            user_id=owner.id,
            provider="imap",
            address=owner.email,
            connection=connection,
            credentials={"password": password},
            folders=folders,
        )
        mailbox_id = mailbox.id
        selected = [folder.name for folder in mailbox.folders if folder.selected]
    console.print(f"connected {user}: {len(folders)} folders; syncing {', '.join(selected) or 'nothing yet'}")
    typer.echo(str(mailbox_id))


@mailbox_app.command("list")
def mailbox_list(
    workspace: Annotated[str | None, typer.Option("--workspace", "-w", help="Only this workspace")] = None,
) -> None:
    """Every connected mailbox with its status, last sync, last error and the folders failing."""
    from sqlalchemy import select

    from touchline.mailboxes import service as mailboxes
    from touchline.models import Mailbox

    settings = _settings()
    now = datetime.now(UTC)
    with _transaction(settings) as session:
        query = select(Mailbox).order_by(Mailbox.address)
        if workspace:
            query = query.where(Mailbox.workspace_id == service.find_workspace(session, workspace).id)
        table = Table(
            "id",
            "address",
            "provider",
            "status",
            "folders synced",
            "last sync",
            "last error",
            "failing folders",
        )
        for mailbox in session.scalars(query):
            failing = [health for health in mailboxes.folder_health(mailbox) if health.failing]
            stalled = mailboxes.sync_stalled_since(mailbox, now, mailboxes.stalled_after(settings))
            status = mailbox.status
            if stalled is not None:
                status = f"stalled: no sync succeeded since {stalled:%Y-%m-%d %H:%M}"
            table.add_row(
                str(mailbox.id),
                mailbox.address,
                mailbox.provider,
                status,
                ", ".join(f.name for f in mailbox.folders if f.selected),
                mailbox.last_synced_at.strftime("%Y-%m-%d %H:%M:%S") if mailbox.last_synced_at else "never",
                mailbox.last_error or "",
                "\n".join(
                    [mailboxes.health_summary(mailbox) or ""]
                    + [
                        f"{health.name}: {health.last_error}"
                        + (
                            f" (next try {health.next_retry_at:%Y-%m-%d %H:%M:%S})"
                            if health.next_retry_at
                            else ""
                        )
                        for health in failing
                    ]
                ).strip(),
            )
    console.print(table)


@app.command()
def sync(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's mailbox")] = None,
    once: Annotated[bool, typer.Option("--once", help="Sync once and exit instead of every minute")] = False,
) -> None:
    """Sync connected mailboxes in the foreground, with progress."""
    tune_garbage_collector()
    import time

    from sqlalchemy import select

    from touchline.inbound.fetch.service import sync_mailbox
    from touchline.inbound.readers import configure_readers
    from touchline.mailboxes.providers.base import TransientError
    from touchline.models import Mailbox, User

    settings = _settings()
    configure_readers(settings.sync_reader_processes)
    _configure_jobs(settings)  # storing mail sends jobs (engagement finds replies among it)
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    box = SecretBox(settings.secret_keys)
    failed = False
    while True:
        with session_scope(sessions) as session:
            query = select(Mailbox.id, Mailbox.address)
            if user:
                query = query.join(User, User.id == Mailbox.user_id).where(User.email == user.strip().lower())
            targets = list(session.execute(query))
        if user and not targets:
            raise _fail(f"{user} has no connected mailbox; `touchline mailbox connect-imap` connects one")
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=errors,
        ) as progress:
            for mailbox_id, address in targets:
                task = progress.add_task(address, total=None, counts=_sync_counts(None))

                def advance(
                    folder: str, count: int, report: SyncReport, task: TaskID = task, address: str = address
                ) -> None:
                    progress.update(
                        task, advance=count, description=f"{address} {folder}", counts=_sync_counts(report)
                    )

                try:
                    report = sync_mailbox(sessions, box, mailbox_id, progress=advance, settings=settings)
                except TransientError as error:
                    errors.print(f"{address}: {error} (will retry)")
                    failed = True
                    continue
                progress.update(
                    task,
                    total=report.seen,
                    completed=report.seen,
                    description=address,
                    counts=_sync_counts(report),
                )
                line = f"{address}: {_sync_counts(report)}"
                if report.error:
                    line += f" - {report.error}"
                    failed = failed or report.status != "connected"
                console.print(line)
        if once:
            break
        time.sleep(60)
    engine.dispose()
    if failed:
        raise typer.Exit(1)


def _sync_counts(report: SyncReport | None) -> str:
    """What a sync has done so far, in the words of the Email page."""
    counts = (report.seen, report.kept, report.ignored, report.quarantined) if report else (0, 0, 0, 0)
    return "{} checked, {} kept, {} ignored, {} quarantined".format(*counts)


@emails_app.command("list")
def emails_list(
    workspace: Workspace,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line")] = False,
) -> None:
    """Every stored email of a workspace, newest first."""
    from touchline.inbound.timeline import email_records

    with _transaction(_settings()) as session:
        records = email_records(session, service.find_workspace(session, workspace).id)
    if as_json:
        for record in records:
            typer.echo(json.dumps(record, default=str))
        return
    table = Table("date", "subject", "from", "companies", "holders", "source")
    for record in records:
        table.add_row(
            str(record["date"] or "")[:16],
            str(record["subject"])[:60],
            str(record["from"]),
            str(len(record["companies"])),
            ", ".join(record["holders"]),
            str(record["source"]),
        )
    console.print(table)


@import_app.command("mail")
def import_mail(
    path: Annotated[Path, typer.Argument(help="An mbox file, a maildir, or a folder of message files")],
    user: Annotated[str, typer.Option("--user", help="The user the mail belongs to")],
) -> None:
    """Import mail through the same keep-or-ignore pipeline as sync."""
    tune_garbage_collector()
    from sqlalchemy import select

    from touchline.inbound.importing import count_messages
    from touchline.inbound.importing import import_mail as run_import
    from touchline.models import User

    if not path.exists():
        raise _fail(f"{path} does not exist")
    settings = _settings()
    _configure_jobs(settings)  # storing mail sends jobs (engagement finds replies among it)
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    with session_scope(sessions) as session:
        owner = session.scalar(select(User).where(User.email == user.strip().lower()))
        if owner is None:
            raise _fail(f"no user {user}; `touchline user add` adds one")
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


# --- sending -------------------------------------------------------------------------------------

REFUSED_EXIT_CODE = 2
"""A send that was refused (From rules, permissions, addresses, header injection): nothing was sent."""


def _outbox_record(row: OutboundEmail) -> dict[str, str | int | list[str] | None]:
    """An outbound email as `send --json` and `outbox list --json` print it."""
    from touchline.outbound.send.schemas import OutboundOut

    out = OutboundOut.of(row)
    return {
        "id": str(out.id),
        "status": out.status,
        "message_id": out.message_id,
        "from": out.sender,
        "to": out.to,
        "cc": out.cc,
        "first_recipient": out.first_recipient,
        "template": out.template,
        "bulk_id": str(out.bulk_id) if out.bulk_id else None,
        "sequence": str(out.sequence_id) if out.sequence_id else None,
        "step": out.sequence_step,
        "error": out.error,
        "scheduled_for": out.scheduled_for.isoformat() if out.scheduled_for else None,
        "sent_at": out.sent_at.isoformat() if out.sent_at else None,
    }


TrackOpens = Annotated[
    bool | None,
    typer.Option(
        "--track-opens/--no-track-opens",
        help="Track opens with a pixel (default: the template's switch, else the workspace's setting)",
        show_default=False,
    ),
]
TrackClicks = Annotated[
    bool | None,
    typer.Option(
        "--track-clicks/--no-track-clicks",
        help="Track clicks through a redirect (default: the template's switch, else the workspace's)",
        show_default=False,
    ),
]
UtmSource = Annotated[str | None, typer.Option(help="utm_source of its tracked links")]
UtmMedium = Annotated[str | None, typer.Option(help="utm_medium of its tracked links")]
UtmCampaign = Annotated[str | None, typer.Option(help="utm_campaign (merge fields allowed)")]
UtmContent = Annotated[str | None, typer.Option(help="utm_content (merge fields allowed)")]


@app.command("send")
def send(
    workspace: Workspace,
    as_user: Annotated[str, typer.Option("--as", help="The user who sends (needs send_email)")],
    sender: Annotated[str, typer.Option("--from", help="Your address, a public address, or account-owner")],
    to: Annotated[list[str], typer.Option("--to", help="A recipient; repeat for more")],
    cc: Annotated[list[str] | None, typer.Option("--cc", help="A Cc recipient; repeat for more")] = None,
    template: Annotated[str | None, typer.Option(help="A stored template's name")] = None,
    subject: Annotated[str | None, typer.Option(help="The subject (with --html-file)")] = None,
    html_file: Annotated[
        Path | None, typer.Option("--html-file", help="The HTML body (with --subject)")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="Send at this ISO 8601 time with a zone, e.g. 2027-01-04T09:00+01:00"),
    ] = None,
    track_opens: TrackOpens = None,
    track_clicks: TrackClicks = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    utm_source: UtmSource = None,
    utm_medium: UtmMedium = None,
    utm_campaign: UtmCampaign = None,
    utm_content: UtmContent = None,
) -> None:
    """Send one email (now, or scheduled with --at); a refused send exits 2 and sends nothing."""
    from datetime import UTC, datetime

    from touchline.outbound.send import service as outbox
    from touchline.outbound.track.utm import checked_utm

    if (template is None) == (subject is None or html_file is None):
        raise _fail("give either --template NAME, or --subject and --html-file", REFUSED_EXIT_CODE)
    send_at = None
    if at is not None:
        try:
            send_at = datetime.fromisoformat(at)
        except ValueError:
            raise _fail(f"--at {at!r} is not an ISO 8601 time", REFUSED_EXIT_CODE) from None
        if send_at.tzinfo is None:
            raise _fail("--at needs a time zone (Z or +01:00)", REFUSED_EXIT_CODE)
    html = _read_text_file(html_file, "--html-file") if html_file is not None else ""
    settings = _settings()
    _configure_jobs(settings)
    draft = outbox.Draft(
        sender=sender,
        to=[outbox.Recipient(address) for address in to],
        cc=[outbox.Recipient(address) for address in cc or []],
        subject=subject or "",
        html=html,
        send_at=send_at,
        template=template,
        track_opens=track_opens,
        track_clicks=track_clicks,
        utm=checked_utm(
            {
                "utm_source": utm_source,
                "utm_medium": utm_medium,
                "utm_campaign": utm_campaign,
                "utm_content": utm_content,
            }
        ),
    )
    engine = make_engine(settings.resolved_database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            operator = _operator(session, workspace)
            actor = service.actor_for(service.find_user_by_email(session, operator, as_user))
            row = outbox.send_email(session, actor, draft, settings=settings, now=datetime.now(UTC))
            record = _outbox_record(row)
    except TouchlineError as error:
        raise _fail(f"not sent: {error}", REFUSED_EXIT_CODE) from None
    finally:
        engine.dispose()
    summary = {key: record[key] for key in ("id", "status", "message_id", "from", "to")}
    if as_json:
        typer.echo(json.dumps(summary))
        return
    when = f" for {record['scheduled_for']}" if record["scheduled_for"] else ""
    console.print(
        f"{record['status']}{when}: {record['message_id']} from {record['from']} to {', '.join(to)}"
    )


def _read_text_file(path: Path, option: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise _fail(f"{option}: cannot read {path}: {error}", REFUSED_EXIT_CODE) from None


@template_app.command("create")
def template_create(
    workspace: Workspace,
    name: Annotated[str, typer.Argument(help="The template's name, unique in the workspace")],
    subject: Annotated[str, typer.Option(help="The subject, with merge fields")],
    html_file: Annotated[Path, typer.Option("--html-file", help="The HTML body, with merge fields")],
    text_file: Annotated[
        Path | None,
        typer.Option("--text-file", help="The text part; derived from the HTML when left out"),
    ] = None,
    track_opens: Annotated[bool, typer.Option(help="Track opens of emails sent from it")] = True,
    track_clicks: Annotated[bool, typer.Option(help="Track clicks of emails sent from it")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    utm_source: UtmSource = None,
    utm_medium: UtmMedium = None,
    utm_campaign: UtmCampaign = None,
    utm_content: UtmContent = None,
) -> None:
    """Store a template; one that cannot render (syntax, unknown fields) exits 2 naming each problem."""
    from touchline.outbound.templates import service as templates

    utm = {
        "utm_source": utm_source,
        "utm_medium": utm_medium,
        "utm_campaign": utm_campaign,
        "utm_content": utm_content,
    }
    content = templates.TemplateText(
        subject=subject,
        html=_read_text_file(html_file, "--html-file"),
        text=_read_text_file(text_file, "--text-file") if text_file is not None else None,
        track_opens=track_opens,
        track_clicks=track_clicks,
        utm={key: value for key, value in utm.items() if value},
    )
    engine = make_engine(_settings().resolved_database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            row = templates.create_template(session, _operator(session, workspace), name, content)
            record = {"id": str(row.id), "name": row.name, "version": row.version}
    except TouchlineError as error:
        raise _fail(f"template not saved: {error}", REFUSED_EXIT_CODE) from None
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(record))
        return
    console.print(f"template {record['name']!r} saved (version {record['version']}, id {record['id']})")


@template_app.command("list")
def template_list(
    workspace: Workspace,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line")] = False,
) -> None:
    """The workspace's templates."""
    from touchline.outbound.templates import service as templates

    with _transaction(_settings()) as session:
        records = [
            {
                "id": str(row.id),
                "name": row.name,
                "subject": row.subject,
                "version": row.version,
                "track_opens": row.track_opens,
                "track_clicks": row.track_clicks,
            }
            for row in templates.list_templates(session, _operator(session, workspace))
        ]
    if as_json:
        for record in records:
            typer.echo(json.dumps(record))
        return
    table = Table("name", "subject", "version", "opens", "clicks")
    for record in records:
        table.add_row(
            str(record["name"]),
            str(record["subject"]),
            str(record["version"]),
            "tracked" if record["track_opens"] else "off",
            "tracked" if record["track_clicks"] else "off",
        )
    console.print(table)


@outbox_app.command("list")
def outbox_list(
    workspace: Workspace,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line")] = False,
) -> None:
    """Every outbound email of a workspace, newest first, with its status and error."""
    from touchline.outbound.send import service as outbox

    with _transaction(_settings()) as session:
        rows = outbox.list_outbox(session, _operator(session, workspace))
        records = [_outbox_record(row) for row in rows]
        lines = [(row.status, row.from_address, row.message_id, row.error or "") for row in rows]
        recipients = [", ".join(r.address for r in row.recipients if r.kind == "to") for row in rows]
    if as_json:
        for record in records:
            typer.echo(json.dumps(record))
        return
    table = Table("status", "from", "to", "message id", "error")
    for (status, sender, message_id, error), to in zip(lines, recipients, strict=True):
        table.add_row(status, sender, to, message_id, error)
    console.print(table)


# --- sequences -----------------------------------------------------------------------------------

ActingUser = Annotated[str, typer.Option("--as", help="The user who acts (needs send_email)")]


def _acting(session: Session, workspace: str, user: str) -> Actor:
    return service.actor_for(service.find_user_by_email(session, _operator(session, workspace), user))


@sequence_app.command("create")
def sequence_create(
    workspace: Workspace,
    as_user: ActingUser,
    file: Annotated[Path, typer.Option("--file", help="The sequence as JSON (see the README)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Store a sequence from a JSON file, its steps naming templates; sent as --as USER."""
    from pydantic import ValidationError

    from touchline.outbound.sequences import service as sequences
    from touchline.outbound.sequences.schemas import SequenceFile
    from touchline.outbound.templates import service as templates

    try:
        written = SequenceFile.model_validate_json(_read_text_file(file, "--file"))
    except ValidationError as error:
        raise _fail(f"sequence not saved: {file} is not a sequence: {error}", REFUSED_EXIT_CODE) from None
    engine = make_engine(_settings().resolved_database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            actor = _acting(session, workspace, as_user)
            spec = sequences.SequenceSpec(
                name=written.name,
                sender=written.sender,
                steps=[
                    sequences.StepSpec(
                        templates.template_named(session, actor, step.template).id,
                        step.delay_days,
                        step.condition,
                    )
                    for step in written.steps
                ],
                exit_on_reply=written.exit_on_reply,
                time_zone=written.time_zone,
                window_start=written.window_start,
                window_end=written.window_end,
                business_days_only=written.business_days_only,
            )
            row = sequences.create_sequence(session, actor, spec)
            record = {"id": str(row.id), "name": row.name, "steps": len(row.steps)}
    except TouchlineError as error:
        raise _fail(f"sequence not saved: {error}", REFUSED_EXIT_CODE) from None
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(record))
        return
    console.print(f"sequence {record['name']!r} saved with {record['steps']} steps (id {record['id']})")


@sequence_app.command("enrol")
def sequence_enrol(
    workspace: Workspace,
    as_user: ActingUser,
    name: Annotated[str, typer.Argument(help="The sequence's name")],
    where: Annotated[
        list[str] | None, typer.Option("--where", help="FIELD=VALUE (also != < > ~); repeat, all must hold")
    ] = None,
    contact: Annotated[
        list[str] | None, typer.Option("--contact", help="An enduser's address; repeat")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Enrol endusers chosen by filters or by address; those already in it are left as they are."""
    from datetime import UTC, datetime

    from touchline.outbound.sequences import service as sequences

    if bool(where) == bool(contact):
        raise _fail("give either --where filters or --contact addresses", REFUSED_EXIT_CODE)
    engine = make_engine(_settings().resolved_database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            actor = _acting(session, workspace, as_user)
            sequence = sequences.sequence_named(session, actor, name)
            now = datetime.now(UTC)
            if where:
                result = sequences.enrol_where(session, actor, sequence.id, where, now=now)
            else:
                ids = sequences.contacts_by_email(session, actor, contact or [])
                result = sequences.enrol(session, actor, sequence.id, ids, now=now)
            record = {
                "sequence_id": str(sequence.id),
                "enrolled": [row.contact.email for row in result.enrolled],
                "already": result.already,
                "unsubscribed": result.unsubscribed,
            }
    except TouchlineError as error:
        raise _fail(f"nobody enrolled: {error}", REFUSED_EXIT_CODE) from None
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(record))
        return
    console.print(
        f"{len(record['enrolled'])} enrolled, {len(record['already'])} already in it, "
        f"{len(record['unsubscribed'])} unsubscribed"
    )


@sequence_app.command("list")
def sequence_list(
    workspace: Workspace,
    as_user: ActingUser,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line")] = False,
) -> None:
    """The workspace's sequences, with how many enrolments are in each state."""
    from touchline.outbound.sequences import service as sequences

    with _transaction(_settings()) as session:
        actor = _acting(session, workspace, as_user)
        rows = sequences.list_sequences(session, actor)
        counts = sequences.counts_by_state(session, actor, [row.id for row in rows])
        records = [
            {
                "id": str(row.id),
                "name": row.name,
                "status": row.status,
                "from": row.sender,
                "steps": len(row.steps),
                "enrolments": counts.get(row.id, {}),
            }
            for row in rows
        ]
    if as_json:
        for record in records:
            typer.echo(json.dumps(record))
        return
    table = Table("name", "status", "from", "steps", "enrolments")
    for record in records:
        states = record["enrolments"]
        assert isinstance(states, dict)
        summary = ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
        table.add_row(
            str(record["name"]), str(record["status"]), str(record["from"]), str(record["steps"]), summary
        )
    console.print(table)


def _sequence_switch(workspace: str, as_user: str, name: str, contact: str | None, *, pause: bool) -> str:
    from datetime import UTC, datetime

    from sqlalchemy import select

    from touchline.models import Enrolment
    from touchline.models.sequences import RUNNING_STATES
    from touchline.outbound.sequences import service as sequences

    now = datetime.now(UTC)
    with _transaction(_settings()) as session:
        actor = _acting(session, workspace, as_user)
        sequence = sequences.sequence_named(session, actor, name)
        if contact is None:
            sequences.set_sequence_status(session, actor, sequence.id, paused=pause, now=now)
            return f"sequence {sequence.name!r} {'paused' if pause else 'resumed'}"
        [contact_id] = sequences.contacts_by_email(session, actor, [contact])
        enrolment = session.scalar(
            select(Enrolment.id).where(
                Enrolment.sequence_id == sequence.id,
                Enrolment.contact_id == contact_id,
                Enrolment.state.in_(RUNNING_STATES),
            )
        )
        if enrolment is None:
            raise NotFoundError(f"{contact} is not in {sequence.name!r}")
        row = (sequences.pause if pause else sequences.resume)(session, actor, enrolment, now=now)
        return f"{contact} is {row.state} in {sequence.name!r}"


@sequence_app.command("pause")
def sequence_pause(
    workspace: Workspace,
    as_user: ActingUser,
    name: Annotated[str, typer.Argument(help="The sequence's name")],
    contact: Annotated[str | None, typer.Option("--contact", help="Only this enduser's enrolment")] = None,
) -> None:
    """Pause a sequence, or one enduser's enrolment in it."""
    console.print(_sequence_switch(workspace, as_user, name, contact, pause=True))


@sequence_app.command("resume")
def sequence_resume(
    workspace: Workspace,
    as_user: ActingUser,
    name: Annotated[str, typer.Argument(help="The sequence's name")],
    contact: Annotated[str | None, typer.Option("--contact", help="Only this enduser's enrolment")] = None,
) -> None:
    """Resume it; a step that fell due meanwhile goes at the next opening of its window."""
    console.print(_sequence_switch(workspace, as_user, name, contact, pause=False))


# --- bulk sends ------------------------------------------------------------------------------------

bulk_app = typer.Typer(
    help="Bulk sends: one template to the endusers that filters select.", no_args_is_help=True
)
app.add_typer(bulk_app, name="bulk")


class BulkMode(StrEnum):
    each = "each"
    one = "one"


@bulk_app.command("send")
def bulk_send(
    workspace: Workspace,
    as_user: Annotated[str, typer.Option("--as", help="The user who sends (needs send_email)")],
    template: Annotated[str, typer.Option(help="A stored template's name")],
    mode: Annotated[BulkMode, typer.Option(help="each: one personalised email per enduser; one: one to all")],
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where", help="FIELD=VALUE, FIELD!=VALUE, FIELD<VALUE, FIELD>VALUE or FIELD~TEXT; all must hold"
        ),
    ] = None,
    sender: Annotated[
        str | None,
        typer.Option("--from", help="Your address (the default), a public address, or account-owner"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count and list the skipped; queue nothing")
    ] = False,
    track_opens: TrackOpens = None,
    track_clicks: TrackClicks = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            "--variant", help="A further template to A/B test against --template (variant A); repeat for more"
        ),
    ] = None,
    metric: Annotated[
        str, typer.Option(help="What decides the A/B test: reply_rate, human_click_rate or open_rate")
    ] = "reply_rate",
    test_share: Annotated[float, typer.Option(help="The share of the audience in the A/B test")] = 0.2,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Send a template to every enduser the filters select; a refused bulk send exits 2 and sends nothing.
    With --variant, a first batch is split between the templates and the rest get the A/B test's winner."""
    from touchline.models import BulkSend
    from touchline.outbound.bulk import service as bulk
    from touchline.outbound.bulk import tasks as bulk_tasks
    from touchline.outbound.bulk.schemas import BulkSummaryOut

    tune_garbage_collector()  # it queues in this process, as the worker would
    settings = _settings()
    _configure_jobs(settings)
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    try:
        with session_scope(sessions) as session:
            actor = service.actor_for(
                service.find_user_by_email(session, _operator(session, workspace), as_user)
            )
            wanted = bulk.BulkRequest(
                sender or as_user,
                template,
                None,
                mode.value,
                tuple(where or ()),
                track_opens,
                track_clicks,
                variants=tuple(variant or ()),
                metric=metric,
                test_share=test_share,
            )
            if dry_run:
                summary = BulkSummaryOut.of_plan(bulk.plan(session, actor, wanted, settings=settings))
            else:
                bulk_id = bulk.start(session, actor, wanted, settings=settings, run_job=False).id
        if not dry_run:
            with Progress(
                TextColumn("queueing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=errors
            ) as shown:
                task = shown.add_task("queueing", total=None)
                bulk_tasks.queue_bulk(
                    sessions,
                    SecretBox(settings.secret_keys),
                    settings,
                    bulk_id,
                    on_progress=lambda done, total: shown.update(task, completed=done, total=total),
                )
            with session_scope(sessions) as session:
                row = session.get(BulkSend, bulk_id)
                assert row is not None
                if row.status == bulk.REFUSED:
                    raise bulk.BulkRefused(row.error or "refused")
                summary = BulkSummaryOut.of_bulk(
                    row, bulk.skipped_of(session, _operator(session, workspace), bulk_id)
                )
    except TouchlineError as error:
        raise _fail(f"not sent: {error}", REFUSED_EXIT_CODE) from None
    finally:
        engine.dispose()
    if as_json:
        typer.echo(summary.model_dump_json())
        return
    console.print(
        f"bulk_id: {summary.bulk_id or '(dry run: nothing queued)'}\nrecipients: {summary.recipients}\n"
        f"queued: {summary.queued}\nskipped: {summary.skipped}"
    )
    for skip in summary.skipped_endusers:
        console.print(f"  skipped {skip.address}: {skip.reason}", markup=False)


@bulk_app.command("show")
def bulk_show(
    workspace: Workspace,
    bulk_id: Annotated[str, typer.Argument(help="The bulk send's id")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """A bulk send's progress: queued, skipped, sent, failed, waiting for the sending budget."""
    import uuid
    from datetime import UTC, datetime

    from touchline.outbound.bulk import service as bulk
    from touchline.outbound.bulk.schemas import BulkSendOut

    try:
        wanted = uuid.UUID(bulk_id)
    except ValueError:
        raise _fail(f"{bulk_id!r} is not a bulk send id") from None
    with _transaction(_settings()) as session:
        operator = _operator(session, workspace)
        row = bulk.get_bulk_send(session, operator, wanted)
        shown = BulkSendOut.of(row, bulk.progress(session, operator, row.id, datetime.now(UTC)))
    if as_json:
        typer.echo(shown.model_dump_json(by_alias=True))
        return
    table = Table(
        "status",
        "recipients",
        "queued",
        "skipped",
        "sent",
        "waiting to leave",
        "waiting for budget",
        "failed",
        "unknown",
    )
    table.add_row(
        *(str(value) for value in (shown.status, shown.recipients, shown.queued, shown.skipped, shown.sent)),
        str(shown.in_queue),
        str(shown.waiting),
        str(shown.failed),
        str(shown.unknown),
    )
    console.print(table)
    if shown.continues:
        console.print(f"{shown.continues}: {shown.waiting_reason}", markup=False)


# --- engagement ----------------------------------------------------------------------------------


@engagement_app.command("list")
def engagement_list(
    workspace: Workspace,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line")] = False,
) -> None:
    """Every sent email's Email Engagement record, newest first: rates (null: not tracked), bounce, events."""
    from touchline.outbound.engagement import service as engagement

    lines = []
    with _transaction(_settings()) as session:
        operator = _operator(session, workspace)
        after = None
        while True:
            rows = engagement.list_engagements(session, operator, after=after, limit=500)
            for record, row, events in rows:
                lines.append(
                    {
                        "email_id": str(row.id),
                        "message_id": row.message_id,
                        "sender": row.from_address,
                        "first_recipient": record.recipient_address,
                        "template": record.template_name,
                        "sequence": str(record.sequence_id) if record.sequence_id else None,
                        "step": record.sequence_step,
                        "bulk_id": str(record.bulk_id) if record.bulk_id else None,
                        "variant": record.variant or None,
                        "open_rate": record.open_rate,
                        "click_rate": record.click_rate,
                        "reply_rate": record.reply_rate,
                        "human_open_rate": record.human_open_rate,
                        "human_click_rate": record.human_click_rate,
                        "bounce": record.bounce,
                        "events": events,
                    }
                )
            if len(rows) < 500:
                break
            after = (rows[-1][0].sent_at, rows[-1][0].id)
    if as_json:
        for line in lines:
            typer.echo(json.dumps(line))
        return
    table = Table("sender", "to", "template", "open", "click", "reply", "human open", "human click", "bounce")
    for line in lines:
        shown = [
            "-" if line[key] is None else str(line[key])
            for key in ("open_rate", "click_rate", "reply_rate", "human_open_rate", "human_click_rate")
        ]
        table.add_row(
            str(line["sender"]),
            str(line["first_recipient"]),
            str(line["template"] or ""),
            *shown,
            str(line["bounce"] or ""),
        )
    console.print(table)


# --- analytics -----------------------------------------------------------------------------------


class AnalyticsBy(StrEnum):
    template = "template"
    sequence = "sequence"
    step = "step"
    variant = "variant"
    sender = "sender"
    company = "company"
    week = "week"


ANALYTICS_RATES = ("open_rate", "human_open_rate", "click_rate", "human_click_rate", "reply_rate")


@app.command("analytics")
def analytics(
    workspace: Workspace,
    by: Annotated[AnalyticsBy, typer.Option("--by", help="What to group the sent emails by")],
    start: Annotated[str | None, typer.Option("--from", help="First UTC day sent, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last UTC day sent (included), YYYY-MM-DD")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line")] = False,
) -> None:
    """Average open, click and reply rates (percent; raw and human-only) of every sent email, by group.
    A rate of emails sent with that tracking off is left out of its average; "-": none had it on."""
    from datetime import date

    from touchline.outbound.analytics import service as analytics_service

    try:
        first = date.fromisoformat(start) if start else None
        last = date.fromisoformat(end) if end else None
    except ValueError:
        raise _fail("--from and --to are dates written YYYY-MM-DD") from None
    with _transaction(_settings()) as session:
        operator = _operator(session, workspace)
        groups = analytics_service.engagement_groups(
            session, operator, by.value, analytics_service.AnalyticsFilter(start=first, end=last)
        )
    # A company's metrics also say when it was last in touch and how much mail came from it.
    per_company = by is AnalyticsBy.company
    lines = [
        {"group": group.label, "sent": group.counts.sent}
        | {name: getattr(group.rates, name) for name in ANALYTICS_RATES}
        | (
            {
                "emails_in": group.emails_in,
                "last_touch_at": group.last_touch_at.isoformat() if group.last_touch_at else None,
            }
            if per_company
            else {}
        )
        for group in groups
    ]
    if as_json:
        for line in lines:
            typer.echo(json.dumps(line))
        return
    extra = ("emails in", "last touch") if per_company else ()
    table = Table(by.value, "sent", "open %", "human open %", "click %", "human click %", "reply %", *extra)
    for line in lines:
        table.add_row(
            str(line["group"]),
            str(line["sent"]),
            *("-" if line[name] is None else f"{line[name]:.1f}" for name in ANALYTICS_RATES),
            *((str(line["emails_in"]), str(line["last_touch_at"] or "-")[:16]) if per_company else ()),
        )
    console.print(table)


# --- A/B tests ------------------------------------------------------------------------------------


@experiment_app.command("list")
def experiment_list(
    workspace: Workspace,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line")] = False,
) -> None:
    """A/B tests, newest first: metric, state and winner."""
    from touchline.outbound.experiments import service as experiments

    with _transaction(_settings()) as session:
        found = experiments.list_experiments(session, _operator(session, workspace))
        lines = [
            {
                "id": str(one.id),
                "name": one.name,
                "metric": one.metric,
                "variants": [variant.label for variant in experiments.variants_of(one)],
                "state": one.state,
                "winner": one.winner,
                "decided_by": one.decided_by,
            }
            for one in found
        ]
    if as_json:
        for line in lines:
            typer.echo(json.dumps(line))
        return
    table = Table("id", "name", "metric", "variants", "state", "winner", "decided by")
    for line in lines:
        table.add_row(
            str(line["id"]),
            str(line["name"]),
            str(line["metric"]),
            " ".join(line["variants"]),  # type: ignore[arg-type]
            str(line["state"]),
            str(line["winner"] or ""),
            str(line["decided_by"] or ""),
        )
    console.print(table)


@experiment_app.command("show")
def experiment_show(
    workspace: Workspace,
    experiment_id: Annotated[str, typer.Argument(help="The A/B test's id")],
    as_json: Annotated[bool, typer.Option("--json", help="The test as one JSON object")] = False,
) -> None:
    """One A/B test: each variant's sends, successes, rate and interval, the test's statistic and
    bound, and the decision once made."""
    import uuid

    from touchline.outbound.experiments import schemas
    from touchline.outbound.experiments import service as experiments

    try:
        wanted = uuid.UUID(experiment_id)
    except ValueError:
        raise _fail(f"{experiment_id!r} is not an A/B test id") from None
    with _transaction(_settings()) as session:
        operator = _operator(session, workspace)
        experiment = experiments.get_experiment(session, operator, wanted)
        detail = schemas.detail_of(experiments.running_numbers(session, experiment))
    if as_json:
        typer.echo(detail.model_dump_json())
        return
    console.print(f"{detail.name} ({detail.metric}): {detail.state}", markup=False)
    if detail.warning:
        console.print(f"warning: {detail.warning}", markup=False)
    table = Table("variant", "template", "sends", "successes", "rate", "interval")
    for variant in detail.variants:
        rate = "-" if variant.rate is None else f"{variant.rate:.1%}"
        interval = f"{variant.rate_low:.1%} to {variant.rate_high:.1%}"
        table.add_row(
            variant.label, variant.template, str(variant.sends), str(variant.successes), rate, interval
        )
    console.print(table)
    test = detail.test
    console.print(
        f"test: statistic {test.statistic:.3g}, bound {test.bound:.3g},"
        f" p-value {test.p_value:.3g} ({test.reason})",
        markup=False,
    )
    if detail.winner is not None:
        console.print(
            f"decided {detail.decided_at:%Y-%m-%d %H:%M} UTC by {detail.decided_by}: winner {detail.winner}",
            markup=False,
        )


@contact_app.command("deliverable")
def contact_deliverable(
    workspace: Workspace,
    email: Annotated[str, typer.Argument(help="The contact's address")],
) -> None:
    """Let sends reach an address again that a hard bounce marked undeliverable."""
    with _transaction(_settings()) as session:
        operator = _operator(session, workspace)
        contact = service.find_contact_by_email(session, operator, email)
        if contact is None:
            raise _fail(f"no contact with the address {email}")
        was = contact.undeliverable_reason
        service.clear_undeliverable(session, operator, contact.id)
    console.print(f"{email} is deliverable again" + (f" (was: {was})" if was else ""), markup=False)


def main() -> None:
    try:
        app()
    except NotFoundError as error:
        errors.print(f"[bold red]error:[/] {error}")
        sys.exit(1)
