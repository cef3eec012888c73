"""`touchline --help` answers without loading the database, the settings, the models or the services:
each command imports what it needs when it runs, so asking what there is stays quick."""

from __future__ import annotations

import pytest

from tests.cli_probe import loaded_among, run_probed

# Not pydantic: typer itself loads it to read a command's parameters.
LOADED_ONLY_BY_COMMANDS = (
    "sqlalchemy",
    "pydantic_settings",
    "touchline.config",
    "touchline.db",
    "touchline.models",
    "touchline.workspace",
    "touchline.mailboxes",
    "touchline.inbound",
    "touchline.outbound",
    "touchline.worker",
    "rich.progress",
    "uvicorn",
    "tldextract",
)


@pytest.mark.parametrize(
    "args",
    [("--help",), ("mailbox", "--help"), ("send", "--help"), ("bulk", "send", "--help"), ("serve", "--help")],
)
def test_help_loads_no_command_dependencies(args: tuple[str, ...]) -> None:
    output, code, modules = run_probed(*args)
    assert code == 0
    assert "Usage:" in output
    assert "typer" in modules  # the probe sees what the command loaded
    assert loaded_among(modules, LOADED_ONLY_BY_COMMANDS) == []
