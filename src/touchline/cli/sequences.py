"""Sequences: enduser playbooks of template steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from touchline.cli.common import (
    REFUSED_EXIT_CODE,
    Workspace,
    console,
    fail,
    load_settings,
    operator_of,
    read_text_file,
    transaction,
)
from touchline.kit.errors import NotFoundError, TouchlineError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from touchline.workspace.permissions import Actor

sequence_app = typer.Typer(help="Sequences: enduser playbooks of template steps.", no_args_is_help=True)


ActingUser = Annotated[str, typer.Option("--as", help="The user who acts (needs send_email)")]


def _acting(session: Session, workspace: str, user: str) -> Actor:
    from touchline.workspace import service

    return service.actor_for(service.find_user_by_email(session, operator_of(session, workspace), user))


@sequence_app.command("create")
def sequence_create(
    workspace: Workspace,
    as_user: ActingUser,
    file: Annotated[Path, typer.Option("--file", help="The sequence as JSON (see the README)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Store a sequence from a JSON file, its steps naming templates; sent as --as USER."""
    from pydantic import ValidationError

    from touchline.db import make_engine, make_sessionmaker, session_scope
    from touchline.outbound.sequences import service as sequences
    from touchline.outbound.sequences.schemas import SequenceFile
    from touchline.outbound.templates import service as templates

    try:
        written = SequenceFile.model_validate_json(read_text_file(file, "--file"))
    except ValidationError as error:
        raise fail(f"sequence not saved: {file} is not a sequence: {error}", REFUSED_EXIT_CODE) from None
    engine = make_engine(load_settings().resolved_database_url)
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
        raise fail(f"sequence not saved: {error}", REFUSED_EXIT_CODE) from None
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

    from touchline.db import make_engine, make_sessionmaker, session_scope
    from touchline.outbound.sequences import service as sequences

    if bool(where) == bool(contact):
        raise fail("give either --where filters or --contact addresses", REFUSED_EXIT_CODE)
    engine = make_engine(load_settings().resolved_database_url)
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
        raise fail(f"nobody enrolled: {error}", REFUSED_EXIT_CODE) from None
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

    with transaction(load_settings()) as session:
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
    with transaction(load_settings()) as session:
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
