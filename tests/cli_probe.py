"""Runs the `touchline` command as its console script does, and says which modules it loaded: for
tests that a command imports only what it needs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable, Mapping

_PROBE = """
import json, sys
from touchline.cli import main
try:
    main()
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def run_probed(*args: str, env: Mapping[str, str] | None = None) -> tuple[str, int | None, list[str]]:
    """The command's standard output, its exit code (None for a normal end) and the modules loaded."""
    ran = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    probe = json.loads(ran.stderr.splitlines()[-1])
    return ran.stdout, probe["code"], list(probe["modules"])


def loaded_among(modules: Iterable[str], packages: Iterable[str]) -> list[str]:
    """The modules that are one of `packages` or inside one."""
    wanted = tuple(packages)
    return [name for name in modules if any(name == p or name.startswith(f"{p}.") for p in wanted)]
