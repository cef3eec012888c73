"""Every benchmark module still imports: a benchmark is run by hand, rarely, so a name it reads from
touchline or from the test helpers that moved would otherwise go unnoticed until someone measures."""

from __future__ import annotations

import subprocess
import sys

from tests.corpus import REPOSITORY


def bench_modules() -> list[str]:
    return sorted(
        ".".join(path.relative_to(REPOSITORY).with_suffix("").parts)
        for path in (REPOSITORY / "bench").rglob("*.py")
        if path.name != "__init__.py"
    )


def test_every_benchmark_module_imports() -> None:
    modules = bench_modules()
    assert "bench.sync.run" in modules
    assert "bench.quotes.speed" in modules
    # One fresh interpreter from the repository's root, as `make bench` runs them (`python -m`).
    importing = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    done = subprocess.run(
        [sys.executable, "-c", importing, *modules],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
