"""Mail: triage and delivery reports of files, connected mailboxes, their sync, and stored emails."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from touchline.cli.common import (
    Workspace,
    configure_jobs,
    console,
    errors,
    fail,
    load_settings,
    operator_of,
    transaction,
)
from touchline.kit.runtime import tune_garbage_collector

if TYPE_CHECKING:
    import uuid

    from rich.progress import Progress
    from sqlalchemy.orm import Session, sessionmaker

    from touchline.config import Settings
    from touchline.inbound.fetch.service import SyncReport

mailbox_app = typer.Typer(help="Connected mailboxes.", no_args_is_help=True)
emails_app = typer.Typer(help="Stored emails.", no_args_is_help=True)
bounces_app = typer.Typer(help="Delivery reports (bounces) and automatic replies.", no_args_is_help=True)


def triage(
    paths: Annotated[list[Path], typer.Argument(help="mbox files, maildirs, folders or message files")],
    directory: Annotated[Path, typer.Option("--directory", help="Directory JSON: domains, users, contacts")],
) -> None:
    """Decide keep / ignore for each message against a directory, one JSON line per message."""
    from touchline.inbound.triage import run_triage

    tune_garbage_collector()
    raise typer.Exit(run_triage(directory, paths, sys.stdout))


@bounces_app.command("classify")
def bounces_classify(
    paths: Annotated[list[Path], typer.Argument(help="Message files, mbox files, or folders of .eml files")],
) -> None:
    """One JSON line per message: a bounce (hard, soft, blocked, delayed), an automatic reply, or neither."""
    from touchline.inbound.reports.files import run_classify

    raise typer.Exit(run_classify(paths, sys.stdout))


# --- mailboxes, sync and stored mail ------------------------------------------------------------


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
    from touchline.kit.crypto import SecretBox
    from touchline.kit.errors import InvalidInputError
    from touchline.mailboxes import service as mailboxes
    from touchline.mailboxes.connect import list_imap_folders, smtp_connection
    from touchline.workspace import service

    if not password_stdin:
        raise fail("pass the password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\n")
    settings = load_settings()
    configure_jobs(settings)
    if smtp_security not in ("tls", "starttls", "plain"):
        raise fail("--smtp-security must be tls, starttls or plain")
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
        raise fail(str(error)) from None
    with transaction(settings) as session:
        operator = operator_of(session, workspace)
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
    from touchline.workspace import service

    settings = load_settings()
    now = datetime.now(UTC)
    with transaction(settings) as session:
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


def sync(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's mailbox")] = None,
    once: Annotated[bool, typer.Option("--once", help="Sync once and exit instead of every minute")] = False,
) -> None:
    """Sync connected mailboxes in the foreground, with progress."""
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from sqlalchemy import select

    from touchline.db import make_engine, make_sessionmaker, session_scope
    from touchline.inbound.readers import configure_readers
    from touchline.models import Mailbox, User

    tune_garbage_collector()

    settings = load_settings()
    configure_readers(settings.sync_reader_processes)
    configure_jobs(settings)  # storing mail sends jobs (engagement finds replies among it)
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    failed = False
    while True:
        with session_scope(sessions) as session:
            query = select(Mailbox.id, Mailbox.address)
            if user:
                query = query.join(User, User.id == Mailbox.user_id).where(User.email == user.strip().lower())
            targets = list(session.execute(query))
        if user and not targets:
            raise fail(f"{user} has no connected mailbox; `touchline mailbox connect-imap` connects one")
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=errors,
        ) as progress:
            for mailbox_id, address in targets:
                failed = not _sync_one(settings, sessions, progress, mailbox_id, address) or failed
        if once:
            break
        time.sleep(60)
    engine.dispose()
    if failed:
        raise typer.Exit(1)


def _sync_one(
    settings: Settings,
    sessions: sessionmaker[Session],
    progress: Progress,
    mailbox_id: uuid.UUID,
    address: str,
) -> bool:
    """One mailbox's sync, under the same lease as the workers' syncs (one sync of a mailbox at a
    time, whoever runs it), its progress shown and its counts printed; False when it failed."""
    from touchline.inbound.fetch.service import sync_mailbox
    from touchline.inbound.fetch.tasks import HandedBack, holding_sync
    from touchline.kit.crypto import SecretBox
    from touchline.mailboxes.providers.base import TransientError
    from touchline.worker import current_queue

    lease = timedelta(seconds=settings.sync_lease_seconds)
    try:
        with holding_sync(sessions, current_queue(), mailbox_id, lease) as heartbeat:
            if heartbeat is None:
                console.print(f"{address}: a worker is syncing it now, and syncs it again after that run")
                return True
            task = progress.add_task(address, total=None, counts=_sync_counts(None))

            def advance(folder: str, count: int, report: SyncReport) -> None:
                if heartbeat.lost.is_set():
                    raise HandedBack
                progress.update(
                    task, advance=count, description=f"{address} {folder}", counts=_sync_counts(report)
                )

            report = sync_mailbox(
                sessions, SecretBox(settings.secret_keys), mailbox_id, progress=advance, settings=settings
            )
    except HandedBack:
        errors.print(f"{address}: its lease ran out and a worker took the sync over")
        return False
    except TransientError as error:
        errors.print(f"{address}: {error} (will retry)")
        return False
    progress.update(
        task, total=report.seen, completed=report.seen, description=address, counts=_sync_counts(report)
    )
    line = f"{address}: {_sync_counts(report)}"
    if report.error:
        line += f" - {report.error}"
    console.print(line)
    return not (report.error and report.status != "connected")


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
    from touchline.workspace import service

    with transaction(load_settings()) as session:
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
