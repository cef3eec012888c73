"""What the command groups share: the consoles, the workspace option, settings, errors and sessions.

Every command module is imported to answer `touchline --help`, so this module and they import only
typer and rich at the top; the database, the models and the services are imported by the command that
runs (tests/test_cli_startup.py holds to that).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from touchline.kit.errors import TouchlineError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from touchline.config import Settings
    from touchline.workspace.permissions import Actor

console = Console()
errors = Console(stderr=True)

Workspace = Annotated[str, typer.Option("--workspace", "-w", help="Workspace id or name")]

REFUSED_EXIT_CODE = 2
"""A send that was refused (From rules, permissions, addresses, header injection): nothing was sent."""


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def load_settings() -> Settings:
    from touchline.config import Settings

    settings = Settings()
    settings.ensure_data_dir()
    return settings


def upgrade_schema(settings: Settings) -> None:
    from touchline.schema import upgrade

    upgrade(settings.resolved_database_url)


@contextmanager
def transaction(settings: Settings) -> Iterator[Session]:
    from touchline.db import session_scope

    with database_sessions(settings) as sessions, session_scope(sessions) as session:
        yield session


@contextmanager
def database_sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    from touchline.db import make_engine, make_sessionmaker
    from touchline.workspace.importing import UnreadableCsvError

    engine = make_engine(settings.resolved_database_url)
    try:
        yield make_sessionmaker(engine)
    except UnreadableCsvError as error:
        raise fail(str(error), code=2) from None  # an unusable input file, as for triage
    except TouchlineError as error:
        raise fail(str(error)) from None
    finally:
        engine.dispose()


def operator_of(session: Session, reference: str) -> Actor:
    from touchline.workspace import service
    from touchline.workspace.permissions import Actor

    return Actor.operator(service.find_workspace(session, reference).id)


def configure_jobs(settings: Settings) -> None:
    """Commands that enqueue jobs need the queue; each job is declared as it is first sent."""
    from touchline.jobs import declare
    from touchline.worker import configure_queue

    configure_queue(settings, declare=declare)


def read_text_file(path: Path, option: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise fail(f"{option}: cannot read {path}: {error}", REFUSED_EXIT_CODE) from None
