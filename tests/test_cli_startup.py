"""`touchline --help` answers without loading the database, the settings, the models or the services:
each command imports what it needs when it runs, so asking what there is stays quick."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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

# Runs the command as its console script does, then says what it printed and which modules it loaded.
PROBE = """
import json, sys
from touchline.cli import main
try:
    main()
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def _help(*args: str) -> tuple[str, dict[str, object]]:
    ran = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60, check=True
    )
    return ran.stdout, json.loads(ran.stderr.splitlines()[-1])


@pytest.mark.parametrize(
    "args",
    [("--help",), ("mailbox", "--help"), ("send", "--help"), ("bulk", "send", "--help"), ("serve", "--help")],
)
def test_help_loads_no_command_dependencies(args: tuple[str, ...]) -> None:
    output, probe = _help(*args)
    assert probe["code"] == 0
    assert "Usage:" in output
    modules = probe["modules"]
    assert isinstance(modules, list)
    assert "typer" in modules  # the probe sees what the command loaded
    loaded = [
        name
        for name in modules
        if any(name == heavy or name.startswith(f"{heavy}.") for heavy in LOADED_ONLY_BY_COMMANDS)
    ]
    assert loaded == []
