"""A live server in a thread and headless Debian Chromium driven by Playwright (fixtures for page tests)."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import psycopg
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, BrowserContext, Page, Request, Response, sync_playwright
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


class Timeline(logging.Handler):
    """What the live server and Chromium did during one page test, in order, for its failure report:
    a page that times out is either a server that stalled, a request that never reached it, or an
    answer that never reached the page, and only both sides together tell which."""

    def __init__(self) -> None:
        super().__init__(level=TRACE_LOG_LEVEL)
        self.events: deque[tuple[float, str, str]] = deque(maxlen=300)
        self.started = time.monotonic()

    def restart(self) -> None:
        self.events.clear()
        self.started = time.monotonic()

    def add(self, side: str, text: str) -> None:
        self.events.append((time.monotonic(), side, text))

    def emit(self, record: logging.LogRecord) -> None:
        self.add(f"server {threading.current_thread().name}", record.getMessage()[:200])

    def watch(self, context: BrowserContext) -> None:
        def request(request: Request) -> None:
            self.add("browser", f"request {request.method} {request.url}")

        def response(response: Response) -> None:
            self.add("browser", f"response {response.status} {response.url}")

        def finished(request: Request) -> None:
            self.add("browser", f"finished {request.url}")

        def failed(request: Request) -> None:
            self.add("browser", f"failed {request.url}: {request.failure}")

        context.on("request", request)
        context.on("response", response)
        context.on("requestfinished", finished)
        context.on("requestfailed", failed)
        context.on("page", lambda page: page.on("crash", lambda _: self.add("browser", "page crashed")))

    def report(self) -> str:
        return "\n".join(f"{at - self.started:8.3f}s {side}: {text}" for at, side, text in self.events)


TRACE_LOG_LEVEL = 5  # uvicorn's level for connections made and lost and each ASGI message
TIMELINE = Timeline()


def console_csp_violations(page: Page) -> list[str]:
    """The Content Security Policy violations `page`'s console reports from now on: the list grows
    as they come, and a page test asserts it empty at its end."""
    reported: list[str] = []
    page.on(
        "console",
        lambda message: reported.append(message.text) if "Content Security Policy" in message.text else None,
    )
    return reported


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
    # No logging set-up of uvicorn's own: its records go where the test process sends them (the page
    # tests' timeline, and pytest's capture).
    config = uvicorn.Config(app, log_config=None, lifespan=lifespan, timeout_graceful_shutdown=1)
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
    TIMELINE.restart()
    server_loggers = [logging.getLogger(name) for name in ("uvicorn.error", "uvicorn.access")]
    levels = [logger.level for logger in server_loggers]
    for logger in server_loggers:
        logger.setLevel(TRACE_LOG_LEVEL)
        logger.addHandler(TIMELINE)
    try:
        with serve(app) as base:
            TIMELINE.add("test", f"live server at {base}")
            yield base
    finally:
        for logger, level in zip(server_loggers, levels, strict=True):
            logger.removeHandler(TIMELINE)
            logger.setLevel(level)


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
    TIMELINE.watch(context)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def stall_report(database_url: str | None) -> str:
    """What happened when a page test failed: the timeline of the live server and Chromium, first
    because it is what says whether the server stalled, never got the request, or answered a page
    that never saw it; then, on PostgreSQL, the test database's sessions that were not idle; then the
    stacks of the threads that serve (idle listeners of scripted servers left out)."""
    lines = [TIMELINE.report()]
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
    threads = {thread.ident: thread.name for thread in threading.enumerate()}
    load = os.getloadavg()
    lines.append(
        f"--- {len(threads)} threads, {len(os.listdir('/proc/self/fd'))} open files, load {load[0]:.1f}"
    )
    for ident, frame in sys._current_frames().items():
        name = threads.get(ident, str(ident))
        if name == "MainThread" or name.endswith("(_accept)"):
            continue
        lines.append(f"--- thread {name}")
        lines.extend(line.rstrip() for line in traceback.format_stack(frame)[-6:])
    return "\n".join(lines)
