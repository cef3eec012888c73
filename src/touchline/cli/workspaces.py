"""Workspaces, their users, API tokens and contacts, as the operator manages them."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from touchline.cli.common import (
    Workspace,
    configure_jobs,
    console,
    fail,
    load_settings,
    operator_of,
    transaction,
)
from touchline.kit.errors import NotFoundError

workspace_app = typer.Typer(help="Workspaces (one per organisation).", no_args_is_help=True)
user_app = typer.Typer(help="Users of a workspace.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
contact_app = typer.Typer(help="Contacts (endusers).", no_args_is_help=True)


@workspace_app.command("create")
def workspace_create(
    name: str,
    internal_domain: Annotated[
        list[str] | None,
        typer.Option("--internal-domain", help="Your staff's own domain; repeat for several"),
    ] = None,
    time_zone: Annotated[
        str,
        typer.Option(
            "--time-zone", help="IANA zone people type and read times in, e.g. Europe/Berlin (default UTC)"
        ),
    ] = "UTC",
) -> None:
    """Create a workspace and print its id."""
    from touchline.kit.crypto import SecretBox
    from touchline.workspace import service

    settings = load_settings()
    with transaction(settings) as session:
        workspace = service.create_workspace(
            session,
            SecretBox(settings.secret_keys),
            name,
            internal_domains=internal_domain or [],
            inbound_domain=settings.inbound_domain,
            time_zone=time_zone,
        )
        workspace_id = workspace.id
    typer.echo(str(workspace_id))


@workspace_app.command("show")
def workspace_show(
    workspace: Annotated[str, typer.Argument(help="Workspace id or name")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show a workspace's settings, roles and counts."""
    from touchline.workspace import service

    with transaction(load_settings()) as session:
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
    from touchline.workspace import service

    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    if password_stdin and not password:
        raise fail("--password-stdin was given but standard input held no password")
    with transaction(load_settings()) as session:
        user = service.add_user(
            session, operator_of(session, workspace), email, name=name, role=role, password=password
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
    from touchline.workspace import account_links, service

    settings = load_settings()
    configure_jobs(settings)
    with transaction(settings) as session:
        operator = operator_of(session, workspace)
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
    from touchline.workspace import service

    with transaction(load_settings()) as session:
        operator = operator_of(session, workspace)
        owner = service.find_user_by_email(session, operator, user)
        token, _row = service.create_api_token(session, service.actor_for(owner), name)
    typer.echo(token)


class Switch(StrEnum):
    ON = "on"
    OFF = "off"


def public_account(
    switch: Annotated[
        Switch, typer.Argument(help="on: colleagues may send from your address; off: only you")
    ],
    workspace: Workspace,
    user: Annotated[str, typer.Option("--user", help="The user switching their own address (acts as them)")],
) -> None:
    """Switch a user's public account usage, acting as that user (it is their own choice)."""
    from touchline.outbound.from_field import service as from_field
    from touchline.workspace import service

    with transaction(load_settings()) as session:
        me = service.actor_for(service.find_user_by_email(session, operator_of(session, workspace), user))
        assert me.user_id is not None
        state = from_field.set_public_account_usage(session, me, me.user_id, turn_on=switch is Switch.ON)
    console.print(
        f"{state.address} is public: colleagues can send from it"
        if state.public
        else f"{state.address} is private: only {user} sends from it"
    )


@contact_app.command("deliverable")
def contact_deliverable(
    workspace: Workspace,
    email: Annotated[str, typer.Argument(help="The contact's address")],
) -> None:
    """Let sends reach an address again that a hard bounce marked undeliverable."""
    from touchline.workspace import service

    with transaction(load_settings()) as session:
        operator = operator_of(session, workspace)
        contact = service.find_contact_by_email(session, operator, email)
        if contact is None:
            raise fail(f"no contact with the address {email}")
        was = contact.undeliverable_reason
        service.clear_undeliverable(session, operator, contact.id)
    console.print(f"{email} is deliverable again" + (f" (was: {was})" if was else ""), markup=False)
