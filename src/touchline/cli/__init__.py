"""The `touchline` command: serve, worker, database, and the operator's workspace commands.

Each group of commands lives in a module of its own; this one assembles them in the order `--help`
lists them. The modules import the database, the models and the services only inside the commands,
so that the command answers `--help` without loading them.
"""

from __future__ import annotations

import sys

import typer

from touchline.cli import engagement, imports, mail, processes, sending, sequences, workspaces
from touchline.cli.common import errors
from touchline.kit.errors import NotFoundError

app = typer.Typer(help="touchline: every customer conversation in one place.", no_args_is_help=True)

app.command()(processes.serve)
app.command()(processes.inbound)
app.command()(processes.tracking)
app.command()(processes.worker)
app.command()(processes.demo)
app.command("public-account")(workspaces.public_account)
app.command()(mail.triage)
app.command()(mail.sync)
app.command("send")(sending.send)
app.command("analytics")(engagement.analytics)

app.add_typer(processes.db_app, name="db")
app.add_typer(workspaces.workspace_app, name="workspace")
app.add_typer(workspaces.user_app, name="user")
app.add_typer(workspaces.token_app, name="token")
app.add_typer(imports.import_app, name="import")
app.add_typer(processes.queue_app, name="queue")
app.add_typer(mail.mailbox_app, name="mailbox")
app.add_typer(mail.emails_app, name="emails")
app.add_typer(sending.outbox_app, name="outbox")
app.add_typer(sending.template_app, name="template")
app.add_typer(sequences.sequence_app, name="sequence")
app.add_typer(engagement.engagement_app, name="engagement")
app.add_typer(workspaces.contact_app, name="contact")
app.add_typer(mail.bounces_app, name="bounces")
app.add_typer(engagement.experiment_app, name="experiment")
app.add_typer(sending.bulk_app, name="bulk")


def main() -> None:
    try:
        app()
    except NotFoundError as error:
        errors.print(f"[bold red]error:[/] {error}")
        sys.exit(1)
    except Exception as error:
        if not lacks_its_tables(error):
            raise
        errors.print(
            "[bold red]error:[/] the database has no touchline tables yet: "
            "`touchline db upgrade` creates them (`touchline serve` does too, as it starts)"
        )
        sys.exit(1)


def lacks_its_tables(error: BaseException) -> bool:
    """Whether a command failed because the database was never migrated (a table is missing)."""
    exc = sys.modules.get("sqlalchemy.exc")  # only a command that loaded the database can fail so
    if exc is None or not isinstance(error, exc.DBAPIError):
        return False
    cause = error.orig
    # SQLite says so in words; PostgreSQL (psycopg) raises UndefinedTable.
    return "no such table" in str(cause) or type(cause).__name__ == "UndefinedTable"
