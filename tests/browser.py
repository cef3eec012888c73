"""A live server in a thread and headless Debian Chromium driven by Playwright (fixtures for page tests)."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import psycopg
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, sync_playwright
from starlette.types import ASGIApp

from tests.services import unavailable

CHROMIUM = os.environ.get("TOUCHLINE_TEST_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
# Without these, Chromium keeps trying to reach Google's services, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def serve(app: ASGIApp, port: int = 0, *, lifespan: Literal["auto", "on", "off"] = "auto") -> Iterator[str]:
    """The app served on loopback at this port (0: a free one) while the block runs; yields its base URL.
    The providers' fakes serve with `lifespan="off"`."""
    # Bound here, before uvicorn starts: a port picked free and bound later leaves a window in which
    # something else on this machine may take it.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    port = listener.getsockname()[1]
    # Pages hold a notification stream open; shutting down cuts it after a second rather than wait for it.
    config = uvicorn.Config(app, log_level="warning", lifespan=lifespan, timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


@pytest.fixture
def live_server(app: FastAPI) -> Iterator[str]:
    with serve(app) as base:
        yield base


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        unavailable(
            "Chromium", "install Debian's chromium package (make test does) or set TOUCHLINE_TEST_CHROMIUM"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def stall_report(database_url: str | None) -> str:
    """What the process and its database were doing when a page test failed: every thread's stack
    and, on PostgreSQL, every session of the test database that was not idle, with what it waited for.
    A page that times out is either a server that stalled or one that never got the request; this
    says which."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    lines = []
    for ident, frame in sys._current_frames().items():
        lines.append(f"--- thread {names.get(ident, ident)}")
        lines.extend(line.rstrip() for line in traceback.format_stack(frame)[-12:])
    if database_url is not None and database_url.startswith("postgresql"):
        url = database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, autocommit=True, connect_timeout=3) as connection:
            rows = connection.execute(
                "SELECT pid, state, wait_event_type, wait_event, now() - xact_start, left(query, 200)"
                " FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state <> 'idle'"
            ).fetchall()
        lines.append(f"--- {len(rows)} database sessions not idle")
        lines.extend(" | ".join(str(value) for value in row) for row in rows)
    return "\n".join(lines)
